"""Host inference over a dataset: one CSV row per window, with the run's own preprocessing."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from tinyml.data import dataset as dataset_io
from tinyml.errors import InputError
from tinyml.model import interpreters
from tinyml.preprocess import Preprocess
from tinyml.train import artifacts
from tinyml.train.fit import output_scores


def model_outputs(model_path: Path, inputs: np.ndarray, runtime: str = "litert") -> np.ndarray:
    """Float outputs of a .keras model, or dequantized outputs of an int8 .tflite."""
    if model_path.suffix == ".tflite":
        tfl = model_path.read_bytes()
        q = interpreters.io_quantization(tfl)
        run = interpreters.tflm_run if runtime == "tflm" else interpreters.litert_run
        out = run(tfl, interpreters.quantize_input(inputs, q.in_scale, q.in_zp))
        return interpreters.dequantize(out, q.out_scale, q.out_zp)
    from tinyml.train.quiet import import_keras

    keras = import_keras()
    try:
        model = keras.models.load_model(model_path)
    except Exception as exc:  # noqa: BLE001 - Keras raises several types for a bad file
        raise InputError(f"cannot load {model_path}: {str(exc)[:200]}", "re-run `tinyml train`") from exc
    return np.asarray(model.predict(inputs, verbose=0, batch_size=256))


def resolve_model_file(model: Path) -> tuple[Path, Path]:
    """(run dir, model file): a .tflite or .keras file as given; a run dir (or any other file in it)
    means its float model.keras."""
    run_dir = artifacts.run_dir_of(model)
    if model.is_file() and model.suffix in (".tflite", ".keras"):
        return run_dir, model
    path = run_dir / artifacts.MODEL_KERAS
    if not path.is_file():
        raise InputError(f"{run_dir} has no {artifacts.MODEL_KERAS}", "re-run `tinyml train` into this directory")
    return run_dir, path


def predict_file(model: Path, data: Path, out_path: Path, split: str = "all", runtime: str = "litert") -> int:
    """Write the scores CSV; returns the number of windows scored."""
    run_dir, model_file = resolve_model_file(Path(model))
    info = artifacts.read_model_info(run_dir)
    ds = dataset_io.load(data).subset(split)
    inputs = Preprocess.from_run(run_dir).apply(ds.x)
    outputs = model_outputs(model_file, inputs, runtime)
    classes = list(info["classes"])
    if ds.classes != classes:
        raise InputError(f"dataset classes {ds.classes} differ from the model's {classes}",
                         "score data imported with the same classes as the training data")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    labeled = bool((ds.y >= 0).any())
    if info["task"] == "classifier":
        w.writerow((["label"] if labeled else []) + ["pred"] + classes)
        for y, row in zip(ds.y, outputs, strict=True):
            w.writerow(([classes[y] if y >= 0 else ""] if labeled else [])
                       + [classes[int(row.argmax())]] + [f"{v:.6f}" for v in row])
    else:
        scores = output_scores("anomaly", inputs, outputs)
        threshold = float(info["threshold"])
        w.writerow((["label"] if labeled else []) + ["pred", "anomaly_score"])
        for y, s in zip(ds.y, scores, strict=True):
            pred = "anomaly" if s > threshold else info["normal_class"]
            w.writerow(([classes[y] if y >= 0 else ""] if labeled else []) + [pred, f"{s:.6g}"])
    artifacts.write_bytes(Path(out_path), buf.getvalue().encode())
    return ds.n
