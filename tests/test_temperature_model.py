"""The temperature anomaly detector end to end through the CLI: synth, train, quantize, predict.

The default temperature spec and the default autoencoder must separate step, runaway and
stuck-sensor windows from normal ones, also as a full-int8 model run by TFLM.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.data.features import compute_features

SEED = "1"  # the hardest of the seeds in docs/benchmarks.md


@pytest.fixture(scope="module")
def temp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("temperature")
    data, run = base / "temp.npz", base / "run"
    for args in (("data", "synth", "temperature", "--out", data, "--seed", SEED),
                 ("train", data, "--model", "autoencoder", "--out", run, "--seed", SEED, "--quiet"),
                 ("quantize", run)):
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
    return run, data


def test_int8_auc_on_the_test_split(temp_run):
    run, _ = temp_run
    q = json.loads((run / "quantization.json").read_text())
    assert q["metric"] == "auc" and q["passed"]
    assert q["float"]["evaluated_on"] == "test"
    assert q["int8_tflm"]["auc"] >= 0.85
    assert abs(q["float"]["auc"] - q["int8_tflm"]["auc"]) <= 0.01


def test_predict_scores_every_kind(temp_run, tmp_path):
    run, data = temp_run
    out = tmp_path / "scores.csv"
    proc = run_cli("predict", run / "model_int8.tflite", data, "--split", "test", "--runtime", "tflm", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["window", "split", "group", "label", "pred", "anomaly_score"]
    assert {r["split"] for r in rows} == {"test"}
    threshold = json.loads((run / "quantization.json").read_text())["int8_threshold"]  # the int8 model's own
    flagged: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        score = float(r["anomaly_score"])
        assert score >= 0
        assert r["pred"] == ("anomaly" if score > threshold else "normal")
        flagged[r["label"]].append(r["pred"] == "anomaly")
    share = {k: sum(v) / len(v) for k, v in flagged.items()}
    assert set(share) == {"normal", "step", "runaway", "stuck"}
    assert share["step"] >= 0.9 and share["stuck"] >= 0.9
    assert share["runaway"] >= 0.5 and share["runaway"] > share["normal"]
    assert share["normal"] <= 0.25


def test_predict_rejects_windows_of_another_length(temp_run, tmp_path):
    run, _ = temp_run
    other = tmp_path / "short.npz"
    assert run_cli("data", "synth", "temperature", "--out", other, "--window", "64", "--per-class", "24").returncode == 0
    assert_clean_error(run_cli("predict", run, other, "--out", tmp_path / "s.csv"), "trained on")


def test_curvature_tells_acceleration_from_a_thermal_lag():
    t = np.linspace(-1, 1, 128)
    windows = np.stack([3 * t**2 + 2 * t + 20,               # parabola: coefficient 3 on time in [-1, 1]
                        5 * t + 1,                           # straight line: no curvature
                        25 - 10 * np.exp(-(t + 1) / 0.5),    # lag approaching its set point from below
                        8 * ((t + 1) / 2) ** 2 + 30])[:, :, None]  # runaway-like rise
    c = compute_features(windows, 1 / 60, [{"name": "curvature"}])[:, 0]
    assert c[0] == pytest.approx(3, rel=1e-5) and abs(c[1]) < 1e-5
    assert c[2] < 0 < c[3]
    assert compute_features(np.ones((1, 2, 1)), 1.0, [{"name": "curvature"}])[0, 0] == 0  # too short to bend


def test_temperature_samples_keep_room_above_the_training_peak(temp_run):
    """A temperature's level wanders past its training peak (the season): its int16 samples keep 4x that peak
    in range (features_int.KIND_HEADROOM) where vibration keeps the whole range for its quiet windows."""
    from tinyml.data import features_int as fi
    from tinyml.data.dataset import load
    from tinyml.data.split import TRAIN

    run, data = temp_run
    shift, = json.loads((run / "preprocess.json").read_text())["sample_shift"]
    ds = load(data)
    normal = ds.x[(ds.split == TRAIN) & (ds.y == ds.classes.index(ds.normal_class))]  # what the run fitted on
    peak = float(np.abs(normal).max())
    assert 4 * peak * 2.0**shift <= fi.SAMPLE_MAX < 8 * peak * 2.0**shift
    warmer = np.full((1, 4, 1), 2.5 * peak, np.float32)  # an afternoon a season later: read, not saturated
    assert fi.to_samples(warmer, [shift]).max() < fi.SAMPLE_MAX
    assert fi.sample_shifts(normal) == [shift + 2]  # without the room: 2 bits more gain
