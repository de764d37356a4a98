"""Training: the run directory contract, metrics, reproducibility and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.data.dataset import Dataset
from tinyml.train import metrics
from tinyml.train.fit import class_weights

RUN_FILES = ["model.keras", "metrics.json", "history.json", "training.png", "confusion.png", "preprocess.json",
             "model.json"]


def test_run_dir_holds_every_artifact(trained_run):
    for name in RUN_FILES + ["model_int8.tflite", "quantization.json"]:
        assert (trained_run.run_dir / name).stat().st_size > 0, name
    assert not list(trained_run.run_dir.glob(".*tmp*"))  # atomic writes leave no temp files


def test_model_json_describes_the_model(trained_run):
    info = json.loads((trained_run.run_dir / "model.json").read_text())
    assert info["task"] == "classifier" and info["model"] == "cnn1d"
    assert info["classes"] == ["healthy", "imbalance", "bearing_outer"]
    assert info["normal_class"] == "healthy"  # the gateway counts every other class as an anomaly
    assert info["input_shape"] == [256, 6] and info["output_shape"] == [3]  # per_window: shape + level channels
    assert info["fs"] == 2560.0 and info["channels"] == ["x", "y", "z"]
    assert info["parameters"] < 20_000
    baseline = np.array(info["score_baseline"])
    assert 0 < baseline.size <= 1000 and np.all((baseline > 0) & (baseline <= 1))


def test_metrics_json_is_consistent(trained_run):
    m = json.loads((trained_run.run_dir / "metrics.json").read_text())
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == m["n"]
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert set(m["per_class"]) == {"healthy", "imbalance", "bearing_outer"}


def test_history_json_names_the_kept_epoch(trained_run):
    """cnn1d early stopping watches val_accuracy from epoch 15; with 12 epochs the last one is kept."""
    h = json.loads((trained_run.run_dir / "history.json").read_text())
    info = json.loads((trained_run.run_dir / "model.json").read_text())
    assert h["monitor"] == "val_accuracy" and len(h["epochs"]["loss"]) == info["epochs_run"] == 12
    assert h["kept_epoch"] == 12 and set(h["epochs"]) >= {"loss", "val_loss", "accuracy", "val_accuracy"}


def test_preprocess_standardises_training_windows(trained_run):
    from tinyml.data.dataset import load
    from tinyml.rundir import open_model

    ds = load(trained_run.data)
    prep = open_model(trained_run.run_dir).preprocess()
    assert prep.mode == "per_window"
    x = prep.apply(ds.subset("train").x)
    assert x.dtype == np.float32 and x.shape[1:] == (256, 6)
    np.testing.assert_allclose(x[..., :3].mean(axis=1), 0, atol=1e-4)  # each window's shape
    np.testing.assert_allclose(x[..., :3].std(axis=1), 1, atol=1e-4)
    levels = x[:, 0, 3:]  # the log levels, standardised over the training windows
    np.testing.assert_allclose(levels.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(levels.std(axis=0), 1, atol=1e-3)


def test_metrics_known_values():
    rep = metrics.classification_report(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), ["a", "b", "c"])
    assert rep["accuracy"] == pytest.approx(0.6)
    assert rep["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert rep["per_class"]["a"]["recall"] == pytest.approx(0.5)
    assert rep["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert metrics.roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert metrics.roc_auc(np.array([1.0, 2.0]), np.array([0, 0])) is None


def test_threshold_separates_validation_scores():
    t = metrics.pick_threshold(np.array([0.1, 0.2, 0.3]), np.array([0.9, 1.0]))
    assert 0.3 < t < 0.9


def test_class_weights_balance_rare_classes():
    w = class_weights(np.array([0] * 90 + [1] * 10), 2)
    assert w[1] == pytest.approx(9 * w[0])


def _tiny_dataset(path, labels, classes=("a", "b")):
    n = len(labels)
    rng = np.random.default_rng(0)
    split = np.array([0, 0, 0, 1, 2] * (n // 5 + 1))[:n]
    return Dataset(rng.normal(size=(n, 32, 2)), np.array(labels), list(classes), ["x", "y"], 100.0,
                   split, np.arange(n).astype(str)).save(path)


def test_single_class_is_rejected(tmp_path):
    data = _tiny_dataset(tmp_path / "one.npz", [0] * 20)
    assert_clean_error(run_cli("train", data, "--out", tmp_path / "run"), "single class")


def test_unknown_model_is_rejected(tmp_path):
    data = _tiny_dataset(tmp_path / "d.npz", [0, 1] * 10)
    assert_clean_error(run_cli("train", data, "--model", "resnet", "--out", tmp_path / "run"), "unknown model")
    assert_clean_error(run_cli("train", data, "--epochs", "0", "--out", tmp_path / "run"), "at least 1")


def test_missing_and_corrupt_data_are_rejected(tmp_path):
    assert_clean_error(run_cli("train", tmp_path / "nope.npz", "--out", tmp_path / "run"), "not found")
    data = _tiny_dataset(tmp_path / "d.npz", [0, 1] * 10)
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data.read_bytes()[:200])
    assert_clean_error(run_cli("train", bad, "--out", tmp_path / "run"), "cannot read dataset")
    assert not (tmp_path / "run").exists()


def test_out_must_be_a_directory(tmp_path):
    data = _tiny_dataset(tmp_path / "d.npz", [0, 1] * 10)
    (tmp_path / "file").write_text("x")
    assert_clean_error(run_cli("train", data, "--out", tmp_path / "file"), "is a file")


def test_same_seed_same_model(tmp_path):
    """keras.utils.set_random_seed makes a run reproducible on one machine."""
    from tinyml.train.fit import TrainOptions, train

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 30)
    x = rng.normal(size=(60, 32, 2)) + y[:, None, None] * 0.8
    ds = Dataset(x, y, ["a", "b"], ["x", "y"], 100.0, np.tile([0, 0, 0, 1, 2], 12), np.arange(60).astype(str))
    runs = [train(ds, "cnn1d", tmp_path / f"r{i}", TrainOptions(epochs=3, seed=7, quiet=True)) for i in range(2)]
    assert runs[0] == runs[1]
    baselines = [json.loads((tmp_path / f"r{i}/model.json").read_text())["score_baseline"] for i in range(2)]
    assert baselines[0] == baselines[1]
