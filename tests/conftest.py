"""Shared fixtures: the CLI runner and the read-only shared data beside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tinyml.data.dataset import Dataset
from tinyml.paths import shared_dir

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `tinyml ARGS` in a child process, as a user would, and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tinyml", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A user error: non-zero exit, one `error:` line with a hint, no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return path


@dataclass(frozen=True)
class TrainedRun:
    """A small trained and quantized cnn1d: run_dir holds model.keras, model_int8.tflite,
    preprocess.json, model.json, metrics.json and quantization.json; data is its dataset."""

    run_dir: Path
    data: Path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """Synthetic vibration data (3 classes), a cnn1d trained for a few epochs, then quantized."""
    from tinyml.data.synth import VibrationOptions, synth_vibration
    from tinyml.quantize import quantize_run
    from tinyml.train.fit import TrainOptions, train

    base = tmp_path_factory.mktemp("trained_run")
    ds = synth_vibration(VibrationOptions(per_class=60, seed=3))
    keep = np.isin(ds.y, [0, 1, 4])  # healthy, imbalance, bearing_outer: learnable in a few epochs
    ds = Dataset(ds.x[keep], np.searchsorted([0, 1, 4], ds.y[keep]), [ds.classes[i] for i in (0, 1, 4)],
                 ds.channels, ds.fs, ds.split[keep], ds.groups[keep], ds.kind, "healthy", ds.meta)
    data = ds.save(base / "vibration.npz")
    run_dir = base / "run"
    train(ds, "cnn1d", run_dir, TrainOptions(epochs=12, quiet=True), dataset_path=data)
    quantize_run(run_dir, tolerance=100.0)  # the fixture provides artifacts; accuracy is tested elsewhere
    return TrainedRun(run_dir, data)


def record_preprocess(run_dir: Path) -> None:
    """After a test swaps a run's preprocess.json on purpose, record it in model.json and
    quantization.json as train and quantize would (tinyml.rundir refuses unrecorded files)."""
    import json

    from tinyml.signing import sha256_file

    digest = sha256_file(run_dir / "preprocess.json")
    for name, key in (("model.json", "wrote"), ("quantization.json", "made_from")):
        if (run_dir / name).is_file():
            obj = json.loads((run_dir / name).read_text())
            obj.setdefault(key, {})["preprocess.json"] = digest
            (run_dir / name).write_text(json.dumps(obj))


def raise_threshold(run_dir: Path, value: float = 1e4) -> None:
    """Raise a quantized anomaly run's threshold above every reconstruction error, the float model's (model.json)
    and the int8 model's a device decides with (quantization.json): a device's labels are then its guards' alone."""
    import json

    for name, key in (("model.json", "threshold"), ("quantization.json", "int8_threshold")):
        path = run_dir / name
        path.write_text(json.dumps(json.loads(path.read_text()) | {key: value}))
