"""Reference semantics (issue 11): `codegen --verify` checks the C against them and names the interpreter
and the operator that depart from them; `inspect` warns about TFLM; TFLM's two defects, isolated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.cli.codegen import verify_failure
from tinyml.codegen import generate, semantics
from tinyml.codegen.verify import reference_outputs, verify


def _dilated_1d_model() -> bytes:
    """The issue's model: Conv1D stride 3, SeparableConv1D dilation 2 ('same'), pooling, Dense."""
    import keras

    from tests.codegen_models import convert

    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((96, 3)), layers.Conv1D(8, 5, strides=3, padding="same", activation="relu"),
        layers.SeparableConv1D(16, 3, dilation_rate=2, padding="same", activation="relu"),
        layers.AveragePooling1D(2), layers.Conv1D(16, 3, activation="relu"), layers.GlobalMaxPooling1D(),
        layers.Dense(4, activation="softmax")])
    rng = np.random.default_rng(1)
    for w in model.weights:
        if "bias" in w.path:
            w.assign(rng.normal(0.0, 0.3, size=w.shape).astype(np.float32))
    return convert(model)[0]


@pytest.fixture(scope="module")
def dilated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dilated") / "dilated.tflite"
    path.write_bytes(_dilated_1d_model())
    return path


def test_verify_passes_on_the_reference_and_names_the_interpreter_and_op(dilated: Path, tmp_path: Path) -> None:
    proc = run_cli("codegen", dilated, "--out", tmp_path / "c", "--verify", "50", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "C vs the reference 0 mismatching bytes" in proc.stdout
    assert "note: TFLM disagrees with the reference at op 4 SPACE_TO_BATCH_ND (output shape [1, 1, 18, 8] " \
           "instead of [2, 1, 18, 8]" in proc.stdout
    assert "code generator bug" not in proc.stdout + proc.stderr
    report = json.loads((tmp_path / "c" / "model.codegen.json").read_text())["verify"]
    assert report["tflm_mismatches"] > 100 and report["reference_mismatches"] == 0
    assert [(d["engine"], d["op"]) for d in report["departures"]][0] == ("tflm", "SPACE_TO_BATCH_ND")


def _flip_first(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    out.flat[0] = -127 if out.flat[0] > 0 else 127
    return out


def test_a_generator_bug_is_named_at_its_op(dilated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lowering made wrong on purpose (DEPTHWISE_CONV_2D's first weight changed): --verify's comparison fails as a
    generator bug and the traced C names that operator, not the ones downstream of it."""
    from tinyml.codegen.ops import LOWERINGS, Const

    right = LOWERINGS["DEPTHWISE_CONV_2D"]

    def wrong(g: object) -> list:
        steps = right(g)
        for step in steps:
            step.args = [Const(a.ctype, _flip_first(a.values), a.role)
                         if isinstance(a, Const) and a.role == "weights" else a for a in step.args]
        return steps

    monkeypatch.setitem(LOWERINGS, "DEPTHWISE_CONV_2D", wrong)
    gen = generate(dilated.read_bytes(), prefix="m")
    v = verify(gen, dilated.read_bytes(), 20, tmp_path)
    assert v["reference_mismatches"] > 0
    assert (v["c_first_wrong_op"]["op_index"], v["c_first_wrong_op"]["op"]) == (5, "DEPTHWISE_CONV_2D")
    err = verify_failure(v)
    assert "differs from the reference semantics" in str(err) and "code generator bug" in err.hint
    assert "first at op 5 DEPTHWISE_CONV_2D" in str(err)


def test_reference_is_tflm_where_tflm_is_right(shared: Path) -> None:
    """On a model without SPACE_TO_BATCH_ND the op-by-op reference is TFLM's output exactly."""
    tflite = (shared / "models" / "vib_cnn_int8.tflite").read_bytes()
    x = np.random.default_rng(3).integers(-128, 128, size=(30, 768), dtype=np.int8)
    trace = semantics.trace(tflite, x)
    assert np.array_equal(trace.outputs, reference_outputs(tflite, x))
    assert trace.first("tflm") is None


def test_space_to_batch_reference_pads_with_the_zero_point(dilated: Path) -> None:
    """The second TFLM defect, isolated: given the right output shape, TFLM's SPACE_TO_BATCH_ND copies the
    input cells like the reference but pads with an uninitialised params field (0 or 32 in runs here),
    where the reference pads with the zero point (-128 here). What TFLM pads with is not asserted: it is
    whatever memory holds, and may by chance equal the zero point."""
    from tinyml.codegen.shapes import fold
    from tinyml.model.interpreters import op_runner
    from tinyml.model.tflite import read_model

    tflite = dilated.read_bytes()
    model = fold(read_model(tflite))
    op = next(o for o in model.operators if o.opcode == "SPACE_TO_BATCH_ND")
    shapes = {t.index: t.shape for t in model.tensors}
    consts = {t: model.tensors[t].data for t in op.inputs[1:]}
    one = semantics.op_model(tflite, op.index, shapes, consts)
    x = np.full(shapes[op.inputs[0]], 5, np.int8)
    zp = model.tensors[op.outputs[0]].quant.zero_points[0]
    tflm, ref = (op_runner(one, e)([x])[0] for e in ("tflm", "litert-ref"))
    assert tflm.shape == ref.shape and zp != 0
    padded = ref != 5
    assert padded.any() and (ref[padded] == zp).all()
    assert (tflm[~padded] == 5).all()


def test_firmware_new_tflm_refuses_dilated_models(dilated: Path, tmp_path: Path) -> None:
    """TFLM firmware would compute these models wrongly; `firmware new --runtime tflm` refuses them, saying why."""
    proc = run_cli("firmware", "new", "--board", "esp32-c3-devkitm-1", "--model", dilated, "--out", tmp_path / "fw",
                   "--runtime", "tflm")
    assert_clean_error(proc, "TFLM firmware would compute this model wrongly: TFLM disagrees with the reference "
                       "at op 4 SPACE_TO_BATCH_ND", "--runtime native")
    assert not (tmp_path / "fw").exists()


def test_inspect_warns_that_tflm_computes_dilated_models_wrongly(dilated: Path, shared: Path) -> None:
    proc = run_cli("inspect", dilated, "--no-arena", "--no-codegen")
    assert proc.returncode == 0, proc.stderr
    assert "warning: TFLM computes this model wrongly: TFLM disagrees with the reference at op 4 SPACE_TO_BATCH_ND" \
        in proc.stdout
    plain = run_cli("inspect", shared / "models" / "vib_cnn_int8.tflite", "--no-arena", "--no-codegen")
    assert plain.returncode == 0 and "wrongly" not in plain.stdout
