"""The gateway names classes: a run directory's classes reach the status text and /status keys."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tinyml.device import protocol
from tinyml.errors import InputError
from tinyml.gateway.config import load, project_model, route_for_run
from tinyml.gateway.ingest import LineState
from tinyml.gateway.processor import Processor
from tinyml.gateway.status import format_text, snapshot
from tinyml.gateway.store import Store


def _stream(model_hash: bytes, labels: list[int]) -> bytes:
    hello = protocol.encode(protocol.Hello(1, "b", "1", "fan-1", model_hash, 1, 2, 3, 1, protocol.LATENCY_US))
    return hello + b"".join(protocol.encode(protocol.Result(seq, 1, seq * 10, 500, protocol.LATENCY_US, label, 0.5,
                                                            (1, -2))) for seq, label in enumerate(labels))


def _status(tmp_path: Path, config, model_hash: bytes, labels: list[int]) -> dict:
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config)
    line = LineState("p1")
    proc.process(line.feed(_stream(model_hash, labels), 1000.0), 1000.0)
    snap = snapshot(store.conn, now=1001.0)
    store.close()
    return snap


def test_a_run_directory_names_the_classes_of_devices_running_its_model(trained_run, tmp_path):
    tflite = (trained_run.run_dir / "model_int8.tflite").read_bytes()
    model_hash = hashlib.sha256(tflite).digest()[:8]
    config = load(ports=("socket://127.0.0.1:1",), db=tmp_path / "g.db", models=(trained_run.run_dir,))
    route = config.models[0]
    assert route.model_hash == model_hash.hex() and route.devices == ("*",)  # one --model: every device
    snap = _status(tmp_path, config, model_hash, [0, 1, 1, 2, 1])
    assert snap["devices"][0]["class_counts"] == {"imbalance": 3, "healthy": 1, "bearing_outer": 1}
    assert "last 5: imbalance 3, bearing_outer 1, healthy 1" in format_text(snap)


def test_anomaly_labels_are_named_normal_and_anomaly(trained_run, tmp_path):
    run = tmp_path / "ae"
    shutil.copytree(trained_run.run_dir, run)
    info = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**info, "task": "anomaly", "normal_class": "healthy",
                                                "threshold": 0.3}))
    two = (trained_run.run_dir, run)
    config = load(ports=("socket://127.0.0.1:1",), db=tmp_path / "g.db", models=two)
    assert all(r.devices == () for r in config.models)  # several: each by its model hash
    snap = _status(tmp_path, load(ports=("p",), db=tmp_path / "g.db", models=(run,)), b"\x00" * 8, [0, 1, 1])
    assert snap["devices"][0]["class_counts"] == {"anomaly": 2, "normal": 1}


def test_a_run_without_int8_model_cannot_be_matched_by_hash(trained_run, tmp_path):
    run = tmp_path / "float-only"
    shutil.copytree(trained_run.run_dir, run)
    (run / "model_int8.tflite").unlink()
    with pytest.raises(InputError, match="no model_int8.tflite"):
        route_for_run(run)
    assert route_for_run(run, every_device=True).devices == ("*",)


def test_the_project_model_is_the_default(tmp_path):
    assert project_model(tmp_path) is None
    assert run_cli("init", tmp_path).returncode == 0
    assert project_model(tmp_path) is None  # not trained yet
    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (model / "model.json").write_text("{}")
    assert project_model(tmp_path) == model.resolve()
