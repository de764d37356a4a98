"""The run directory (`tinyml.rundir`): one record per model path, fingerprints that make stale
artifacts visible, and every command refusing a model_int8.tflite that no longer matches its run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.errors import InputError
from tinyml.rundir import (
    MODEL_INT8,
    MODEL_JSON,
    PREPROCESS_JSON,
    QUANTIZATION_JSON,
    Labels,
    int8_model,
    open_model,
    read_labels,
)


@pytest.fixture()
def run_copy(trained_run, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, dst)
    return dst


def test_one_record_for_a_run_dir_any_file_in_it_and_a_bare_tflite(trained_run, shared: Path) -> None:
    run = trained_run.run_dir
    for path in (run, run / MODEL_INT8, run / MODEL_JSON, run / "model.keras"):
        model = open_model(path)
        assert model.run_dir == run and model.labels.task == "classifier"
        assert model.labels.classes == ("healthy", "imbalance", "bearing_outer")
    assert open_model(run / "model.keras").keras() == run / "model.keras"
    m = int8_model(run)
    assert m.tflite == run / MODEL_INT8 and m.run_dir == run and m.source_name == "run"
    assert m.sha256 == json.loads((run / QUANTIZATION_JSON).read_text())["wrote"][MODEL_INT8]
    assert m.input_bytes == 256 * 6 and m.output_bytes == 3 and m.preprocess().mode == "per_window"
    bare = int8_model(shared / "models" / "feat_ae_int8.tflite")
    assert bare.run_dir is None and bare.task == "anomaly" and bare.preprocess() is None
    assert bare.labels.classes == () and bare.threshold is None
    info = json.loads((run / MODEL_JSON).read_text())
    assert set(info["wrote"]) == {"model.keras", PREPROCESS_JSON} and set(info["made_from"]) == {"dataset"}


def test_label_meanings() -> None:
    clf = Labels(task="classifier", classes=("ok", "wobble"), normal_class="ok")
    assert (clf.class_name(1), clf.class_name(2), clf.is_anomaly(0), clf.is_anomaly(1)) == ("wobble", None, False, True)
    ae = Labels(task="anomaly", threshold=0.5)
    assert (ae.class_name(0), ae.class_name(1), ae.is_anomaly(1), ae.is_anomaly(0xFF)) == ("normal", "anomaly", True, None)
    assert Labels().class_name(0) is None and Labels().is_anomaly(1) is True
    # an anomaly detector's label 2 is a sensor fault (its stuck guard): an anomaly the gateway alerts on at once
    assert (ae.class_name(2), ae.is_anomaly(2), ae.is_fault(2), ae.is_fault(1)) == ("sensor_fault", True, True, False)
    assert not clf.is_fault(2) and not Labels().is_fault(2) and Labels().is_anomaly(2) is False


def test_labels_need_a_task_and_well_formed_fields(tmp_path: Path) -> None:
    (tmp_path / MODEL_JSON).write_text(json.dumps({"task": "anomaly", "threshold": "high"}))
    with pytest.raises(InputError, match="malformed"):
        read_labels(tmp_path)
    (tmp_path / MODEL_JSON).write_text(json.dumps({"classes": ["a"]}))
    with pytest.raises(InputError, match="no task"):
        read_labels(tmp_path / MODEL_JSON)
    apart = tmp_path / "pump.json"  # a model description kept apart from its run: read as it is
    apart.write_text(json.dumps({"task": "anomaly", "threshold": 0.5}))
    assert read_labels(apart).threshold == 0.5


def test_a_model_int8_from_another_model_keras_is_refused_everywhere(run_copy: Path, tmp_path: Path) -> None:
    """Retrained (or copied over) model.keras: the int8 model was made from the old one."""
    keras = run_copy / "model.keras"
    keras.write_bytes(keras.read_bytes() + b"\0")
    with pytest.raises(InputError, match="stale"):
        int8_model(run_copy)
    for args in (("firmware", "new", "--board", "qemu-mps2-an386", "--model", run_copy, "--out", tmp_path / "fw"),
                 ("inspect", run_copy), ("export", "c-array", run_copy / MODEL_INT8, "--out", tmp_path / "c"),
                 ("codegen", run_copy / MODEL_INT8, "--out", tmp_path / "cg"),
                 ("emulate", "--model", run_copy, "--tcp", "0"),
                 ("validate", "--board", "qemu-mps2-an386", "--model", run_copy, "--limit", "2")):
        assert_clean_error(run_cli(*args, timeout=120), "stale", "tinyml quantize")
    assert not (tmp_path / "fw").exists() and not (tmp_path / "c").exists()


def test_a_replaced_or_unrecorded_int8_model_is_refused(run_copy: Path, shared: Path) -> None:
    (run_copy / MODEL_INT8).write_bytes((shared / "models" / "vib_cnn_int8.tflite").read_bytes())
    with pytest.raises(InputError, match="not the model quantization.json describes"):
        int8_model(run_copy)
    (run_copy / QUANTIZATION_JSON).unlink()
    with pytest.raises(InputError, match="no record of what it was made from") as exc:
        int8_model(run_copy / MODEL_INT8)
    assert "tinyml quantize" in exc.value.hint


def test_a_preprocess_json_changed_after_training_is_refused(run_copy: Path, trained_run) -> None:
    pre = json.loads((run_copy / PREPROCESS_JSON).read_text())
    pre["std"] = [s * 2 for s in pre["std"]]
    (run_copy / PREPROCESS_JSON).write_text(json.dumps(pre))
    with pytest.raises(InputError, match="not the one written with"):
        open_model(run_copy).preprocess()
    with pytest.raises(InputError, match="stale"):
        int8_model(run_copy)
    assert_clean_error(run_cli("predict", run_copy, trained_run.data, "--out", run_copy / "s.csv"),
                       "not the one written with")


def test_train_into_a_non_empty_run_dir_needs_force_and_drops_the_old_int8(run_copy: Path, trained_run,
                                                                           tmp_path: Path) -> None:
    args = ("train", trained_run.data, "--model", "mlp", "--epochs", "1", "--out", run_copy)
    assert_clean_error(run_cli(*args), "not empty", "--force")
    assert (run_copy / MODEL_INT8).is_file()  # refused before touching anything
    proc = run_cli(*args, "--force")
    assert proc.returncode == 0, proc.stderr
    assert not (run_copy / MODEL_INT8).exists() and not (run_copy / QUANTIZATION_JSON).exists()
    assert json.loads((run_copy / MODEL_JSON).read_text())["model"] == "mlp"
    assert_clean_error(run_cli("validate", "--board", "qemu-mps2-an386", "--model", run_copy, "--data",
                               trained_run.data, "--limit", "5"), f"has no {MODEL_INT8}", "tinyml quantize")
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is fine without --force
    assert run_cli("train", trained_run.data, "--model", "mlp", "--epochs", "1", "--out", empty).returncode == 0
