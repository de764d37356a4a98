"""The run directory: its file names, atomic writes and validated reads.

Every file is written to a temporary name and renamed, so an interrupted run never leaves a
half-written artifact under the real name.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinyml.errors import InputError
from tinyml.outputs import write_atomic

MODEL_KERAS = "model.keras"
MODEL_INT8 = "model_int8.tflite"
MODEL_JSON = "model.json"
PREPROCESS_JSON = "preprocess.json"
METRICS_JSON = "metrics.json"
QUANTIZATION_JSON = "quantization.json"
HISTORY_JSON = "history.json"


def write_bytes(path: Path, data: bytes) -> Path:
    return write_atomic(path, data)


def write_json(path: Path, obj: dict) -> Path:
    return write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}", "train a model first with `tinyml train DATA.npz --out RUN_DIR`")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc})", "re-run `tinyml train` to recreate it") from exc
    if not isinstance(obj, dict):
        raise InputError(f"{path} does not hold a JSON object", "re-run `tinyml train` to recreate it")
    return obj


def run_dir_of(model_path: str | Path) -> Path:
    """A run directory given either the directory itself or any file inside it."""
    path = Path(model_path)
    if not path.exists():
        raise InputError(f"model not found: {path}", "pass a run directory written by `tinyml train` or a file in it")
    run_dir = path if path.is_dir() else path.parent
    if not (run_dir / MODEL_JSON).is_file():
        raise InputError(f"{run_dir} is not a tinyml run directory (no {MODEL_JSON})",
                         "pass the --out directory of `tinyml train`")
    return run_dir


def read_model_info(run_dir: Path) -> dict:
    info = read_json(Path(run_dir) / MODEL_JSON, "model description")
    for key in ("task", "classes", "input_shape", "model"):
        if key not in info:
            raise InputError(f"{Path(run_dir) / MODEL_JSON} lacks {key!r}", "re-run `tinyml train` to recreate it")
    return info
