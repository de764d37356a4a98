"""Real data end to end: the fan accelerometer CSV, held-out speed levels, int8 accuracy >= 87%.

Import (the data package's importer) -> mlp on the default vibration features, and cnn1d on
the raw windows (per_window preprocessing) -> full-int8 quantization -> LiteRT and TFLM
accuracy on four speed levels never seen in training.
"""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow
FAN_IMPORT = ["--columns", "x,y,z", "--label-column", "Sensor Configuration",
              "--group-column", "Rotation Speed Percentage", "--test-groups", "25,45,65,85",
              "--fs", "50", "--window", "128", "--hop", "32", "--kind", "vibration"]


@pytest.fixture(scope="module")
def fan_data(shared, tmp_path_factory):
    data = tmp_path_factory.mktemp("fan") / "fan.npz"
    proc = run_cli("data", "import", shared / "datasets/fan-imbalance/accelerometer.csv", "--out", data, *FAN_IMPORT)
    assert proc.returncode == 0, proc.stderr
    return data


def _train_and_quantize(data, run, model):
    proc = run_cli("train", data, "--model", model, "--out", run, "--epochs", "150", "--quiet")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("quantize", run)
    assert proc.returncode == 0, proc.stderr
    return data, run


@pytest.fixture(scope="module")
def fan_run(fan_data):
    return _train_and_quantize(fan_data, fan_data.parent / "run", "mlp")


@pytest.fixture(scope="module")
def fan_cnn_run(fan_data):
    return _train_and_quantize(fan_data, fan_data.parent / "cnn", "cnn1d")


@pytest.mark.parametrize("run_fixture", ["fan_run", "fan_cnn_run"])
def test_int8_accuracy_on_held_out_speeds(run_fixture, request):
    _, run = request.getfixturevalue(run_fixture)
    q = json.loads((run / "quantization.json").read_text())
    assert q["float"]["evaluated_on"] == "test"
    assert q["float"]["accuracy"] >= 0.87
    assert q["int8_litert"]["accuracy"] >= 0.87
    assert q["int8_tflm"]["accuracy"] >= 0.87
    assert q["passed"] and abs(q["drop"]["int8_tflm"]) <= 1.0


@pytest.mark.parametrize("run_fixture", ["fan_run", "fan_cnn_run"])
def test_predict_agrees_with_the_quantization_report(run_fixture, request):
    data, run = request.getfixturevalue(run_fixture)
    out = run / "test_scores.csv"
    proc = run_cli("predict", run / "model_int8.tflite", data, "--split", "test", "--runtime", "tflm", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    q = json.loads((run / "quantization.json").read_text())
    assert len(rows) == q["int8_tflm"]["n"]
    accuracy = sum(r["label"] == r["pred"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(q["int8_tflm"]["accuracy"])
