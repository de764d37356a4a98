"""Real data end to end: the fan accelerometer CSV, held-out speed levels, int8 accuracy >= 87%.

Import (the data package's importer) -> mlp on the default vibration features -> full-int8
quantization -> LiteRT and TFLM accuracy on four speed levels never seen in training.
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
def fan_run(shared, tmp_path_factory):
    base = tmp_path_factory.mktemp("fan")
    data, run = base / "fan.npz", base / "run"
    proc = run_cli("data", "import", shared / "datasets/fan-imbalance/accelerometer.csv", "--out", data, *FAN_IMPORT)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("train", data, "--model", "mlp", "--out", run, "--epochs", "150", "--quiet")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("quantize", run)
    assert proc.returncode == 0, proc.stderr
    return data, run


def test_int8_accuracy_on_held_out_speeds(fan_run):
    _, run = fan_run
    q = json.loads((run / "quantization.json").read_text())
    assert q["float"]["evaluated_on"] == "test"
    assert q["float"]["accuracy"] >= 0.87
    assert q["int8_litert"]["accuracy"] >= 0.87
    assert q["int8_tflm"]["accuracy"] >= 0.87
    assert q["passed"] and abs(q["drop"]["int8_tflm"]) <= 1.0


def test_predict_agrees_with_the_quantization_report(fan_run):
    data, run = fan_run
    out = run / "test_scores.csv"
    proc = run_cli("predict", run / "model_int8.tflite", data, "--split", "test", "--runtime", "tflm", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    q = json.loads((run / "quantization.json").read_text())
    assert len(rows) == q["int8_tflm"]["n"]
    accuracy = sum(r["label"] == r["pred"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(q["int8_tflm"]["accuracy"])
