"""Generated C vs the TFLM interpreter, byte for byte, over the Keras model matrix.

Every model: generate C, compile it for the host with -std=c99 -Wall -Wextra -Werror
-pedantic under ASan+UBSan, run 1000 random and 64 realistic inputs through one process,
compare with TFLM; compile the same C warning-free for Cortex-M4, rv32imc and Xtensa lx106.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.codegen_models import MODELS, build
from tinyml.codegen import generate, host, semantics
from tinyml.codegen.figures import C_FLAGS, CROSS
from tinyml.codegen.verify import reference_outputs
from tinyml.model.tflite import read_model

N_RANDOM = 1000
# TFLM cannot run these as a whole, so they are compared with the op-by-op reference semantics
# (docs/codegen.md, "Reference semantics"): Keras 3 emits REDUCE_PROD (Dense on rank-3 input,
# Reshape), which TFLM has no kernel for; and TFLM computes SPACE_TO_BATCH_ND (dilated
# convolutions) wrongly (tests/test_codegen_dilated.py has more of those).
NOT_TFLM = {"dense_3d", "reshape", "conv_dilated", "conv_dilated_valid", "depthwise_dilated"}


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, np.ndarray]]:
    """All matrix models, converted once per session."""
    return {name: build(name) for name in MODELS}


def _inputs(tflite: bytes, calib: np.ndarray, size: int) -> np.ndarray:
    """1000 random int8 inputs plus the calibration windows quantized as a device would."""
    model = read_model(tflite)
    q = model.tensors[model.inputs[0]].quant
    rng = np.random.default_rng(7)
    random = rng.integers(-128, 128, size=(N_RANDOM, size), dtype=np.int8)
    if q is None:  # float input: the C API starts after the QUANTIZE, see _float_io_reference
        return random
    real = np.clip(np.round(calib.reshape(len(calib), -1) / q.scales[0]) + q.zero_points[0], -128, 127)
    return np.concatenate([random, real.astype(np.int8)])


def _float_io_reference(tflite: bytes, q_inputs: np.ndarray) -> np.ndarray:
    """TFLM on a float-I/O model, fed floats that quantize exactly to q_inputs, outputs re-quantized."""
    from tflite_micro.python.tflite_micro import runtime

    m = runtime.Interpreter.from_bytes(tflite)
    model = read_model(tflite)
    first = next(op for op in model.operators if op.opcode == "QUANTIZE")
    last = next(op for op in model.operators if op.opcode == "DEQUANTIZE")
    qi = model.tensors[first.outputs[0]].quant
    qo = model.tensors[last.inputs[0]].quant
    shape = m.get_input_details(0)["shape"]
    rows = []
    for x in q_inputs:
        m.set_input(((x.astype(np.float32) - qi.zero_points[0]) * np.float32(qi.scales[0])).reshape(shape), 0)
        m.invoke()
        y = np.asarray(m.get_output(0), dtype=np.float32).reshape(-1)
        rows.append(np.clip(np.round(y / np.float32(qo.scales[0])) + qo.zero_points[0], -128, 127))
    return np.stack(rows).astype(np.int8)


def _cross_compile(c_file: Path) -> None:
    for arch, (cmd, _) in CROSS.items():
        obj = c_file.with_suffix(f".{arch}.o")
        proc = subprocess.run([*cmd, *C_FLAGS, "-Werror", "-c", str(c_file), "-o", str(obj)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{arch}: {proc.stderr}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_matrix_model_bit_exact_with_tflm(name: str, matrix: dict, tmp_path: Path) -> None:
    tflite, calib = matrix[name]
    gen = generate(tflite, prefix=name)
    size_in, size_out = gen.report["input"]["size"], gen.report["output"]["size"]
    inputs = _inputs(tflite, calib, size_in)
    exe = host.build(gen, tmp_path, sanitize=True)
    got = host.run(exe, inputs, size_out)
    if MODELS[name].float_io:
        want = _float_io_reference(tflite, inputs)
    elif name in NOT_TFLM:
        want = semantics.reference_outputs(tflite, inputs)
    else:
        want = reference_outputs(tflite, inputs)
    mismatches = int((got != want).sum())
    assert mismatches == 0, f"{name}: {mismatches} of {want.size} output bytes differ from TFLM"
    _cross_compile(tmp_path / f"{name}.c")


def test_matrix_covers_every_supported_op(matrix: dict) -> None:
    """The matrix really exercises each op the generator claims (guards against converter drift)."""
    seen = {op.opcode for tflite, _ in matrix.values() for op in read_model(tflite).operators}
    wanted = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN",
              "REDUCE_MAX", "ADD", "MUL", "SUB", "CONCATENATION", "PAD", "RESHAPE", "EXPAND_DIMS", "TRANSPOSE",
              "SOFTMAX", "LOGISTIC", "TANH", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "QUANTIZE",
              "DEQUANTIZE", "SHAPE", "STRIDED_SLICE", "PACK", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"}
    assert wanted <= seen, f"not exercised: {sorted(wanted - seen)}"


def test_per_tensor_and_per_channel_dense_both_present(matrix: dict) -> None:
    def fc_scales(tflite: bytes) -> set[int]:
        m = read_model(tflite)
        return {len(m.tensors[op.inputs[1]].quant.scales) for op in m.operators if op.opcode == "FULLY_CONNECTED"}

    assert fc_scales(matrix["dense_pt"][0]) == {1}
    assert max(fc_scales(matrix["dense_pc"][0])) > 1
