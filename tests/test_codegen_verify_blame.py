"""`codegen --verify` blames the code generator only where TFLM and LiteRT agree (issue 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.cli.codegen import verify_failure


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


def test_interpreter_disagreement_is_not_blamed_on_the_generator(dilated: Path, tmp_path: Path) -> None:
    path = dilated
    proc = run_cli("codegen", path, "--out", tmp_path / "c", "--verify", "50", timeout=600)
    assert_clean_error(proc, "TFLM and LiteRT disagree", "vs its reference kernels: 0)", "suspected ops: SPACE_TO_BATCH_ND (op",
                       "BATCH_TO_SPACE_ND (op", "Where TFLM is not the reference")
    assert "this is a code generator bug" not in proc.stderr and proc.returncode == 5


def test_bytes_where_the_interpreters_agree_are_a_generator_bug() -> None:
    err = verify_failure({"codegen_mismatches": 3, "disputed_mismatches": 5, "c_vs_litert_mismatches": 8,
                          "suspect_ops": []})
    assert "which agree, in 3 output bytes" in str(err) and "code generator bug" in err.hint
    err = verify_failure({"codegen_mismatches": 0, "disputed_mismatches": 5, "c_vs_litert_mismatches": 0,
                          "suspect_ops": []})
    assert "suspected ops: not localized" in str(err)



def test_firmware_new_tflm_refuses_dilated_models(dilated: Path, tmp_path: Path) -> None:
    """TFLM firmware would compute these models wrongly; `firmware new --runtime tflm` refuses them."""
    proc = run_cli("firmware", "new", "--board", "esp32-c3-devkitm-1", "--model", dilated, "--out", tmp_path / "fw",
                   "--runtime", "tflm")
    assert_clean_error(proc, "SPACE_TO_BATCH_ND", "--runtime native")
    assert not (tmp_path / "fw").exists()


def test_inspect_warns_that_tflm_computes_dilated_models_wrongly(dilated: Path, shared: Path) -> None:
    proc = run_cli("inspect", dilated, "--no-arena", "--no-codegen")
    assert proc.returncode == 0, proc.stderr
    assert "warning: TFLM computes this model wrongly" in proc.stdout and "SPACE_TO_BATCH_ND (op" in proc.stdout
    plain = run_cli("inspect", shared / "models" / "vib_cnn_int8.tflite", "--no-arena", "--no-codegen")
    assert plain.returncode == 0 and "wrongly" not in plain.stdout
