"""The .tflite reader and the generator on good, corrupt, hostile and unsupported models:
a clear InputError every time, never a crash, a hang or C that does not compile."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cbuild import host_compile
from tests.codegen_models import convert
from tests.conftest import assert_clean_error, run_cli
from tinyml.codegen import generate
from tinyml.errors import InputError, TinymlError
from tinyml.model.tflite import read_model


@pytest.fixture(scope="module")
def ae_bytes(shared: Path) -> bytes:
    return (shared / "models" / "feat_ae_int8.tflite").read_bytes()


def test_reads_the_vibration_cnn(shared: Path) -> None:
    m = read_model(shared / "models" / "vib_cnn_int8.tflite")
    ops = [op.opcode for op in m.operators]
    assert ops.count("CONV_2D") == 3 and ops[-1] == "SOFTMAX" and "MEAN" in ops
    x, y = m.tensors[m.inputs[0]], m.tensors[m.outputs[0]]
    assert (x.shape, x.dtype, y.shape) == ((1, 256, 3), "int8", (1, 3))
    assert y.quant.scales == (1 / 256,) and y.quant.zero_points == (-128,)
    conv = next(op for op in m.operators if op.opcode == "CONV_2D")
    w = m.tensors[conv.inputs[1]]
    assert w.data is not None and w.data.shape == w.shape and w.quant.per_channel
    assert conv.options["strideW"] == 2 and conv.version >= 1


@pytest.mark.parametrize("cut", [0, 3, 8, 100, 1000, 5000, 7959])
def test_truncated_model_is_a_clear_error(ae_bytes: bytes, cut: int) -> None:
    with pytest.raises(InputError):
        generate(ae_bytes[:cut])


def test_random_bytes_are_a_clear_error() -> None:
    rng = np.random.default_rng(0)
    for n in (16, 1000, 20000):
        junk = bytearray(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        junk[4:8] = b"TFL3"  # get past the identifier check
        with pytest.raises(InputError):
            read_model(bytes(junk))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 7959), st.integers(0, 7)), min_size=1, max_size=6))
def test_bit_flipped_models_fail_cleanly_or_generate(ae_bytes: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(ae_bytes)
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    try:
        gen = generate(bytes(data))
    except TinymlError:
        return
    assert gen.report["output"]["size"] > 0  # weights flipped but still a consistent model


def test_bit_flipped_models_that_generate_still_compile(ae_bytes: bytes, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    compiled = 0
    for _ in range(200):
        data = bytearray(ae_bytes)
        for pos in rng.integers(0, len(data), 3):
            data[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            gen = generate(bytes(data), prefix="m")
        except TinymlError:
            continue
        (tmp_path / "m.h").write_text(gen.header)
        (tmp_path / "m.c").write_text(gen.source)
        host_compile([tmp_path / "m.c"])
        compiled += 1
        if compiled == 5:
            break
    assert compiled == 5


def _repack(raw: object) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")  # type: ignore[attr-defined]
    return bytes(builder.Output())


def _unpacked(data: bytes) -> object:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(data, 0)


def test_buffer_pointing_outside_the_file(ae_bytes: bytes) -> None:
    raw = _unpacked(ae_bytes)
    weights = next(b for b in raw.buffers if b.data is not None and len(b.data) > 64)
    weights.data, weights.offset, weights.size = None, len(ae_bytes) + 4096, 1024
    with pytest.raises(InputError, match="outside the file"):
        read_model(_repack(raw))


def test_tensor_index_out_of_range(ae_bytes: bytes) -> None:
    raw = _unpacked(ae_bytes)
    op = raw.subgraphs[0].operators[1]
    op.inputs = [999, *list(op.inputs)[1:]]
    with pytest.raises(InputError, match="reads tensor 999"):
        read_model(_repack(raw))


def test_buffer_size_not_matching_shape(ae_bytes: bytes) -> None:
    raw = _unpacked(ae_bytes)
    weights = raw.subgraphs[0].tensors[raw.subgraphs[0].operators[0].inputs[1]]
    weights.shape = [weights.shape[0], 65]
    with pytest.raises(InputError, match="data bytes"):
        read_model(_repack(raw))


def test_zero_scale_is_rejected(ae_bytes: bytes) -> None:
    raw = _unpacked(ae_bytes)
    raw.subgraphs[0].tensors[raw.subgraphs[0].inputs[0]].quantization.scale = [0.0]
    with pytest.raises(InputError, match="scale"):
        read_model(_repack(raw))


@pytest.fixture(scope="module")
def keras_bad_models() -> dict[str, bytes]:
    """A float model, an unsupported op and a dynamic-shape model, converted once."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    L = keras.layers
    float_model = keras.Sequential([keras.Input((8,)), L.Dense(4)])
    conv = tf.lite.TFLiteConverter.from_keras_model(float_model)
    upsample = keras.Sequential([keras.Input((4, 4, 2)), L.Conv2D(3, 1), L.UpSampling2D(2)])
    dynamic = keras.Sequential([keras.Input((None, 3)), L.Conv1D(4, 3)])
    return {"float": conv.convert(), "upsample": convert(upsample)[0], "dynamic": _convert_dynamic(dynamic)}


def _convert_dynamic(model: object) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.normal(size=(1, 16, 3)).astype(np.float32)] for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def test_float_model_is_rejected_with_a_hint(keras_bad_models: dict[str, bytes]) -> None:
    with pytest.raises(InputError) as err:
        generate(keras_bad_models["float"])
    assert "int8" in err.value.one_line() and "quantize" in err.value.one_line()


def test_unsupported_op_names_op_index_and_fix(keras_bad_models: dict[str, bytes]) -> None:
    with pytest.raises(InputError) as err:
        generate(keras_bad_models["upsample"])
    line = err.value.one_line()
    found = re.match(r"operator #(\d+) ([A-Z_0-9]+): this operator is not supported", line)
    assert found and "hint: replace" in line, line
    ops = read_model(keras_bad_models["upsample"]).operators
    assert ops[int(found.group(1))].opcode == found.group(2) != "CONV_2D"


def test_dynamic_shape_is_rejected(keras_bad_models: dict[str, bytes]) -> None:
    with pytest.raises(InputError, match="dynamic shape"):
        generate(keras_bad_models["dynamic"])


def test_cli_bad_model_is_one_error_line(tmp_path: Path, ae_bytes: bytes) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(ae_bytes[:500])
    assert_clean_error(run_cli("codegen", bad, "--out", tmp_path / "out"), "invalid .tflite")
    assert_clean_error(run_cli("codegen", tmp_path / "missing.tflite", "--out", tmp_path / "out"), "not found")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def cnn_raw(shared: Path) -> object:
    return _unpacked((shared / "models" / "vib_cnn_int8.tflite").read_bytes())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_shapes_and_options_fail_cleanly_or_compile(cnn_raw: object, data: st.DataObject,
                                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    """Structural mutations (a tensor dimension, an operator option) never crash the generator,
    and whatever it accepts still compiles strictly."""
    import copy

    raw = copy.deepcopy(cnn_raw)
    graph = raw.subgraphs[0]  # type: ignore[attr-defined]
    value = data.draw(st.sampled_from([-1, 0, 1, 2, 3, 7, 1000]))
    if data.draw(st.booleans()):
        tensor = graph.tensors[data.draw(st.integers(0, len(graph.tensors) - 1))]
        if tensor.shape is not None and len(tensor.shape):
            shape = list(tensor.shape)
            shape[data.draw(st.integers(0, len(shape) - 1))] = value
            tensor.shape = shape
    else:
        op = graph.operators[data.draw(st.integers(0, len(graph.operators) - 1))]
        options = vars(op.builtinOptions) if op.builtinOptions is not None else {}
        fields = [k for k, v in options.items() if type(v) is int]
        if fields:  # option fields are int8 in the schema
            setattr(op.builtinOptions, data.draw(st.sampled_from(fields)), min(value, 100))
    try:
        gen = generate(_repack(raw), prefix="m")
    except TinymlError:
        return
    out = tmp_path_factory.mktemp("mut")
    (out / "m.h").write_text(gen.header)
    (out / "m.c").write_text(gen.source)
    host_compile([out / "m.c"])
