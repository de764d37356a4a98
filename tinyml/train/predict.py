"""Host inference over a dataset: one CSV row per window, with the run's own preprocessing."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from tinyml import rundir
from tinyml.data import dataset as dataset_io
from tinyml.errors import InputError
from tinyml.files import write_bytes
from tinyml.model import interpreters
from tinyml.train.fit import output_scores


def model_outputs(model: rundir.Model, inputs: np.ndarray, runtime: str = "litert") -> np.ndarray:
    """Float outputs of the run's model.keras, or dequantized outputs of the int8 .tflite named."""
    if model.file is not None and model.file.suffix == ".tflite":
        tfl = model.int8().data
        q = interpreters.io_quantization(tfl)
        run = interpreters.tflm_run if runtime == "tflm" else interpreters.litert_run
        out = run(tfl, interpreters.quantize_input(inputs, q.in_scale, q.in_zp))
        return interpreters.dequantize(out, q.out_scale, q.out_zp)
    from tinyml.train.quiet import import_keras

    keras = import_keras()
    path = model.keras()
    try:
        net = keras.models.load_model(path)
    except Exception as exc:  # noqa: BLE001 - Keras raises several types for a bad file
        raise InputError(f"cannot load {path}: {str(exc)[:200]}", "re-run `tinyml train`") from exc
    return np.asarray(net.predict(inputs, verbose=0, batch_size=256))


def predict_file(model: Path, data: Path, out_path: Path, split: str = "all", runtime: str = "litert") -> int:
    """Write the scores CSV; returns the number of windows scored."""
    run = rundir.open_model(model, bare=False)  # a run dir (its model.keras) or a .keras/.tflite in one
    info = rundir.read_model_info(run.run_dir)
    ds = dataset_io.load(data).subset(split)
    inputs = run.preprocess().apply(ds.x)
    outputs = model_outputs(run, inputs, runtime)
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
    write_bytes(Path(out_path), buf.getvalue().encode())
    return ds.n
