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

# smallest arena TFLM accepts, from ../shared/models/README.md (beside the checkout)
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


@pytest.mark.cross_compiler
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


def _append_requantize(tflite: bytes, scale: float, zero_point: int) -> bytes:
    """The model with a QUANTIZE int8 -> int8 (new scale and zero point) after its output."""
    import copy

    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(tflite, 0)
    graph = raw.subgraphs[0]
    old_out = int(graph.outputs[0])
    tensor = copy.deepcopy(graph.tensors[old_out])
    tensor.name = b"requantized"
    tensor.quantization.scale, tensor.quantization.zeroPoint = [scale], [zero_point]
    graph.tensors.append(tensor)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.QUANTIZE
    code.version = 1
    raw.operatorCodes.append(code)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = len(raw.operatorCodes) - 1, [old_out], [len(graph.tensors) - 1]
    graph.operators.append(op)
    graph.outputs = [len(graph.tensors) - 1]
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize(("scale", "zero_point"), [(0.011, 5), (0.31, -100), (0.0004, 0)])
def test_int8_requantize_matches_tflm(shared: Path, tmp_path: Path, scale: float, zero_point: int) -> None:
    tflite = _append_requantize((shared / "models" / "feat_ae_int8.tflite").read_bytes(), scale, zero_point)
    gen = generate(tflite, prefix="rq")
    assert gen.report["kernels"][-1] == "requantize"
    inputs = np.random.default_rng(5).integers(-128, 128, size=(1000, 64), dtype=np.int8)
    got = host.run(host.build(gen, tmp_path, sanitize=True), inputs, 64)
    assert int((got != reference_outputs(tflite, inputs)).sum()) == 0
