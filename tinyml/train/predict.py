"""Host inference over a dataset: one CSV row per window, with the run's own preprocessing."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinyml import rundir
from tinyml.data import dataset as dataset_io
from tinyml.data.dataset import SPLITS
from tinyml.data.timestamps import iso
from tinyml.errors import InputError
from tinyml.model import interpreters
from tinyml.outputs import write_atomic
from tinyml.train import metrics
from tinyml.train.fit import output_scores
from tinyml.train.guard import guarded_scores


def model_outputs(model: rundir.Model, inputs: np.ndarray, runtime: str = "litert", *,
                  int8_inputs: Callable[[float, int], np.ndarray] | None = None) -> np.ndarray:
    """Float outputs of the run's model.keras, or dequantized outputs of the int8 .tflite named;
    ``int8_inputs`` (scale, zero point) gives an integer-preprocessing run's own int8 inputs, as
    the device computes them."""
    if model.file is not None and model.file.suffix == ".tflite":
        tfl = model.int8().data
        q = interpreters.io_quantization(tfl)
        run = interpreters.tflm_run if runtime == "tflm" else interpreters.litert_run
        x_q = (int8_inputs(q.in_scale, q.in_zp).reshape(-1, *q.in_shape) if int8_inputs is not None
               else interpreters.quantize_input(inputs, q.in_scale, q.in_zp))
        out = run(tfl, x_q)
        return interpreters.dequantize(out, q.out_scale, q.out_zp)
    from tinyml.train.quiet import import_keras

    keras = import_keras()
    path = model.keras()
    try:
        net = keras.models.load_model(path)
    except Exception as exc:  # noqa: BLE001 - Keras raises several types for a bad file
        raise InputError(f"cannot load {path}: {str(exc)[:200]}", "re-run `tinyml train`") from exc
    return np.asarray(net.predict(inputs, verbose=0, batch_size=256))


RUNTIME_NAMES = {"keras": "float Keras", "litert": "int8 LiteRT", "tflm": "int8 TFLM"}


def predict_file(model: Path, data: Path, out_path: Path, split: str = "all", runtime: str = "litert") -> dict:
    """Write the scores CSV (window index, split, group, label, prediction, scores) and return
    a summary: windows scored, which runtime scored them and, for labelled data, accuracy (and
    AUC for anomaly models)."""
    run = rundir.open_model(model, bare=False)  # a run dir (its model.keras) or a .keras/.tflite in one
    info = rundir.read_model_info(run.run_dir)
    full = dataset_io.load(data)
    ds = full.subset(split)
    index = np.arange(full.n) if split == "all" else np.flatnonzero(full.split == SPLITS[split])
    pre = run.preprocess()
    if pre.stateful:  # a window's inputs depend on the windows before it: computed over all, then picked
        stream = full.stream()
        inputs = pre.apply(full.x, stream=stream)[index]
        int8 = (lambda scale, zp: pre.int8_inputs(full.x, scale, zp, stream=stream)[index]) if pre.integer else None
    else:
        inputs = pre.apply(ds.x)
        int8 = (lambda scale, zp: pre.int8_inputs(ds.x, scale, zp)) if pre.integer else None
    outputs = model_outputs(run, inputs, runtime, int8_inputs=int8)
    model_file = run.file if run.file is not None and run.file.suffix == ".tflite" else run.keras()
    classes = list(info["classes"])
    if ds.classes != classes:
        raise InputError(f"dataset classes {ds.classes} differ from the model's {classes}",
                         "score data imported with the same classes as the training data")
    split_names = {code: name for name, code in SPLITS.items()}
    labeled = ds.y >= 0
    timed = ds.times is not None
    head = ["window", "split", "group"] + (["start", "end"] if timed else []) + (["label"] if labeled.any() else [])
    if info["task"] == "classifier":
        preds = outputs.argmax(axis=1)
        pred_names = [classes[int(k)] for k in preds]
        extra_head, extra = classes, [[f"{v:.6f}" for v in row] for row in outputs]
        correct = preds == ds.y
        summary: dict = {}
    else:
        scores = guarded_scores(run, info, inputs, output_scores("anomaly", inputs, outputs), int8, windows=ds.x)
        threshold = run.threshold
        is_anomaly = ds.y != classes.index(info["normal_class"])
        pred_names = ["anomaly" if s > threshold else info["normal_class"] for s in scores]
        extra_head, extra = ["anomaly_score"], [[f"{s:.6g}"] for s in scores]
        correct = (scores > threshold) == is_anomaly
        summary = {"auc": metrics.roc_auc(scores[labeled], is_anomaly[labeled]) if labeled.any() else None,
                   "slope_guard": info.get("slope_guard") is not None}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head + ["pred"] + extra_head)
    seconds = ds.x.shape[1] / ds.fs
    for i in (np.argsort(ds.times, kind="stable") if timed else range(ds.n)):  # timestamped: in data order
        label = ([classes[ds.y[i]] if labeled[i] else ""] if labeled.any() else [])
        span = [iso(ds.times[i]), iso(ds.times[i] + seconds)] if timed else []
        w.writerow([int(index[i]), split_names.get(int(ds.split[i]), str(ds.split[i])), str(ds.groups[i]),
                    *span, *label, pred_names[i], *extra[i]])
    write_atomic(Path(out_path), buf.getvalue().encode())
    kind = "keras" if model_file.suffix == ".keras" else runtime
    if kind == "tflm":  # scored as asked, but a model TFLM computes wrongly gets a warning
        from tinyml.codegen import semantics

        summary["tflm_departures"] = [d.to_json() for d in semantics.tflm_departures(run.int8().data)]
    return {"windows": ds.n, "labeled": int(labeled.sum()), "runtime": RUNTIME_NAMES[kind],
            "model": str(model_file), "task": info["task"],
            "accuracy": float(correct[labeled].mean()) if labeled.any() else None, **summary}


def format_summary(summary: dict, out_path: Path) -> str:
    """One line: how many windows, scored by what, and how well where labels say."""
    line = f"{summary['windows']} windows scored by {summary['runtime']} ({summary['model']}) -> {out_path}"
    if summary["accuracy"] is not None:
        line += f"; accuracy {summary['accuracy']:.4f} on {summary['labeled']} labelled windows"
    if summary.get("auc") is not None:
        line += f", AUC {summary['auc']:.4f}"
    if summary.get("slope_guard"):
        line += "; without the run's slope guard (it accumulates over a series in order: `tinyml detect` applies it)"
    return line


def departure_warning(summary: dict) -> str | None:
    """A warning when TFLM scored a model it computes wrongly (docs/codegen.md, "Reference semantics")."""
    found = summary.get("tflm_departures")
    if not found:
        return None
    from tinyml.codegen.semantics import describe

    return (f"warning: TFLM computes this model wrongly ({describe(found[0])}); these are TFLM's outputs, "
            "not the reference semantics `tinyml quantize` scores it with")
