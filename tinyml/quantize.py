"""Full-int8 post-training quantization and the float-vs-int8 report.

The int8 model is checked twice: with LiteRT (fast host runtime) and with what a device should
compute, the TFLM Python interpreter, or, on a model TFLM computes wrongly (dilated convolutions,
docs/codegen.md "Reference semantics"), the reference semantics. Both must stay within the
tolerance of the float model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyml import rundir
from tinyml.data import dataset as dataset_io
from tinyml.errors import CheckFailed, InputError, ToolError
from tinyml.model import interpreters
from tinyml.outputs import write_atomic, write_json
from tinyml.progress import Steps, stage
from tinyml.signing import sha256_file
from tinyml.train.fit import Splits, confusion_plot, evaluate, output_scores, rate_threshold, split_masks
from tinyml.train.guard import Guard, excess_int8
from tinyml.train.stuck_guard import StuckGuard
from tinyml.train.zoo import ModelKind, model_kind

REPRESENTATIVE_MAX = 300
DEFAULT_TOLERANCE = {"accuracy": 1.0, "auc": 0.01}  # accuracy in points, AUC in absolute units
# On a small evaluation split one flipped window is already several points (1 of 48 is 2.08),
# so by default int8 may also lose this many windows, whichever allows more.
DEFAULT_TOLERANCE_WINDOWS = 2
SCORERS = {"tflm": "TFLM", "reference": "reference semantics"}  # who scores the device's int8 model


def int8_key(report: dict) -> str:
    """The key of ``report`` (quantization.json) holding the device's int8 scores: ``int8_tflm``, or
    ``int8_reference`` when TFLM computes the model wrongly (reports without ``int8_scored_by``
    predate the choice and were scored by TFLM)."""
    return f"int8_{scored_by(report)}"


def scored_by(report: dict) -> str:
    return str(report.get("int8_scored_by", "tflm"))


@dataclass(frozen=True)
class QuantizeResult:
    tflite_path: Path
    report: dict


def convert_int8(model: Any, representative: np.ndarray) -> bytes:
    """Keras model -> full-int8 .tflite (int8 input and output), with TF's chatter silenced."""
    from tinyml.train.quiet import import_tf, silenced_fds

    tf = import_tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([representative[i:i + 1]] for i in range(len(representative)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    import warnings

    try:
        with silenced_fds() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bytes(conv.convert())
    except Exception as exc:  # noqa: BLE001 - the converter raises many unrelated types
        last = (log[0].strip().splitlines() or [""])[-1] if log else ""
        raise ToolError(f"TFLite conversion failed: {type(exc).__name__}: {str(exc)[:200]} {last[:200]}",
                        "check that the model uses only ops from the tinyml zoo") from exc


def int8_threshold(kind: ModelKind, ds: dataset_io.Dataset, splits: Splits, x_all: np.ndarray, outputs: np.ndarray,
                   normal: str, rule: dict | None) -> tuple[float | None, dict]:
    """The int8 model's own anomaly threshold by the rule that chose the float model's, on its own validation scores:
    the alarm rate per day (``--false-alarms-per-day``, model.json's ``threshold_rule``), else None, for ``evaluate``
    to pick by the best balanced accuracy as ``train`` did. Why: quantization moves every reconstruction error a
    little, and a threshold set on the float errors lets the int8 model raise more alarms than its rule allows."""
    if rule is None:
        return None, {"rule": "best balanced accuracy on the validation split"}
    return rate_threshold(ds, kind, splits, output_scores(kind.task, x_all, outputs), normal,
                          float(rule["false_alarms_per_day"]))


def representative_inputs(x_train: np.ndarray, limit: int = REPRESENTATIVE_MAX) -> np.ndarray:
    """An evenly spaced subset of the training inputs for calibration."""
    idx = np.linspace(0, len(x_train) - 1, num=min(limit, len(x_train))).round().astype(int)
    return np.ascontiguousarray(x_train[np.unique(idx)], dtype=np.float32)


def largest_class_change(before: dict, after: dict) -> dict:
    """The class whose recall moved most between two reports, in points."""
    changes = {name: 100.0 * (after["per_class"][name]["recall"] - stats["recall"])
               for name, stats in before["per_class"].items() if stats["support"] > 0}
    name = max(changes, key=lambda k: abs(changes[k]))
    return {"class": name, "recall_change_points": round(changes[name], 3)}


def quality_drop(metric: str, before: dict, after: dict) -> float:
    if metric == "auc":
        return float(before["auc"] - after["auc"])
    return 100.0 * float(before["accuracy"] - after["accuracy"])


def default_tolerance(metric: str, n: int) -> tuple[float, str]:
    """The tolerance when none is set, and how it was chosen: for accuracy 1 point or
    ``DEFAULT_TOLERANCE_WINDOWS`` windows of the ``n`` evaluated, whichever is larger."""
    if metric != "accuracy":
        return DEFAULT_TOLERANCE[metric], f"default {DEFAULT_TOLERANCE[metric]:g} AUC"
    windows = 100.0 * DEFAULT_TOLERANCE_WINDOWS / max(n, 1)
    tol = max(DEFAULT_TOLERANCE["accuracy"], windows)
    return tol, (f"default: {DEFAULT_TOLERANCE['accuracy']:g} point or {DEFAULT_TOLERANCE_WINDOWS} of the "
                 f"{n} evaluated windows, whichever is larger")


def quantize_run(run_dir: str | Path, data_path: str | Path | None = None,
                 tolerance: float | None = None, *, tolerance_key: str = "--tolerance") -> QuantizeResult:
    """Write model_int8.tflite and quantization.json (which records what the model was made
    from); raise CheckFailed past the tolerance, leaving no model_int8.tflite behind.
    ``tolerance_key`` names the setting in the failure's hint (the CLI flag or the project key)."""
    source = rundir.open_model(run_dir, bare=False)
    run_dir = source.run_dir
    info = rundir.read_model_info(run_dir)
    keras_path = source.keras()
    prep = source.preprocess()
    data_path = Path(data_path or info.get("dataset", ""))
    if not str(data_path) or not data_path.is_file():
        raise InputError(f"training dataset not found: {data_path}", "pass --data DATA.npz (the file used to train)")
    made_from = {**rundir.fingerprints(run_dir, (rundir.MODEL_KERAS, rundir.PREPROCESS_JSON)),
                 "dataset": sha256_file(data_path)}
    ds = dataset_io.load(data_path)
    kind = model_kind(info["model"])
    splits = split_masks(ds)
    x_all = prep.apply(ds.x, stream=ds.stream())

    from tinyml.train.quiet import import_keras

    stage(f"quantize: converting {keras_path} to full int8")
    keras = import_keras()
    try:
        model = keras.models.load_model(keras_path)
    except Exception as exc:  # noqa: BLE001 - Keras raises several types for a bad file
        raise InputError(f"cannot load {keras_path}: {str(exc)[:200]}", "re-run `tinyml train`") from exc
    tflite = convert_int8(model, representative_inputs(x_all[splits.train]))

    q = interpreters.io_quantization(tflite)
    wanted = splits.val | splits.test
    if prep.integer:  # the device's own int8 inputs, computed from the raw windows
        x_q = (prep.int8_inputs(ds.x, q.in_scale, q.in_zp, stream=ds.stream())[wanted] if prep.stateful  # state
               else prep.int8_inputs(ds.x[wanted], q.in_scale, q.in_zp)).reshape(-1, *q.in_shape)
    else:
        x_q = interpreters.quantize_input(x_all[wanted], q.in_scale, q.in_zp)
    from tinyml.codegen import semantics

    departures = semantics.tflm_departures(tflite)
    scorer = "reference" if departures else "tflm"
    device = f"int8_{scorer}"
    if departures:
        stage(f"quantize: TFLM computes this model wrongly ({departures[0].describe()}), so int8 is scored with "
              "the reference semantics (docs/codegen.md)")
    stage(f"quantize: scoring {int(wanted.sum())} windows with float, int8 LiteRT and int8 {SCORERS[scorer]}")
    with Steps(3, desc="quantize", unit="model") as bar:
        float_out = model.predict(x_all, verbose=0, batch_size=256)
        normal = info.get("normal_class", "")
        threshold = info.get("threshold")
        guard = Guard.from_info(info) if threshold is not None else None
        excess = excess_q = None
        if guard is not None:  # as train folds it on the float inputs, as the device does on the int8 ones
            excess, excess_q = guard.excess(x_all), np.zeros(len(x_all))
            excess_q[wanted] = excess_int8(x_q, *guard.bounds_int8(q.in_scale, q.in_zp)) * q.in_scale
        stuck = StuckGuard.from_info(info) if threshold is not None else None
        if stuck is not None:  # counted on the raw windows, the same for both
            counted = np.where(wanted, stuck.window_excess(prep, ds.x), 0.0)
            excess, excess_q = (counted if e is None else np.maximum(e, counted) for e in (excess, excess_q))
        reports = {"float": evaluate(kind, ds, splits, x_all, float_out, normal, threshold, excess)}
        bar.update()
        runs = {"int8_litert": lambda: interpreters.litert_run(tflite, x_q),
                device: lambda: semantics.int8_run(tflite, x_q, departures=departures).outputs}
        rules = {}
        for name, run in runs.items():
            out = np.zeros_like(float_out)
            out[wanted] = interpreters.dequantize(run(), q.out_scale, q.out_zp)
            own, rules[name] = (threshold, None) if threshold is None else int8_threshold(
                kind, ds, splits, x_all, out, normal, info.get("threshold_rule"))
            reports[name] = evaluate(kind, ds, splits, x_all, out, normal, own, excess_q)
            bar.update()
    baseline = reports[device].get("score_baseline") if threshold is not None else None
    for r in reports.values():
        r.pop("score_baseline")

    metric = "auc" if kind.task == "anomaly" and reports["float"].get("auc") is not None else "accuracy"
    n = int(reports["float"]["n"])
    tol, rule = default_tolerance(metric, n) if tolerance is None else (float(tolerance), f"set by {tolerance_key}")
    drops = {name: quality_drop(metric, reports["float"], reports[name]) for name in ("int8_litert", device)}
    report = {
        **reports, "int8_scored_by": scorer, "departures": [d.to_json() for d in departures],
        "metric": metric, "tolerance": round(tol, 6), "tolerance_rule": rule,
        "drop": {k: round(v, 6) for k, v in drops.items()},
        "largest_class_change": {name: largest_class_change(reports["float"], reports[name])
                                 for name in ("int8_litert", device)},
        **({"int8_threshold": reports[device]["threshold"], "int8_threshold_rule": rules[device],
            "int8_score_baseline": baseline} if threshold is not None else {}),
        "tflite_bytes": len(tflite), "passed": max(drops.values()) <= tol,
        "input_quantization": {"scale": q.in_scale, "zero_point": q.in_zp},
        "output_quantization": {"scale": q.out_scale, "zero_point": q.out_zp},
        "made_from": made_from,
    }
    path = run_dir / rundir.MODEL_INT8
    path.unlink(missing_ok=True)  # the old one no longer matches the report below
    if report["passed"]:
        report["wrote"] = {rundir.MODEL_INT8: hashlib.sha256(tflite).hexdigest()}
    write_json(run_dir / rundir.QUANTIZATION_JSON, report)
    if report["passed"]:
        write_atomic(path, tflite)
    confusion_plot(run_dir, info, [("float", reports["float"]["confusion_matrix"]),
                                   (f"int8 ({SCORERS[scorer]})", reports[device]["confusion_matrix"])],
                   splits.evaluated_on)
    if not report["passed"]:
        worst = max(drops, key=drops.get)
        lost = (f"{drops[worst]:.3g} points of accuracy ({round(drops[worst] * n / 100)} of {n} windows)"
                if metric == "accuracy" else f"{drops[worst]:.3g} AUC")
        raise CheckFailed(f"int8 model loses {lost} ({worst}), more than the tolerance {tol:.3g} ({rule})",
                          f"train longer or with more data, or raise {tolerance_key}; the report is in "
                          f"{run_dir / rundir.QUANTIZATION_JSON}")
    return QuantizeResult(path, report)
