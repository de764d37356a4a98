"""`tinyml predict`: one CSV row per window from the float or the int8 model."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.data.dataset import Dataset, load


def _rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def scored(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict")
    paths = {"keras": out / "float.csv", "tflite": out / "int8.csv"}
    paths["stdout"] = {}
    for model, path in ((trained_run.run_dir, paths["keras"]),
                        (trained_run.run_dir / "model_int8.tflite", paths["tflite"])):
        proc = run_cli("predict", model, trained_run.data, "--out", path)
        assert proc.returncode == 0, proc.stderr
        paths["stdout"][path.name] = proc.stdout
    return paths


def test_one_row_per_window_with_class_scores(scored, trained_run):
    ds = load(trained_run.data)
    split_names = {0: "train", 1: "val", 2: "test"}
    for path in (scored["keras"], scored["tflite"]):
        rows = _rows(path)
        assert len(rows) == ds.n
        assert list(rows[0]) == ["window", "split", "group", "label", "pred", "healthy", "imbalance", "bearing_outer"]
        for i, (row, y) in enumerate(zip(rows, ds.y, strict=True)):
            scores = np.array([float(row[c]) for c in ds.classes])
            assert int(row["window"]) == i and row["split"] == split_names[int(ds.split[i])]
            assert row["group"] == str(ds.groups[i])
            assert row["label"] == ds.classes[y]
            assert row["pred"] == ds.classes[int(scores.argmax())]
            assert scores.sum() == pytest.approx(1.0, abs=0.02)


def test_summary_names_the_runtime_and_the_accuracy(scored):
    for name, runtime in (("float.csv", "float Keras"), ("int8.csv", "int8 LiteRT")):
        out = scored["stdout"][name]
        rows = _rows(scored["keras" if name == "float.csv" else "tflite"])
        accuracy = np.mean([r["label"] == r["pred"] for r in rows])
        assert f"scored by {runtime}" in out
        assert f"accuracy {accuracy:.4f} on {len(rows)} labelled windows" in out


def test_float_and_int8_predictions_agree(scored):
    f, q = _rows(scored["keras"]), _rows(scored["tflite"])
    agree = np.mean([a["pred"] == b["pred"] for a, b in zip(f, q, strict=True)])
    assert agree >= 0.95


def test_split_and_unlabeled_data(trained_run, tmp_path):
    ds = load(trained_run.data)
    out = tmp_path / "test.csv"
    proc = run_cli("predict", trained_run.run_dir / "model_int8.tflite", trained_run.data, "--split", "test",
                   "--runtime", "tflm", "--out", out)
    assert proc.returncode == 0 and "scored by int8 TFLM" in proc.stdout, proc.stderr
    rows = _rows(out)
    assert len(rows) == ds.subset("test").n
    assert [int(r["window"]) for r in rows] == np.flatnonzero(ds.split == 2).tolist()
    assert {r["split"] for r in rows} == {"test"}
    unlabeled = Dataset(ds.x[:5], -np.ones(5, int), ds.classes, ds.channels, ds.fs, ds.split[:5],
                        ds.groups[:5], ds.kind).save(tmp_path / "u.npz")
    proc = run_cli("predict", trained_run.run_dir / "model_int8.tflite", unlabeled, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert list(_rows(out)[0])[:5] == ["window", "split", "group", "pred", "healthy"]
    assert "accuracy" not in proc.stdout


def test_bad_inputs(trained_run, tmp_path):
    out = tmp_path / "s.csv"
    assert_clean_error(run_cli("predict", tmp_path / "none", trained_run.data, "--out", out), "not found")
    assert_clean_error(run_cli("predict", trained_run.run_dir, tmp_path / "none.npz", "--out", out), "not found")
    ds = load(trained_run.data)
    short = Dataset(ds.x[:4, :128], ds.y[:4], ds.classes, ds.channels, ds.fs, ds.split[:4], ds.groups[:4])
    assert_clean_error(run_cli("predict", trained_run.run_dir, short.save(tmp_path / "short.npz"), "--out", out),
                       "trained on")
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    (run / "model_int8.tflite").write_bytes((run / "model_int8.tflite").read_bytes()[:500])
    assert_clean_error(run_cli("predict", run / "model_int8.tflite", trained_run.data, "--out", out), "tflite")
    from tflite_micro.python.tflite_micro import runtime

    sine = Path(runtime.__file__).parent / "sine_float.tflite"
    (run / "model_int8.tflite").write_bytes(sine.read_bytes())  # a model copied into the run is not its own
    assert_clean_error(run_cli("predict", run / "model_int8.tflite", trained_run.data, "--out", out),
                       "not the model quantization.json describes")
    assert not out.exists()
