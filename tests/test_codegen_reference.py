"""The shared reference models: the generated C reproduces TFLM's device output, needs a smaller
arena than TFLM's smallest working one, and compiles for every MCU architecture."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from tinyml.codegen import figures, generate, host
from tinyml.codegen.verify import reference_outputs

# smallest arena TFLM accepts, from /work/shared/models/README.md
TFLM_MIN_ARENA = {"vib_cnn_int8": 4736, "feat_ae_int8": 2308, "toycar_ad_int8": 2700}


def fixed_input(n: int) -> np.ndarray:
    i = np.arange(n)
    return ((((37 * i + 13) & 0x1F) - 16).astype(np.int8))


@pytest.mark.parametrize("name", sorted(TFLM_MIN_ARENA))
def test_reference_model_matches_tflm(name: str, shared: Path, tmp_path: Path) -> None:
    models = shared / "models"
    tflite = (models / f"{name}.tflite").read_bytes()
    gen = generate(tflite, prefix="ref")
    assert gen.arena_bytes <= TFLM_MIN_ARENA[name]
    fixed = np.fromfile(models / f"{name}.input.bin", dtype=np.int8)
    assert np.array_equal(fixed, fixed_input(fixed.size))
    expected = np.fromfile(models / f"{name}.tflm_output.bin", dtype=np.int8)
    exe = host.build(gen, tmp_path, sanitize=name != "toycar_ad_int8")
    rng = np.random.default_rng(3)
    inputs = np.concatenate([fixed[None], rng.integers(-128, 128, size=(1000, fixed.size), dtype=np.int8)])
    got = host.run(exe, inputs, expected.size)
    assert np.array_equal(got[0], expected)
    want = reference_outputs(tflite, inputs)
    assert int((got != want).sum()) == 0


def test_generated_c_is_dependency_free(shared: Path) -> None:
    gen = generate((shared / "models" / "vib_cnn_int8.tflite").read_bytes(), prefix="vib")
    includes = {line.strip() for line in (gen.source + gen.header).splitlines() if line.startswith("#include")}
    assert includes == {"#include <stdint.h>", "#include <string.h>", '#include "vib.h"'}
    code = re.sub(r"/\*.*?\*/", "", gen.source, flags=re.S)
    for word in ("malloc", "float", "double", "printf"):
        assert not re.search(rf"\b{word}\b", code), word
    assert "vib_arena_bytes = " in gen.header and "int vib_invoke(const int8_t *input, int8_t *output);" in gen.header


def test_figures_report_arena_weights_and_code_size(shared: Path) -> None:
    fig = figures((shared / "models" / "feat_ae_int8.tflite").read_bytes())
    assert fig["arena_bytes"] <= TFLM_MIN_ARENA["feat_ae_int8"]
    assert fig["weight_bytes"] > 2000  # 2,408 int8 weights + int32 biases and multipliers
    for arch in ("cortex-m4", "rv32imc", "xtensa-lx106"):
        size = fig["code_size"][arch]
        assert size["status"] == "ok" and size["text"] > 0 and size["warnings"] == 0, size


def test_figures_without_compilers_says_not_installed(shared: Path, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no cross compiler on PATH
    fig = figures((shared / "models" / "feat_ae_int8.tflite").read_bytes())
    assert {s["status"] for s in fig["code_size"].values()} == {"not installed"}
    assert os.environ["PATH"] == str(tmp_path)
