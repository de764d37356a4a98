"""`tinyml quantize` and the host interpreters: the float-vs-int8 report and its failure modes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, record_preprocess, run_cli
from tinyml.data.dataset import Dataset, load
from tinyml.errors import CheckFailed, InputError
from tinyml.model import interpreters
from tinyml.quantize import default_tolerance, quantize_run
from tinyml.rundir import open_model


def test_report_compares_float_litert_and_tflm(trained_run):
    q = json.loads((trained_run.run_dir / "quantization.json").read_text())
    for name in ("float", "int8_litert", "int8_tflm"):
        assert q[name]["n"] > 0 and 0 <= q[name]["accuracy"] <= 1
    assert q["metric"] == "accuracy" and q["tolerance"] == 100.0
    assert q["int8_scored_by"] == "tflm" and q["departures"] == []  # TFLM computes this model as the reference
    assert q["drop"]["int8_tflm"] == pytest.approx(100 * (q["float"]["accuracy"] - q["int8_tflm"]["accuracy"]))
    assert set(q["largest_class_change"]["int8_tflm"]) == {"class", "recall_change_points"}
    assert q["tflite_bytes"] == (trained_run.run_dir / "model_int8.tflite").stat().st_size


def test_int8_model_tracks_the_float_model(trained_run):
    """Most windows get the same class from float Keras, LiteRT and TFLM."""
    import keras

    run = trained_run.run_dir
    ds = load(trained_run.data).subset("test")
    x = open_model(run).preprocess().apply(ds.x)
    tfl = (run / "model_int8.tflite").read_bytes()
    q = interpreters.io_quantization(tfl)
    assert q.in_shape == (256, 6) and q.out_shape == (3,) and q.in_dtype == "int8"
    xq = interpreters.quantize_input(x, q.in_scale, q.in_zp)
    tflm = interpreters.tflm_run(tfl, xq)
    lite = interpreters.litert_run(tfl, xq)
    assert tflm.dtype == np.int8 and tflm.shape == (ds.n, 3)
    assert np.abs(tflm.astype(int) - lite).max() <= 2  # known +-1 rounding differences, widened by softmax
    float_pred = keras.models.load_model(run / "model.keras").predict(x, verbose=0).argmax(1)
    assert (tflm.argmax(1) == float_pred).mean() >= 0.9


def test_quantize_and_dequantize_round_trip():
    x = np.array([-10.0, -0.26, 0.0, 0.24, 0.26, 10.0])
    q = interpreters.quantize_input(x, 0.5, 3)
    assert q.tolist() == [-17, 2, 3, 3, 4, 23]
    np.testing.assert_allclose(interpreters.dequantize(q, 0.5, 3), (q.astype(float) - 3) * 0.5)
    assert interpreters.quantize_input(np.array([1e9, -1e9]), 0.1, 0).tolist() == [127, -128]


def test_float_and_corrupt_models_are_rejected(trained_run):
    from tflite_micro.python.tflite_micro import runtime

    float_model = (Path(runtime.__file__).parent / "sine_float.tflite").read_bytes()
    with pytest.raises(InputError, match="not full-int8"):
        interpreters.io_quantization(float_model)
    good = (trained_run.run_dir / "model_int8.tflite").read_bytes()
    for bad in (good[:100], b"\0" * 64, b""):
        with pytest.raises(InputError):
            interpreters.tflm_run(bad, np.zeros((1, 256, 3), np.int8))
    with pytest.raises(InputError, match="shape"):
        interpreters.tflm_run(good, np.zeros((1, 128, 3), np.int8))


@pytest.fixture()
def run_copy(trained_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, dst)
    return dst


def test_tolerance_exceeded_fails_cleanly(trained_run, run_copy, tmp_path):
    """Calibrating on training windows 1e30 times louder and quieter (log levels far outside
    the real ones) leaves the real inputs a few int8 steps. (float64 per_window, as runs trained
    before integer preprocessing: integer samples saturate, which bounds the levels.)"""
    from tinyml.preprocess import Preprocess

    ds = load(trained_run.data)
    Preprocess.fit(ds.x[ds.split == 0], "per_window", ds.channels, ds.fs, arithmetic="float64").save(run_copy)
    record_preprocess(run_copy)
    gain = np.where(np.arange(ds.n) % 2 == 0, 1e30, 1e-30)[:, None, None]
    shifted = np.where((ds.split == 0)[:, None, None], ds.x * gain, ds.x).astype(np.float32)
    bad = Dataset(shifted, ds.y, ds.classes, ds.channels, ds.fs, ds.split, ds.groups, ds.kind).save(tmp_path / "q.npz")
    proc = run_cli("quantize", run_copy, "--data", bad, "--tolerance", "1")
    assert_clean_error(proc, "more than the tolerance 1 (set by --tolerance)", "windows)", "raise --tolerance")
    assert proc.returncode == 5
    report = json.loads((run_copy / "quantization.json").read_text())
    assert report["passed"] is False and max(report["drop"].values()) > 1
    assert not (run_copy / "model_int8.tflite").exists()  # a failed quantize leaves no int8 model to use
    assert_clean_error(run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", run_copy, "--out",
                               tmp_path / "fw"), "the last quantize failed its tolerance")
    with pytest.raises(CheckFailed) as failed:  # a project names its own key, not the CLI flag
        quantize_run(run_copy, bad, 1.0, tolerance_key="[quantize] tolerance in p/tinyml.toml")
    assert "raise [quantize] tolerance in p/tinyml.toml" in failed.value.hint


def test_default_tolerance_scales_with_the_evaluated_windows():
    """1 point, or 2 windows when the split is small (one window of 48 is 2.08 points)."""
    assert default_tolerance("accuracy", 48)[0] == pytest.approx(200 / 48)
    assert default_tolerance("accuracy", 92)[0] == pytest.approx(200 / 92)
    assert default_tolerance("accuracy", 1000)[0] == 1.0
    assert default_tolerance("auc", 48)[0] == 0.01
    assert "2 of the 48 evaluated windows" in default_tolerance("accuracy", 48)[1]


def test_run_dir_problems(run_copy, tmp_path):
    assert_clean_error(run_cli("quantize", tmp_path / "nowhere"), "not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(run_cli("quantize", empty), "not a tinyml run directory")
    (run_copy / "model.keras").unlink()
    assert_clean_error(run_cli("quantize", run_copy), "no model.keras")


def test_missing_training_data(run_copy, tmp_path):
    assert_clean_error(run_cli("quantize", run_copy, "--data", tmp_path / "gone.npz"), "dataset not found")


def test_quantize_prints_one_line_without_tensorflow_noise(run_copy):
    proc = run_cli("quantize", run_copy, "--tolerance", "100")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "int8 TFLM" in proc.stdout and "reference" not in proc.stdout
    for noise in ("fully_quantize", "Saved artifact", "XNNPACK", "Statistics for quantized inputs", "absl"):
        assert noise not in proc.stdout + proc.stderr


def test_dilated_model_is_scored_with_the_reference_semantics(trained_run, run_copy, tmp_path):
    """TFLM computes dilated convolutions wrongly (docs/codegen.md, "Reference semantics"), so on
    such a model the int8 accuracy is the reference semantics', and quantization.json and the
    printed line say so; TFLM's own outputs differ from those scored."""
    import keras

    from tests.codegen_models import dilated
    from tinyml.codegen import semantics
    from tinyml.signing import sha256_file
    from tinyml.train.fit import split_masks

    ds = load(trained_run.data)
    splits = split_masks(ds)
    pre = open_model(run_copy).preprocess()
    keras.utils.set_random_seed(0)
    net = dilated(1, True, 2, "same", input_shape=(256, 6))()
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    net.fit(pre.apply(ds.x[splits.train]), ds.y[splits.train], epochs=8, batch_size=16, verbose=0)
    net.save(run_copy / "model.keras")
    info = json.loads((run_copy / "model.json").read_text())
    info["wrote"]["model.keras"] = sha256_file(run_copy / "model.keras")
    (run_copy / "model.json").write_text(json.dumps(info))

    proc = run_cli("quantize", run_copy, "--tolerance", "100")
    assert proc.returncode == 0, proc.stderr
    assert "int8 reference semantics" in proc.stdout and "int8 TFLM" not in proc.stdout
    assert "TFLM computes this model wrongly (TFLM disagrees with the reference at op" in proc.stderr
    report = json.loads((run_copy / "quantization.json").read_text())
    assert report["int8_scored_by"] == "reference" and "int8_tflm" not in report
    assert report["departures"][0]["engine"] == "tflm" and report["departures"][0]["op"] == "SPACE_TO_BATCH_ND"
    assert report["drop"]["int8_reference"] == pytest.approx(
        100 * (report["float"]["accuracy"] - report["int8_reference"]["accuracy"]))

    tflite = (run_copy / "model_int8.tflite").read_bytes()
    q = interpreters.io_quantization(tflite)
    assert pre.integer  # the device computes its own int8 inputs, as quantize scores them
    x_q = pre.int8_inputs(ds.x[splits.test], q.in_scale, q.in_zp).reshape(-1, *q.in_shape)
    reference = semantics.reference_outputs(tflite, x_q.reshape(len(x_q), -1))
    accuracy = float((reference.argmax(1) == ds.y[splits.test]).mean())
    assert 0 < report["int8_reference"]["n"] == len(x_q)
    assert report["int8_reference"]["accuracy"] == pytest.approx(accuracy)
    assert (interpreters.tflm_run(tflite, x_q).reshape(len(x_q), -1) != reference).any()

    proc = run_cli("predict", run_copy / "model_int8.tflite", trained_run.data, "--out", tmp_path / "s.csv",
                   "--split", "test", "--runtime", "tflm")  # TFLM as asked, with a warning
    assert proc.returncode == 0 and "scored by int8 TFLM" in proc.stdout, proc.stderr
    assert "warning: TFLM computes this model wrongly (TFLM disagrees with the reference at op" in proc.stderr

    proc = run_cli("report", run_copy, "--out", tmp_path / "report.html")
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "report.html").read_text()
    assert "int8 (reference semantics)" in page and 'data-key="int8_reference.accuracy"' in page
    assert "int8 (TFLM)" not in page
