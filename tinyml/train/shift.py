"""Accuracy per held-out group: does a model recognise an operating point it never saw?

A random or per-recording split tests a model on recordings like its training ones. Faults grow
and machines change speed and load, so the question that matters is how a model does on a
severity, speed or load it was not trained on. Leave-one-group-out answers it: for each value
of a group column (``tinyml data synth vibration --severities/--speeds/...`` records them,
``data import --group-column`` gives ``group``), train on the windows of every other value,
then score the float and the full-int8 model (TFLM, the device's interpreter, or the reference
semantics where TFLM computes the model wrongly) on the held-out ones. Each fold is a complete
`train` + `quantize`, so the figures are what a user would get.

``per_group`` is the cheap variant: one trained run scored on each group of a dataset.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from tinyml.data.dataset import SPLITS, Dataset, group_column
from tinyml.errors import InputError
from tinyml.progress import stage

TRAIN, VAL, TEST = SPLITS["train"], SPLITS["val"], SPLITS["test"]


def levels(ds: Dataset, by: str) -> list[str]:
    """The groups of column ``by`` that can each be held out, checked for what makes a fold
    meaningless: one group only, a group of one class, a class only one group holds."""
    values = group_column(ds, by)
    labelled = ds.y >= 0
    names = sorted(set(values[labelled].tolist()), key=_order)
    if len(names) < 2:
        raise InputError(f"group column {by!r} has {'one value' if names else 'no labelled windows'}"
                         f"{f' ({names[0]})' if names else ''}; nothing to hold out",
                         "pick a column with two or more values (`tinyml data info DATA` lists them)")
    for g in names:
        held = labelled & (values == g)
        inside = set(ds.y[held].tolist())
        if len(inside) < 2 and len(set(ds.y[labelled].tolist())) > 1:
            raise InputError(f"group {g!r} of column {by!r} holds one class only ({ds.classes[inside.pop()]}): "
                             "its accuracy would be that class's recall alone",
                             f"hold out a column whose groups span the classes (severity, speed, load), not {by!r}")
        rest = set(ds.y[labelled & (values != g)].tolist())
        missing = sorted(inside - rest)
        if missing:
            raise InputError(f"class {ds.classes[missing[0]]!r} occurs only in group {g!r} of column {by!r}: "
                             "a model trained without that group never sees it",
                             "record that class under other groups too, or hold out another column")
    return names


def _order(v: str) -> tuple:
    """Numbers by value, then words (low, medium, high in their own order), then the rest."""
    rank = {"low": 0, "medium": 1, "high": 2}
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, rank.get(v, 3), v)


def fold(ds: Dataset, values: np.ndarray, held: str | list[str]) -> Dataset:
    """The dataset with group(s) ``held`` as the test split; the rest keep their validation
    windows (early stopping never sees a held-out group) and train on everything else."""
    out = np.isin(values, [held] if isinstance(held, str) else held)
    split = np.where(out, TEST, np.where(ds.split == VAL, VAL, TRAIN)).astype(np.int8)
    keep = ds.y >= 0
    return ds.take(keep, split[keep])


def leave_one_group_out(ds: Dataset, by: str, model_name: str, opts, feature_spec: list[dict] | None,  # noqa: ANN001
                        *, work_dir: str | Path | None = None) -> dict:
    """Train and quantize one model per group of ``by`` with that group held out; ``opts`` are
    TrainOptions. Returns the table metrics.json keeps (``format_table`` prints it)."""
    from tinyml.quantize import int8_key, quantize_run
    from tinyml.train.fit import train

    names = levels(ds, by)
    values = group_column(ds, by)
    opts = dataclasses.replace(opts, by=None, quiet=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="tinyml-logo-") as tmp:
        for i, g in enumerate(names):
            stage(f"leave one {by} out: fold {i + 1}/{len(names)}, holding out {by} = {g}")
            held_out = fold(ds, values, g)
            data = held_out.save(Path(tmp) / f"fold{i}.npz")
            run = Path(tmp) / f"fold{i}"
            train(held_out, model_name, run, opts, feature_spec, dataset_path=data)
            q = quantize_run(run, data, tolerance=100.0).report
            metric = q["metric"]
            rows.append({"group": g, "windows": int(q["float"]["n"]), "metric": metric,
                         "float": q["float"][metric], "int8": q[int8_key(q)][metric],
                         "int8_litert": q["int8_litert"][metric]})
    int8 = [r["int8"] for r in rows if r["int8"] is not None]
    return {"by": by, "model": model_name, "metric": rows[0]["metric"], "groups": rows,
            "mean_float": float(np.mean([r["float"] for r in rows])), "mean_int8": float(np.mean(int8)),
            "worst_int8": float(min(int8)), "int8_scored_by": q["int8_scored_by"]}


def retrain_like(run_dir: str | Path, ds: Dataset, by: str, *, epochs: int | None = None) -> dict:
    """``leave_one_group_out`` with a trained run's configuration: its model, features, arithmetic
    and training options (augmentation included), as model.json and preprocess.json record them."""
    from tinyml.rundir import open_model
    from tinyml.train.fit import TrainOptions

    model = open_model(run_dir, bare=False)
    pre = model.preprocess()
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    recorded = {k: v for k, v in (model.info.get("options") or {}).items() if k in known}
    opts = TrainOptions(**{"seed": int(model.info.get("seed", 0)), "arithmetic": pre.arithmetic, **recorded})
    if epochs is not None:
        opts = dataclasses.replace(opts, epochs=epochs)
    opts.check()
    if list(model.info.get("classes", [])) != list(ds.classes):
        raise InputError(f"the run's classes {model.info.get('classes')} differ from the data's {ds.classes}",
                         "evaluate on data with the classes the run was trained on")
    from tinyml.data.features_bearing import unresolved

    spec = unresolved(pre.feature_spec) if pre.mode == "features" else None  # each fold chooses from its own data
    return leave_one_group_out(ds, by, str(model.info["model"]), opts, spec)


def per_group(run_dir: str | Path, ds: Dataset, by: str, split: str = "test") -> dict:
    """One trained run scored on each group of ``by`` in ``split`` of ``ds``: float and, when the
    run is quantized, int8 accuracy (TFLM's, or the reference semantics' where TFLM computes the
    model wrongly; ``int8_scored_by`` says which). No retraining: the groups may have been seen."""
    from tinyml.codegen import semantics
    from tinyml.model import interpreters
    from tinyml.rundir import MODEL_INT8, open_model
    from tinyml.train.quiet import import_keras

    values = group_column(ds, by)
    part = ds.subset(split) if split != "all" else ds
    values = values[ds.split == SPLITS[split]] if split != "all" else values
    model = open_model(run_dir, bare=False)
    info = model.info
    if info.get("task") != "classifier":
        raise InputError("per-group scores need a classifier run", "use --retrain for autoencoder runs")
    if list(info["classes"]) != list(part.classes):
        raise InputError(f"the run's classes {info['classes']} differ from the data's {part.classes}",
                         "evaluate on data with the classes the run was trained on")
    pre = model.preprocess()
    float_pred = import_keras().models.load_model(model.keras()).predict(pre.apply(part.x), verbose=0).argmax(1)
    int8_pred, scorer = None, None
    if model[MODEL_INT8].is_file():
        tflite = model.int8().data
        q = interpreters.io_quantization(tflite)
        x_q = (pre.int8_inputs(part.x, q.in_scale, q.in_zp).reshape(-1, *q.in_shape) if pre.integer
               else interpreters.quantize_input(pre.apply(part.x), q.in_scale, q.in_zp))
        scored = semantics.int8_run(tflite, x_q)
        int8_pred, scorer = scored.outputs.argmax(1), scored.engine
    rows = []
    labelled = part.y >= 0
    for g in sorted(set(values[labelled].tolist()), key=_order):
        m = labelled & (values == g)
        rows.append({"group": g, "windows": int(m.sum()), "metric": "accuracy",
                     "float": float((float_pred[m] == part.y[m]).mean()),
                     "int8": None if int8_pred is None else float((int8_pred[m] == part.y[m]).mean())})
    if not rows:
        raise InputError(f"no labelled windows in the {split} split", "pass --split all or labelled data")
    int8 = [r["int8"] for r in rows if r["int8"] is not None]
    return {"by": by, "model": info["model"], "metric": "accuracy", "split": split, "groups": rows,
            "mean_float": float(np.mean([r["float"] for r in rows])),
            "mean_int8": float(np.mean(int8)) if int8 else None, "worst_int8": float(min(int8)) if int8 else None,
            "int8_scored_by": scorer}


def format_table(t: dict) -> str:
    """The table as text: one line per held-out group, then the mean and the worst."""
    how = "held out (retrained per fold)" if "split" not in t else f"of the {t['split']} split (one run)"
    lines = [f"{t['model']}, {t['metric']} per {t['by']} {how}:",
             f"  {t['by']:<12} {'windows':>8} {'float':>8} {'int8':>8}"]
    for r in t["groups"]:
        i8 = "-" if r["int8"] is None else f"{r['int8']:.4f}"
        lines.append(f"  {r['group']:<12} {r['windows']:>8} {r['float']:>8.4f} {i8:>8}")
    i8 = "-" if t["mean_int8"] is None else f"{t['mean_int8']:.4f}"
    lines.append(f"  {'mean':<12} {'':>8} {t['mean_float']:>8.4f} {i8:>8}")
    if t["worst_int8"] is not None:
        lines.append(f"  {'worst':<12} {'':>8} {'':>8} {t['worst_int8']:>8.4f}")
    return "\n".join(lines)
