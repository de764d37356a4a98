"""Train one zoo model on a dataset and write the run directory.

The run directory is the contract with every later stage: model.keras, preprocess.json,
model.json, metrics.json, training.png and confusion.png (see docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyml import optioncheck as oc
from tinyml import rundir
from tinyml.data.dataset import SPLITS, Dataset
from tinyml.data.features import guarded_columns
from tinyml.data.features_int import HEADROOM, KIND_HEADROOM
from tinyml.errors import InputError
from tinyml.outputs import write_json
from tinyml.preprocess import Preprocess
from tinyml.progress import stage
from tinyml.signing import sha256_file
from tinyml.train import metrics, plots
from tinyml.train.augment import Augment, augment
from tinyml.train.guard import Guard, check_margin, fold
from tinyml.train.slope_guard import Settings, SlopeGuard
from tinyml.train.stuck_guard import StuckGuard, check_ratio, samples
from tinyml.train.zoo import ModelKind, model_kind

CONFUSION_PNG, SCORES_PNG = rundir.CONFUSION_PNG, rundir.SCORES_PNG
BASELINE_SIZE = 1000  # validation scores kept in model.json for the gateway's drift check
ANOMALY_LABELS = list(rundir.ANOMALY_LABELS)


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    epochs: int = 40
    batch_size: int = 32
    seed: int = 0
    patience: int = 8
    quiet: bool = False
    arithmetic: str = "integer"  # preprocessing: "integer" (bit-identical on every device) or "float64"
    false_alarms_per_day: float | None = None  # anomaly threshold for this alarm rate on validation data
    guard_margin: float | None = None  # anomaly: inputs beyond their training range by more SDs score above it
    slope_guard: bool = False  # anomaly, temperature: the drive-slope CUSUM (tinyml/train/slope_guard.py)
    stuck_guard: float | None = None  # anomaly: runs of repeated samples this many times training's longest flag
    slope_k: float = Settings.k
    slope_h: float = Settings.h
    slope_f_min: float = Settings.f_min
    slope_slack: float = Settings.slack_h
    # augmentation of the training windows (tinyml/train/augment.py); the defaults add nothing
    augment_gain: float = 1.0
    augment_speed: float = 0.0
    augment_snr: float | None = None
    augment_resonance: float = 0.0
    augment_copies: int = 1
    by: str | None = None  # a group column: add a leave-one-group-out table to the metrics

    def check(self) -> None:
        oc.positive(self, "false_alarms_per_day")
        if self.guard_margin is not None:
            check_margin(self.guard_margin)
        if self.stuck_guard is not None:
            check_ratio(self.stuck_guard)
        self.slope_settings().check()
        oc.at_least(self, "epochs", 1)
        oc.at_least(self, "batch_size", 1)
        oc.at_least(self, "patience", 0)
        self.augmentation().check()

    def slope_settings(self) -> Settings:
        return Settings(k=self.slope_k, h=self.slope_h, f_min=self.slope_f_min, slack_h=self.slope_slack)

    def augmentation(self) -> Augment:
        return Augment(gain=self.augment_gain, speed=self.augment_speed, snr=self.augment_snr,
                       resonance=self.augment_resonance, copies=self.augment_copies)

    def record(self) -> dict:
        """The options that shape the model (model.json's ``options``; `tinyml evaluate` retrains with them)."""
        return {k: v for k, v in asdict(self).items() if k not in ("quiet", "by")}


@dataclass(frozen=True)
class Splits:
    train: np.ndarray  # boolean masks over the dataset's windows
    val: np.ndarray
    test: np.ndarray
    evaluated_on: str


def split_masks(ds: Dataset) -> Splits:
    """Train/val/test masks; a missing validation split is carved from every 7th training window,
    a missing test split falls back to validation (and metrics say so)."""
    train = ds.split == SPLITS["train"]
    val = ds.split == SPLITS["val"]
    test = ds.split == SPLITS["test"]
    if not train.any():
        raise InputError("dataset has no training windows (split 0)", "re-import it with a train/val/test split")
    if not val.any():
        idx = np.flatnonzero(train)[::7]
        if idx.size == 0 or idx.size == train.sum():
            raise InputError("too few windows to hold out validation data", "use a larger dataset")
        train = train.copy()
        val = np.zeros_like(train)
        val[idx] = True
        train[idx] = False
    evaluated_on = "test"
    if not test.any():
        test, evaluated_on = val, "val"
    return Splits(train, val, test, evaluated_on)


def check_labels(ds: Dataset, kind: ModelKind, splits: Splits) -> str:
    """Reject data the model cannot learn from; returns the normal class.

    Classifiers keep the dataset's normal class when it has one, so that downstream (the
    gateway) can count every other predicted class as an anomaly."""
    labels = ds.y[splits.train]
    if (labels < 0).any():
        raise InputError("training windows are unlabeled (y = -1)", "import the data with labels")
    if kind.task == "classifier":
        present = np.unique(labels)
        if present.size < 2:
            only = ds.classes[int(present[0])] if present.size else "none"
            raise InputError(f"training data has a single class ({only}); a classifier needs at least two",
                             "add data of the other classes, or use --model autoencoder for anomaly detection")
        return ds.normal_class if ds.normal_class in ds.classes else ""
    normal = ds.normal_class or ds.classes[0]
    if normal not in ds.classes:
        raise InputError(f"normal class {normal!r} is not among the classes {ds.classes}", "recreate the dataset")
    if not (labels == ds.classes.index(normal)).any():
        raise InputError(f"no training windows of the normal class {normal!r}",
                         "the autoencoder learns from normal data only")
    return normal


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced weights n / (k * count) so rare classes count as much as common ones."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def _progress_callback(keras: Any, epochs: int, quiet: bool) -> Any:
    from tinyml.progress import Steps

    class EpochBar(keras.callbacks.Callback):
        """One progress step per epoch with the latest losses (a bar on a terminal, lines in a log)."""

        def on_train_begin(self, logs=None):  # noqa: ANN001
            self.bar = Steps(epochs, desc="train", unit="epoch", quiet=quiet)

        def on_epoch_end(self, epoch, logs=None):  # noqa: ANN001
            logs = logs or {}
            self.bar.update(1, **{k: float(v) for k, v in logs.items() if k in ("loss", "val_loss", "accuracy")})

        def on_train_end(self, logs=None):  # noqa: ANN001
            self.bar.close()

    return EpochBar()


def train(ds: Dataset, model_name: str, out_dir: str | Path, opts: TrainOptions = TrainOptions(),
          feature_spec: list[dict] | None = None, dataset_path: str | Path | None = None, *,
          force: bool = False) -> dict:
    """Fit, evaluate and save; returns the metrics written to metrics.json. ``dataset_path`` is
    recorded in model.json so that `tinyml quantize RUN_DIR` finds the data again. A non-empty
    ``out_dir`` is refused unless ``force`` (then the previous run's int8 model is removed)."""
    from tinyml.train.quiet import import_keras

    kind = model_kind(model_name)
    opts.check()
    if opts.stuck_guard is not None and kind.task != "anomaly":
        raise InputError("--stuck-guard raises an anomaly model's score; a classifier has none",
                         "train an autoencoder, or leave --stuck-guard out")
    if opts.guard_margin is not None and kind.task != "anomaly":
        raise InputError("--guard-margin bounds an anomaly model's inputs; a classifier has no anomaly score",
                         "use it with --model autoencoder")
    if opts.slope_guard:
        check_slope_guard(ds, kind)
    splits = split_masks(ds)
    normal = check_labels(ds, kind, splits)
    if opts.false_alarms_per_day is not None and kind.task != "anomaly":
        raise InputError("--false-alarms-per-day sets an anomaly threshold; a classifier has none",
                         "use it with --model autoencoder")
    if opts.false_alarms_per_day is not None and ds.times is None:
        raise InputError("--false-alarms-per-day needs window times: the dataset has none",
                         "import the data with --time-column, or leave the threshold to validation accuracy")
    if kind.preprocess == "features" and feature_spec is None:
        feature_spec = default_feature_spec(ds.kind)
    out_dir = Path(out_dir)
    rundir.check_folder_for_training(out_dir, force)
    if opts.by is not None:
        from tinyml.train import shift

        shift.levels(ds, opts.by)  # a bad column fails now, not after training

    fit_mask = splits.train
    val_mask = splits.val
    if kind.task == "anomaly":
        normal_idx = ds.classes.index(normal)
        fit_mask = splits.train & (ds.y == normal_idx)
        val_fit_mask = splits.val & (ds.y == normal_idx)
        if not val_fit_mask.any():
            raise InputError("validation split has no normal windows", "re-split the dataset")
    if feature_spec is not None and any(e["name"] == "bearing" for e in feature_spec):
        from tinyml.data.features_bearing import resolve

        feature_spec = resolve(feature_spec, ds.x[fit_mask], ds.fs, bearing=ds.meta.get("bearing"),
                               rpm=None if ds.rpm is None else ds.rpm[fit_mask], rpm_range=ds.meta.get("rpm_range"))
    from tinyml.data.features_series import NAME as DAILY_CYCLE
    from tinyml.data.features_series import with_slots

    feature_spec = with_slots(feature_spec, hop_seconds(ds))
    stream = ds.stream()
    aug = opts.augmentation()
    if aug.active and any(e["name"] == DAILY_CYCLE for e in feature_spec or []):
        raise InputError("augmented copies have no place in time, which the daily_cycle feature needs",
                         "train without the --augment-* options, or drop daily_cycle from the features")
    x_fit, y_fit = augment(ds.x[fit_mask], ds.y[fit_mask], ds.fs, aug, opts.seed)
    # fitted on the augmented windows too: their range is what the model is meant to take
    prep = Preprocess.fit(x_fit, kind.preprocess, ds.channels, ds.fs, feature_spec, arithmetic=opts.arithmetic,
                          stream=None if stream is None or aug.active else stream.take(fit_mask),
                          headroom=KIND_HEADROOM.get(ds.kind, HEADROOM))
    if opts.stuck_guard is not None and not (prep.integer and prep.mode == "features"):
        raise InputError("--stuck-guard counts repeats in the device's integer samples, which only integer window "
                         "features give it", "train with --features (e.g. temperature-series) and --arithmetic integer")
    if opts.slope_guard and not (prep.integer and prep.stateful):
        raise InputError("--slope-guard reads the device's integer samples and slot of the day, which only integer "
                         "daily_cycle features give it", "train with --features temperature-series")
    x_all = prep.apply(ds.x, stream=stream)
    x_fit = prep.apply(x_fit) if aug.active else x_all[fit_mask]

    stage(f"train: {model_name} on {len(x_fit)} windows"
          + (f" ({int(fit_mask.sum())} and {aug.copies} augmented cop{'y' if aug.copies == 1 else 'ies'})"
             if aug.active else "") + f", up to {opts.epochs} epochs", quiet=opts.quiet)
    keras = import_keras()
    keras.utils.set_random_seed(opts.seed)
    n_classes = len(ds.classes)
    from tinyml.train.zoo import build

    model = build(model_name, x_all.shape[1:], n_classes)
    stopper = keras.callbacks.EarlyStopping(monitor=kind.monitor, patience=opts.patience,
                                            start_from_epoch=kind.warmup_epochs, restore_best_weights=True)
    callbacks = [stopper, _progress_callback(keras, opts.epochs, opts.quiet)]
    if kind.task == "classifier":
        history = model.fit(x_fit, y_fit, validation_data=(x_all[val_mask], ds.y[val_mask]),
                            epochs=opts.epochs, batch_size=opts.batch_size, verbose=0, callbacks=callbacks,
                            class_weight=class_weights(y_fit, n_classes))
    else:
        history = model.fit(x_fit, x_fit,
                            validation_data=(x_all[val_fit_mask], x_all[val_fit_mask]),
                            epochs=opts.epochs, batch_size=opts.batch_size, verbose=0, callbacks=callbacks)

    stage(f"train: evaluating on the {splits.evaluated_on} split and saving to {out_dir}", quiet=opts.quiet)
    outputs = model.predict(x_all, verbose=0, batch_size=256)
    threshold, rule = None, None
    if opts.false_alarms_per_day is not None:
        threshold, rule = rate_threshold(ds, kind, splits, output_scores(kind.task, x_all, outputs), normal,
                                         opts.false_alarms_per_day)
    guard = None
    if opts.guard_margin is not None:
        guard = Guard.fit(x_fit, opts.guard_margin, guarded_columns(prep.feature_spec, prep.channels)
                          if prep.mode == "features" else None)
    stuck = None  # counted on every normal window not held out for the test: a count needs no fit to check
    if opts.stuck_guard is not None:
        stuck = StuckGuard.fit(samples(prep, ds.x[fit_mask | val_fit_mask]), opts.stuck_guard)
    excess = None if guard is None else guard.excess(x_all)
    if stuck is not None:  # the larger of the two, as the device folds both into one score
        stuck_excess = stuck.window_excess(prep, ds.x)
        excess = stuck_excess if excess is None else np.maximum(excess, stuck_excess)
    slope = None
    if opts.slope_guard:  # on the training windows as read (not augmented), in the data's own units
        slope = SlopeGuard.fit(ds.x[fit_mask, :, 0], ds.times[fit_mask], fs=ds.fs,
                               hop=round(hop_seconds(ds) * ds.fs), sample_shift=prep.sample_shift[0],
                               settings=opts.slope_settings())
    result = evaluate(kind, ds, splits, x_all, outputs, normal, threshold, excess)
    info = {
        "model": model_name, "task": kind.task, "classes": list(ds.classes), "normal_class": normal,
        "threshold": result.get("threshold"), "input_shape": list(x_all.shape[1:]),
        "output_shape": list(outputs.shape[1:]), "kind": ds.kind, "fs": ds.fs, "channels": list(ds.channels),
        "window": int(ds.x.shape[1]), "preprocess": kind.preprocess,
        "score": "softmax" if kind.task == "classifier" else "mse(input, output)",
        "parameters": int(model.count_params()), "seed": opts.seed, "options": opts.record(),
        "augment": aug.record(),
        "dataset": str(Path(dataset_path).resolve()) if dataset_path else None,
        "made_from": {"dataset": sha256_file(Path(dataset_path))} if dataset_path else {},
        "epochs_run": len(history.history["loss"]),
        # 1-based: the epoch whose weights were restored; the last one when early stopping never
        # started watching (fewer epochs than its warm-up), as then nothing is restored
        "best_epoch": int(stopper.best_epoch) + 1 if stopper.best_weights is not None else len(history.history["loss"]),
        "score_baseline": result.pop("score_baseline"),
        **({"threshold_rule": rule} if rule else {}),
        **({"guard": guard.to_json()} if guard else {}),
        **({"slope_guard": slope.to_json()} if slope else {}),
        **({"stuck_guard": stuck.to_json()} if stuck else {}),
    }
    save_run(out_dir, model, prep, info, result, history.history, kind.monitor)
    if kind.task == "anomaly":
        test = splits.test
        scores = output_scores(kind.task, x_all, outputs)
        if excess is not None:
            scores = fold(scores, excess, float(result["threshold"]))
        plots.score_histogram(scores[test], [ds.classes[k] for k in ds.y[test]],
                              ds.classes, float(result["threshold"]), out_dir / SCORES_PNG,
                              f"{model_name} anomaly scores on the {splits.evaluated_on} split")
    if opts.by is not None:
        from tinyml.data.features_bearing import unresolved

        # each fold chooses the bearing band, orders and speed range from its own training windows
        result["leave_one_group_out"] = shift.leave_one_group_out(ds, opts.by, model_name, opts,
                                                                  unresolved(feature_spec))
        write_json(out_dir / rundir.METRICS_JSON, result)
    return result


def evaluate(kind: ModelKind, ds: Dataset, splits: Splits, x_all: np.ndarray, outputs: np.ndarray,
             normal: str, threshold: float | None = None, excess: np.ndarray | None = None) -> dict:
    """Metrics on the evaluation split from model outputs for every window (float or dequantized int8).
    An anomaly threshold is picked on validation data unless one is given (the deployed one); it is picked
    on the reconstruction errors, then the input guard's ``excess`` per window folds into the scores
    (``tinyml.train.guard``)."""
    scores = output_scores(kind.task, x_all, outputs)
    test = splits.test
    if kind.task == "classifier":
        report = metrics.classification_report(ds.y[test], outputs[test].argmax(axis=1), ds.classes)
        baseline = scores[splits.val][:BASELINE_SIZE]
    else:
        is_anomaly = ds.y != ds.classes.index(normal)
        if threshold is None:
            threshold = metrics.pick_threshold(scores[splits.val & ~is_anomaly], scores[splits.val & is_anomaly])
        if excess is not None:
            scores = fold(scores, excess, threshold)
        report = metrics.classification_report(is_anomaly[test].astype(int),
                                                (scores[test] > threshold).astype(int), ANOMALY_LABELS)
        report["auc"] = metrics.roc_auc(scores[test], is_anomaly[test])
        report["threshold"] = threshold
        report["score_histogram"] = metrics.score_histogram(scores[test], ds.y[test], ds.classes, threshold)
        baseline = scores[splits.val & ~is_anomaly][:BASELINE_SIZE]
    report["evaluated_on"] = splits.evaluated_on
    report["score_baseline"] = [round(float(s), 6) for s in baseline]
    return report


def check_slope_guard(ds: Dataset, kind: ModelKind) -> None:
    """--slope-guard reads one timestamped channel's slope with an anomaly model."""
    if kind.task != "anomaly":
        raise InputError("--slope-guard raises an anomaly model's score; a classifier has none",
                         "use it with --model autoencoder")
    if ds.times is None:
        raise InputError("--slope-guard judges each window's slope against its time of day: the dataset has no "
                         "window times", "import the data with --time-column")
    if len(ds.channels) != 1:
        raise InputError(f"--slope-guard reads one channel; the dataset has {len(ds.channels)} "
                         f"({', '.join(ds.channels)})", "import the temperature column alone (--columns)")


def rate_threshold(ds: Dataset, kind: ModelKind, splits: Splits, scores: np.ndarray, normal: str,
                   per_day: float) -> tuple[float, dict]:
    """``--false-alarms-per-day``: the threshold that keeps the alarm rule within that rate on the normal
    validation windows (``tinyml/train/alarm_rate.py``)."""
    from tinyml.train.alarm_rate import threshold_for_rate

    mask = splits.val & (ds.y == ds.classes.index(normal))
    return threshold_for_rate(scores[mask], ds.times[mask], ds.groups[mask], hop_s=hop_seconds(ds), per_day=per_day)


def hop_seconds(ds: Dataset) -> float:
    """Seconds between window starts in the dataset's recordings (the import's hop; else the window)."""
    return int((ds.meta.get("options") or {}).get("hop") or ds.x.shape[1]) / ds.fs


def output_scores(task: str, inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Per-window score: top-class probability (classifier) or reconstruction error (anomaly)."""
    if task == "classifier":
        return np.asarray(outputs, np.float64).max(axis=1)
    return metrics.reconstruction_error(inputs, outputs)


def save_run(out_dir: Path, model: Any, prep: Preprocess, info: dict, result: dict,
             history: dict[str, list[float]], monitor: str) -> None:
    """``history``: Keras's per-epoch values; history.json keeps them with the kept epoch and
    what early stopping watched (``monitor``), for the report's training curves. Every file is
    written atomically; model.json records the model.keras and preprocess.json written with it
    (``tinyml.rundir`` checks them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in rundir.QUANTIZE_FILES:  # made from the model this run replaces
        (out_dir / name).unlink(missing_ok=True)
    tmp = out_dir / ".model.tmp.keras"
    model.save(tmp)
    tmp.replace(out_dir / rundir.MODEL_KERAS)
    prep.save(out_dir)
    info = {**info, "wrote": rundir.fingerprints(out_dir, (rundir.MODEL_KERAS, rundir.PREPROCESS_JSON))}
    write_json(out_dir / rundir.MODEL_JSON, info)
    write_json(out_dir / rundir.METRICS_JSON, result)
    epochs = {k: [float(v) for v in vals] for k, vals in history.items()}
    write_json(out_dir / rundir.HISTORY_JSON, {"epochs": epochs, "kept_epoch": info["best_epoch"], "monitor": monitor})
    plots.training_curves(epochs, out_dir / rundir.TRAINING_PNG,
                          title=f"{info['model']} on {Path(info['dataset'] or 'data').name}: "
                                f"{info['epochs_run']} epochs, best {info['best_epoch']}",
                          best_epoch=info["best_epoch"])
    confusion_plot(out_dir, info, [("float", result["confusion_matrix"])], result["evaluated_on"])


def confusion_plot(out_dir: Path, info: dict, panels: list[tuple[str, list[list[int]]]], split: str) -> Path:
    """OUT/confusion.png: after training the float model's matrix, after quantize the int8 one beside it."""
    labels = info["classes"] if info["task"] == "classifier" else ANOMALY_LABELS
    return plots.confusion(panels, labels, out_dir / CONFUSION_PNG, f"{info['model']} on the {split} split")


def default_feature_spec(kind: str) -> list[dict]:
    """The data package's preset for this kind of data, with every default filled in."""
    from tinyml.data import features

    preset = features.DEFAULT_TEMPERATURE_SPEC if kind == "temperature" else features.DEFAULT_VIBRATION_SPEC
    return features.validate_spec(preset)
