"""Feature models: the autoencoder (anomaly score, threshold, AUC) and the mlp with a spec file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.data.dataset import Dataset, load
from tinyml.rundir import open_model

SPEC = [{"name": "rms"}, {"name": "kurtosis"}, {"name": "fft_bands", "bands": 8, "log": True}]


@pytest.fixture(scope="module")
def vib_data(tmp_path_factory):
    from tinyml.data.synth import VibrationOptions, synth_vibration

    ds = synth_vibration(VibrationOptions(per_class=40, seed=5))
    ds = Dataset(ds.x, ds.y, ds.classes, ds.channels, ds.fs, ds.split, ds.groups, ds.kind, "healthy", ds.meta)
    return ds.save(tmp_path_factory.mktemp("features") / "vib.npz")


@pytest.fixture(scope="module")
def ae_run(vib_data):
    run = vib_data.parent / "ae"
    proc = run_cli("train", vib_data, "--model", "autoencoder", "--out", run, "--epochs", "80", "--quiet")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("quantize", run)  # default tolerance: 0.01 AUC
    assert proc.returncode == 0, proc.stderr
    return run


def test_autoencoder_separates_faults_from_healthy(ae_run):
    m = json.loads((ae_run / "metrics.json").read_text())
    info = json.loads((ae_run / "model.json").read_text())
    assert info["task"] == "anomaly" and info["normal_class"] == "healthy"
    assert info["input_shape"] == info["output_shape"]
    assert m["auc"] >= 0.9 and m["threshold"] == info["threshold"] > 0
    assert np.array(m["confusion_matrix"]).shape == (2, 2)
    baseline = np.array(info["score_baseline"])
    assert baseline.size > 0 and np.median(baseline) < info["threshold"]  # healthy validation scores
    hist = m["score_histogram"]  # per class, over shared bins reaching past the threshold
    assert sum(map(sum, hist["counts"].values())) == m["n"] and hist["edges"][-1] > m["threshold"]
    h = json.loads((ae_run / "history.json").read_text())
    best = int(np.argmin(h["epochs"]["val_loss"])) + 1  # val_loss is watched from the first epoch
    assert h["monitor"] == "val_loss" and h["kept_epoch"] == best


def test_autoencoder_int8_keeps_the_auc(ae_run):
    q = json.loads((ae_run / "quantization.json").read_text())
    assert q["metric"] == "auc" and q["tolerance"] == 0.01 and q["passed"]
    assert q["int8_tflm"]["auc"] >= q["float"]["auc"] - 0.01


def test_autoencoder_predict_writes_scores(ae_run, vib_data, tmp_path):
    out = tmp_path / "scores.csv"
    proc = run_cli("predict", ae_run / "model_int8.tflite", vib_data, "--split", "test", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    q = json.loads((ae_run / "quantization.json").read_text())
    assert list(rows[0]) == ["window", "split", "group", "label", "pred", "anomaly_score"]
    for r in rows:  # the .tflite decides with the int8 model's own threshold
        assert r["pred"] == ("anomaly" if float(r["anomaly_score"]) > q["int8_threshold"] else "healthy")
    assert f"AUC {q['int8_litert']['auc']:.4f}" in proc.stdout and "scored by int8 LiteRT" in proc.stdout
    assert (ae_run / "scores.png").stat().st_size > 10_000  # the per-class score histogram


def test_mlp_with_a_feature_spec_file(vib_data, tmp_path):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC))
    run = tmp_path / "mlp"
    proc = run_cli("train", vib_data, "--model", "mlp", "--features", spec_file, "--out", run, "--epochs", "5",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    prep = open_model(run).preprocess()
    assert [e["name"] for e in prep.feature_spec] == ["rms", "kurtosis", "fft_bands"]
    x = prep.apply(load(vib_data).x[:4])
    assert x.shape == (4, 3 * (1 + 1 + 8))  # per channel: rms, kurtosis, 8 bands
    assert json.loads((run / "model.json").read_text())["input_shape"] == [30]


def test_bad_feature_specs(vib_data, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "wavelets"}]')
    assert_clean_error(run_cli("train", vib_data, "--model", "mlp", "--features", bad, "--out", tmp_path / "r"),
                       "unknown feature")
    assert_clean_error(run_cli("train", vib_data, "--model", "mlp", "--features", "spectral", "--out", tmp_path / "r"),
                       "neither a preset nor a file")
    bad.write_text("{not json")
    assert_clean_error(run_cli("train", vib_data, "--model", "mlp", "--features", bad, "--out", tmp_path / "r"),
                       "not valid json")
