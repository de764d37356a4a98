"""`tinyml codegen` end to end, the planner's arena arithmetic, and per-target kernel lookup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.codegen import generate, host, kernels
from tinyml.codegen.ops import Alias, Call, In, Out
from tinyml.codegen.planner import plan
from tinyml.errors import InputError


def test_cli_writes_header_source_and_report_and_verifies(shared: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    proc = run_cli("codegen", shared / "models" / "vib_cnn_int8.tflite", "--out", out, "--prefix", "vib",
                   "--verify", "200")
    assert proc.returncode == 0, proc.stderr
    assert "C vs the reference 0 mismatching bytes (vs TFLM 0," in proc.stdout
    report = json.loads((out / "vib.codegen.json").read_text())
    assert report["arena_bytes"] <= 4736 and report["verify"]["tflm_mismatches"] == 0
    assert report["verify"]["inputs"] == 200 and report["verify"]["reference_mismatches"] == 0
    assert all(d["engine"] == "litert" for d in report["verify"]["departures"])  # TFLM is the reference here
    kinds = {s["op"] for s in report["steps"] if s["kind"] == "call"}
    assert kinds == {"CONV_2D", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}
    assert sum(1 for s in report["steps"] if s["kind"] == "alias") == 10  # EXPAND_DIMS/RESHAPE in place
    assert (out / "vib.h").read_text().count("vib_invoke") == 1
    assert sorted(p.name for p in out.iterdir()) == ["vib.c", "vib.codegen.json", "vib.h"]


def test_cli_rejects_bad_prefix_and_target(shared: Path, tmp_path: Path) -> None:
    model = shared / "models" / "feat_ae_int8.tflite"
    assert_clean_error(run_cli("codegen", model, "--out", tmp_path, "--prefix", "9lives"), "invalid C prefix")
    proc = run_cli("codegen", model, "--out", tmp_path, "--target", "z80")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "z80" in proc.stderr


def _steps_chain() -> list:
    # t0 (input) -> A -> t1 -> B -> t2 =alias=> t3 -> C -> t4 (output); t1 is also read by C
    return [Call("k", {}, [In(0), Out(1)]), Call("k", {}, [In(1), Out(2)]), Alias(2, 3),
            Call("k", {}, [In(3), In(1), Out(4)])]


def test_planner_keeps_live_tensors_apart_and_aliases_together() -> None:
    sizes = {0: 10, 1: 30, 2: 20, 3: 20, 4: 5}
    p = plan(_steps_chain(), graph_input=0, graph_output=4, nbytes=sizes)
    assert p.slots[0].place == "input" and p.slots[4].place == "output"
    assert p.slots[2] == p.slots[3]  # the alias shares its bytes
    a, b = p.slots[1], p.slots[2]
    assert a.place == b.place == "arena"
    assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset  # both live at step 3
    assert p.arena_bytes == 52  # 30 + 20, aligned to 4


def test_planner_reuses_memory_of_dead_tensors() -> None:
    steps = [Call("k", {}, [In(0), Out(1)]), Call("k", {}, [In(1), Out(2)]), Call("k", {}, [In(2), Out(3)]),
             Call("k", {}, [In(3), Out(4)])]
    p = plan(steps, 0, 4, {0: 8, 1: 64, 2: 64, 3: 64, 4: 8})
    assert p.slots[1].offset == p.slots[3].offset  # t1 is dead when t3 is written
    assert p.arena_bytes == 128


def test_output_that_is_the_reshaped_input_is_copied() -> None:
    p = plan([Alias(0, 1)], 0, 1, {0: 12, 1: 12})
    assert p.copy_input_to_output and p.arena_bytes == 0


def test_target_variant_overrides_portable_kernel(shared: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel file in kernels/<target>/ replaces the portable one; the rest falls back."""
    root = tmp_path / "kernels"
    for src in kernels.KERNEL_DIR.rglob("*"):
        if src.suffix in (".c", ".h", ".py"):  # lowering.py too: portable calls take its layout
            dst = root / src.relative_to(kernels.KERNEL_DIR)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(src.read_text())
    variant = root / "test-variant"
    variant.mkdir()
    fc = (root / "portable" / "fully_connected.c").read_text()
    first, rest = fc.split("\n", 1)  # keep the "requires" line first
    (variant / "fully_connected.c").write_text(f"{first}\n/* variant */\n{rest}")
    monkeypatch.setattr(kernels, "KERNEL_DIR", root)
    assert "test-variant" in kernels.targets()
    model = (shared / "models" / "feat_ae_int8.tflite").read_bytes()
    gen = generate(model, prefix="ae", target="test-variant")
    assert "/* variant */" in gen.source and "kernel fully_connected (test-variant)" in gen.source
    assert "kernel dot (portable)" in gen.source
    exe = host.build(gen, tmp_path / "build")
    fixed = np.fromfile(shared / "models" / "feat_ae_int8.input.bin", dtype=np.int8)
    expected = np.fromfile(shared / "models" / "feat_ae_int8.tflm_output.bin", dtype=np.int8)
    assert np.array_equal(host.run(exe, fixed[None], expected.size)[0], expected)
    with pytest.raises(InputError, match="unknown codegen target"):
        generate(model, target="nope")
