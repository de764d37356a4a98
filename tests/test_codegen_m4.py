"""Generated C on a Cortex-M4F (QEMU mps2-an386), built by the benchmark harness.

The cortex-m4-dsp target (and the portable one) must give TFLM's output bytes for several
inputs, extreme ones included; the DSP weight layout must compute the plain matrix product for
any shape; the instruction counter behind benchmarks/codegen_m4.py must be exact.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.codegen_models import DILATED
from tests.conftest import assert_clean_error, run_cli
from tinyml.codegen import generate, kernels
from tinyml.codegen.host import write
from tinyml.errors import InputError
from tinyml.model.interpreters import io_quantization, tflm_run

pytestmark = [pytest.mark.cross_compiler]

ROOT = Path(__file__).resolve().parent.parent
DSP = "cortex-m4-dsp"


def _load(name: str, path: Path):  # noqa: ANN202 - a module loaded from a file
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = _load("codegen_m4", ROOT / "benchmarks" / "codegen_m4.py")
dsp_lowering = _load("cortex_m4_dsp_lowering", kernels.KERNEL_DIR / DSP / "lowering.py")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("m4")


def _inputs(tflite: bytes, seed: int, fixed: bytes | None = None) -> np.ndarray:
    """Random rows plus the extremes (all -128, all 127) and, if given, the README's fixed input."""
    size = int(np.prod(io_quantization(tflite).in_shape))
    rng = np.random.default_rng(seed)
    rows = [rng.integers(-128, 128, size, dtype=np.int8) for _ in range(3)]
    rows += [np.full(size, -128, np.int8), np.full(size, 127, np.int8)]
    if fixed is not None:
        rows.append(np.frombuffer(fixed, np.int8))
    return np.stack(rows)


def _on_device(tflite: bytes, name: str, target: str, opt: str, inputs: np.ndarray, work: Path) -> np.ndarray:
    """Outputs of the generated C for each input row, run on QEMU mps2-an386."""
    gen = generate(tflite, prefix=name, target=target)
    folder = work / f"{name}-{target}{opt}"
    write(gen, folder)
    out_size = gen.report["output"]["size"]
    bench.write_glue(folder, name, inputs, out_size)
    elf = folder / "fw.elf"
    bench.build_firmware(folder, opt, False, elf)
    outputs = bench.run_firmware(elf, None).outputs
    return np.stack([np.frombuffer(o, np.int8) for o in outputs])


def _tflm(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    shaped = inputs.reshape(len(inputs), *io_quantization(tflite).in_shape)
    return tflm_run(tflite, shaped).reshape(len(inputs), -1)


@pytest.mark.parametrize("variant", [(DSP, "-O2"), (DSP, "-Os"), ("portable", "-Os")],
                         ids=lambda v: f"{v[0]}{v[1]}")
@pytest.mark.parametrize("model", ["vib_cnn_int8", "feat_ae_int8", "toycar_ad_int8"])
def test_reference_models_match_tflm_on_the_m4(shared: Path, work: Path, model: str,
                                                variant: tuple[str, str]) -> None:
    path = shared / "models" / f"{model}.tflite"
    tflite = path.read_bytes()
    inputs = _inputs(tflite, seed=len(model), fixed=path.with_suffix(".input.bin").read_bytes())
    got = _on_device(tflite, model.replace("_int8", ""), *variant, inputs, work)
    np.testing.assert_array_equal(got, _tflm(tflite, inputs))
    assert got[-1].tobytes() == path.with_suffix(".tflm_output.bin").read_bytes()


# Shapes the reference models do not cover: inputs not a multiple of 4, leftover rows (of 4
# and of 64 per assembly call), 1 to 7 groups of 4 inputs (the assembly core does four per
# pass after groups % 4), per-tensor scales,
# relu6, 2-D kernels with 'same' padding and strides (gathered patches), Conv1D with 'same'
# padding and patches starting on an odd int16 (copied), one-row kernels on 2-D inputs, max
# pools over 3 and 4 + 2 channels with clipped windows (SIMD over 4 channels, the rest one by
# one), and a grouped conv (which stays portable on the DSP target).
MATRIX = ["dense_pc", "dense_pt", "dense_relu6_pt", "dense_odd_rows", "dense_odd_groups_pt", "conv_same_relu",
          "conv_stride_same_odd", "conv1d_cnn", "conv1d_odd_start", "conv_rows_2d", "maxpool_same",
          "maxpool_6ch_relu", "conv_groups"]
# Kernels with batches > 1, where TFLM is no reference: a Dense layer on a [4, 7] input (TFLM
# cannot allocate it) and dilated convs, which the converter turns into SPACE_TO_BATCH + a
# batched CONV_2D or DEPTHWISE_CONV_2D + BATCH_TO_SPACE and which TFLM gets wrong (the issue-11
# family of tests/codegen_models.py: dilations 2-4, 'same'/'valid', 1-D/2-D, strided convs first).
BATCHED = ["dense_3d", "conv_dilated", *sorted(DILATED)]


@pytest.fixture(scope="module")
def matrix_models() -> dict[str, bytes]:
    from tests.codegen_models import build

    return {name: build(name)[0] for name in [*MATRIX, *BATCHED]}


@pytest.mark.parametrize("name", MATRIX)
def test_dsp_target_matches_portable_and_tflm_on_odd_shapes(matrix_models: dict[str, bytes], work: Path,
                                                             name: str) -> None:
    tflite = matrix_models[name]
    inputs = _inputs(tflite, seed=7)
    dsp = _on_device(tflite, name, DSP, "-O2", inputs, work)
    np.testing.assert_array_equal(dsp, _on_device(tflite, name, "portable", "-Os", inputs, work))
    np.testing.assert_array_equal(dsp, _tflm(tflite, inputs))


@pytest.mark.parametrize("name", BATCHED)
def test_dsp_target_equals_portable_with_batches(matrix_models: dict[str, bytes], work: Path, name: str) -> None:
    # the portable build (checked against TFLM and LiteRT on the host) is the reference here
    tflite = matrix_models[name]
    inputs = _inputs(tflite, seed=3)
    np.testing.assert_array_equal(_on_device(tflite, name, DSP, "-O2", inputs, work),
                                  _on_device(tflite, name, "portable", "-Os", inputs, work))


def test_dsp_target_uses_its_kernels_and_keeps_grouped_conv_portable(matrix_models: dict[str, bytes]) -> None:
    assert "conv_dsp" in generate(matrix_models["conv_same_relu"], target=DSP).report["kernels"]
    assert "fully_connected_dsp" in generate(matrix_models["dense_pc"], target=DSP).report["kernels"]
    assert "max_pool_dsp" in generate(matrix_models["maxpool_same"], target=DSP).report["kernels"]
    grouped = generate(matrix_models["conv_groups"], target=DSP).report["kernels"]
    assert "conv" in grouped and "conv_dsp" not in grouped


def _emulate(words: np.ndarray, rows: int, depth: int, x: np.ndarray) -> np.ndarray:
    """What the C core computes from the packed words: per group of 4 inputs, SXTB16 of a row's
    word times (x0, x1) and SXTB16 ROR #8 times (x2, x3), rows in interleaved blocks of 4."""
    groups = -(-depth // 4)
    xp = np.zeros(4 * groups, np.int64)
    xp[:depth] = x
    data = words.astype("<i4").view(np.int8).astype(np.int64)
    assert len(data) == rows * 4 * groups  # int8 size, rows padded to whole groups
    out = np.zeros(rows, np.int64)
    full = rows - rows % 4
    for r in range(rows):
        for g in range(groups):
            word = (r // 4) * 4 * groups + 4 * g + r % 4 if r < full else r * groups + g
            b0, b1, b2, b3 = data[4 * word:4 * word + 4]
            out[r] += b0 * xp[4 * g] + b2 * xp[4 * g + 1] + b1 * xp[4 * g + 2] + b3 * xp[4 * g + 3]
    return out


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 11), depth=st.integers(1, 13), offset=st.integers(-127, 128), seed=st.integers(0, 99))
def test_packed_layout_and_folded_bias_equal_the_plain_product(rows: int, depth: int, offset: int,
                                                               seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (rows, depth), dtype=np.int8)
    x = rng.integers(-128, 128, depth, dtype=np.int8)
    bias = rng.integers(-5000, 5000, rows, dtype=np.int32)
    words = dsp_lowering.pack_rows(w)
    assert words.dtype == np.int32 and words.nbytes == rows * 4 * -(-depth // 4)
    folded = dsp_lowering.fold_input_offset(bias, w, offset)
    expected = w.astype(np.int64) @ (x.astype(np.int64) + offset) + bias
    np.testing.assert_array_equal(_emulate(words, rows, depth, x) + folded, expected)


def test_a_bias_that_overflows_when_folded_is_a_clear_error() -> None:
    w = np.full((1, 4), 127, np.int8)
    with pytest.raises(InputError, match="overflows int32"):
        dsp_lowering.fold_input_offset(np.array([2**31 - 100], np.int32), w, 128)


def test_host_verify_of_the_dsp_target_is_a_clear_error(shared: Path, tmp_path: Path) -> None:
    proc = run_cli("codegen", shared / "models" / "feat_ae_int8.tflite", "--out", tmp_path, "--target", DSP,
                   "--verify", "3")
    assert_clean_error(proc, "--verify compiles for this computer", "--target portable")


def test_dsp_code_refuses_a_core_without_the_dsp_extension(shared: Path, tmp_path: Path) -> None:
    write(generate(shared / "models" / "feat_ae_int8.tflite", prefix="m", target=DSP), tmp_path)
    proc = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0", "-mthumb", "-c", str(tmp_path / "m.c"),
                           "-o", str(tmp_path / "m.o")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "needs a core with the DSP extension" in proc.stderr


SPIN = """#include <stdint.h>
int spin_invoke(const int8_t *input, int8_t *output)
{
    uint32_t n = SPIN_LOOPS;
    __asm__ volatile("1: subs %0, %0, #1\\n bne 1b" : "+r"(n));
    output[0] = input[0];
    return 0;
}
"""


@pytest.fixture(scope="module")
def plugin(work: Path) -> Path:
    return bench.build_plugin(work)


def _spin_count(loops: int, work: Path, plugin: Path) -> tuple[int, list[int]]:
    folder = work / f"spin{loops}"
    folder.mkdir(exist_ok=True)
    (folder / "spin.h").write_text("#include <stdint.h>\nint spin_invoke(const int8_t *input, int8_t *output);\n")
    (folder / "spin.c").write_text(SPIN.replace("SPIN_LOOPS", str(loops)))
    bench.write_glue(folder, "spin", np.zeros((1, 4), np.int8), 1)
    elf = folder / "fw.elf"
    bench.build_firmware(folder, "-Os", True, elf)
    result = bench.run_firmware(elf, plugin)
    return result.instructions_per_inference, result.marks


def test_instruction_count_is_exact_and_deterministic(work: Path, plugin: Path) -> None:
    short, marks = _spin_count(100, work, plugin)
    long, _ = _spin_count(1100, work, plugin)
    assert long - short == 2 * 1000  # subs + bne per extra loop, nothing else
    assert 2 * 100 <= short <= 2 * 100 + 20  # the loop, the call and the copy of one byte
    assert _spin_count(100, work, plugin)[1] == marks  # the same counts on a second boot


def test_benchmark_reports_a_missing_models_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--models", str(tmp_path)]) == 2
    assert "no reference models" in capsys.readouterr().err


def test_benchmark_reports_a_missing_tool() -> None:
    with pytest.raises(bench.BenchError, match="not found"):
        bench._run(["tinyml-no-such-tool"], "probing")
