"""The run directory: its file names, what each artifact was made from, and what a model means.

Every command that takes a model resolves the path it is given here (``open_model``): a run
directory, a file inside one (``model.keras``, ``model_int8.tflite``, ``model.json``), or a bare
int8 ``.tflite``. The result is one ``Model`` record: the run directory, model.json, the
meaning of the labels (``Labels``), and on request the checked float model, preprocessing or
int8 model.

Fingerprints (sha256 of file contents) make stale artifacts visible:
  model.json         "wrote": the model.keras and preprocess.json written with it;
                     "made_from": the dataset
  quantization.json  "wrote": the model_int8.tflite;
                     "made_from": the model.keras and preprocess.json it was quantized from, the dataset
Reading a run's int8 model checks its bytes and that its sources are still the files in the run;
a mismatch (retrained, copied over, failed quantize) is refused with a hint, never used.

An anomaly model's threshold: model.json's is the float model's; quantize chooses the int8 model's own by the same
rule on its own validation scores ("int8_threshold" in quantization.json) and that one is what a device decides
with: the firmware, validate, the emulator, the gateway and ``detect``/``predict`` on the .tflite read it.

Every artifact is written with ``tinyml.outputs`` (a temporary name, then a rename). Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyml.device.protocol import LABEL_SENSOR_FAULT, LABEL_UNDECIDED
from tinyml.errors import InputError
from tinyml.signing import sha256_file

if TYPE_CHECKING:
    from tinyml.model.interpreters import IOQuant
    from tinyml.preprocess import Preprocess
    from tinyml.train.guard import Guard
    from tinyml.train.slope_guard import Tables
    from tinyml.train.stuck_guard import StuckGuard

MODEL_KERAS = "model.keras"
MODEL_INT8 = "model_int8.tflite"
MODEL_JSON = "model.json"
PREPROCESS_JSON = "preprocess.json"
METRICS_JSON = "metrics.json"
QUANTIZATION_JSON = "quantization.json"
TRAINING_PNG = "training.png"
CONFUSION_PNG = "confusion.png"
SCORES_PNG = "scores.png"         # anomaly models: score histogram per class with the threshold
HISTORY_JSON = "history.json"     # per-epoch losses, the kept epoch and what early stopping watched
TRAIN_FILES = (MODEL_KERAS, PREPROCESS_JSON, MODEL_JSON, METRICS_JSON, HISTORY_JSON, TRAINING_PNG, CONFUSION_PNG,
               SCORES_PNG)
QUANTIZE_FILES = (MODEL_INT8, QUANTIZATION_JSON)
ANOMALY_LABELS = ("normal", "anomaly")
DEVICE_ANOMALY_LABELS = (*ANOMALY_LABELS, "sensor_fault")  # what an anomaly detector's device labels name

RETRAIN = "re-run `tinyml train` to recreate it"


# ---- files ---------------------------------------------------------------------------------

def read_json(path: Path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}", "train a model first with `tinyml train DATA.npz --out RUN_DIR`")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc})", RETRAIN) from exc
    if not isinstance(obj, dict):
        raise InputError(f"{path} does not hold a JSON object", RETRAIN)
    return obj


def fingerprints(folder: Path, names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """{name: sha256} of the files ``names`` in ``folder`` that exist."""
    return {name: sha256_file(folder / name) for name in names if (folder / name).is_file()}


def check_folder_for_training(out_dir: Path, force: bool) -> None:
    """Refuse to train into a folder holding anything unless ``force``; with it, remove the
    artifacts a later stage made from the previous model (they would no longer match)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a directory", "pass a directory for the run")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise InputError(f"--out {out_dir} is not empty; training into it would mix two runs",
                             "pass a new directory, or --force to replace the run in it")
        for name in QUANTIZE_FILES:
            (out_dir / name).unlink(missing_ok=True)


# ---- what a label means ----------------------------------------------------------------------

@dataclass(frozen=True)
class Labels:
    """What a device's label and score mean, from a run's model.json (empty: unknown)."""

    task: str = "unknown"              # "classifier", "anomaly" or "unknown"
    classes: tuple[str, ...] = ()
    normal_class: str = ""
    threshold: float | None = None     # anomaly: a score above it means label 1
    score_baseline: tuple[float, ...] = ()

    @classmethod
    def from_info(cls, info: dict[str, Any], where: Path) -> Labels:
        try:
            threshold = info.get("threshold")
            return cls(task=str(info.get("task", "unknown")), classes=tuple(str(c) for c in info.get("classes", [])),
                       normal_class=str(info.get("normal_class") or ""),
                       threshold=None if threshold is None else float(threshold),
                       score_baseline=tuple(float(s) for s in info.get("score_baseline") or []))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where} has a malformed field: {exc}", RETRAIN) from None

    @property
    def label_names(self) -> tuple[str, ...]:
        """What each label a device sends means: an anomaly detector's 0/1/2, a classifier's classes."""
        return DEVICE_ANOMALY_LABELS if self.task == "anomaly" else self.classes

    def class_name(self, label: int) -> str | None:
        if self.task == "anomaly":
            return dict(enumerate(DEVICE_ANOMALY_LABELS)).get(label)
        return self.classes[label] if 0 <= label < len(self.classes) else None

    def is_anomaly(self, label: int) -> bool | None:
        """Anomaly detectors: label 1, and 2 (a sensor fault). Classifiers: any class but the normal one. Unknown
        models follow the protocol's anomaly convention (label 1). 0xFF: undecided."""
        if label == LABEL_UNDECIDED:
            return None
        if self.task == "classifier":
            if not self.normal_class:
                return None
            return self.class_name(label) != self.normal_class
        return label == 1 or self.is_fault(label)

    def is_fault(self, label: int) -> bool:
        """An anomaly detector's sensor fault (its stuck guard fired): the gateway alerts at once."""
        return self.task == "anomaly" and label == LABEL_SENSOR_FAULT


# ---- the int8 model --------------------------------------------------------------------------

@dataclass(frozen=True)
class Int8Model:
    """A checked full-int8 model: its bytes, tensor quantization and what its labels mean."""

    tflite: Path
    data: bytes = field(repr=False)
    quant: IOQuant
    labels: Labels
    run_dir: Path | None = None
    origin: str = ""            # the name firmware and generated C credit; default: the run or file name

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def hash8(self) -> bytes:
        return bytes.fromhex(self.sha256)[:8]

    @property
    def source_name(self) -> str:
        return self.origin or (self.run_dir or self.tflite).name

    @property
    def input_bytes(self) -> int:
        return _count(self.quant.in_shape)

    @property
    def output_bytes(self) -> int:
        return _count(self.quant.out_shape)

    @property
    def in_scale(self) -> float:
        return self.quant.in_scale

    @property
    def in_zp(self) -> int:
        return self.quant.in_zp

    @property
    def out_scale(self) -> float:
        return self.quant.out_scale

    @property
    def out_zp(self) -> int:
        return self.quant.out_zp

    @property
    def task(self) -> str:
        return self.labels.task

    @property
    def threshold(self) -> float | None:
        return self.labels.threshold

    def preprocess(self) -> Preprocess | None:
        """The run's preprocessing, or None for a bare model."""
        return None if self.run_dir is None else open_model(self.run_dir).preprocess()

    def guard(self) -> Guard | None:
        """The device's input envelope guard (``tinyml.train.guard``), or None (a bare model, a run without one)."""
        from tinyml.train.guard import Guard

        if self.run_dir is None or self.threshold is None:
            return None
        return Guard.from_info(read_json(self.run_dir / MODEL_JSON, "model description"))

    def slope(self) -> Tables | None:
        """The device's slope guard in integers (``tinyml.train.slope_guard``), or None (a bare model, a run
        without one); a malformed or stale one is refused."""
        from tinyml.train.slope_guard import run_tables

        if self.run_dir is None or self.threshold is None:  # a slope guard raises an anomaly threshold's score
            return None
        return run_tables(read_json(self.run_dir / MODEL_JSON, "model description"), self.preprocess())

    def stuck(self) -> StuckGuard | None:
        """The device's stuck guard (``tinyml.train.stuck_guard``), or None (a bare model, a run without one); a
        malformed or stale one, or one on features the device does not count in integers, is refused."""
        from tinyml.train.stuck_guard import StuckGuard, require_integer

        if self.run_dir is None or self.threshold is None:
            return None
        g = StuckGuard.from_info(read_json(self.run_dir / MODEL_JSON, "model description"))
        if g is not None:
            require_integer(self.preprocess())
        return g


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


# ---- one resolved model path -------------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """What a model path resolves to. ``run_dir`` is None for a bare .tflite (no model.json
    beside it); ``file`` is the model file named, or None when a directory was given."""

    path: Path
    run_dir: Path | None
    file: Path | None
    info: dict[str, Any]
    labels: Labels

    def __getitem__(self, name: str) -> Path:
        if self.run_dir is None:
            raise InputError(f"{self.path} is not in a tinyml run directory (no {MODEL_JSON} beside it)",
                             "pass the run directory written by `tinyml train`")
        return self.run_dir / name

    def _check_written_with_model_json(self, name: str) -> None:
        """A file train wrote must still be the one model.json recorded (runs from before
        fingerprints record nothing and are not checked)."""
        recorded = (self.info.get("wrote") or {}).get(name)
        if recorded and sha256_file(self[name]) != recorded:
            raise InputError(f"{self[name]} is not the one written with {self[MODEL_JSON]} (changed or copied "
                             "in since training)", "re-run `tinyml train` to make the run consistent")

    @property
    def threshold(self) -> float | None:
        """The anomaly threshold of the model named: the int8 model's (``int8_labels``) for a .tflite, else model.json's."""
        if self.file is not None and self.file.suffix == ".tflite":
            return self.int8_labels.threshold
        return self.labels.threshold

    @functools.cached_property
    def int8_labels(self) -> Labels:
        """What a device running the run's int8 model means: model.json's labels with the threshold and score
        baseline quantize chose on the int8 model's own validation scores (runs quantized before that keep
        model.json's); a stale quantization report is refused. Read once per ``Model``: each consumer asks for it
        several times (the threshold, the guards, the int8 model)."""
        if self.run_dir is None:
            return self.labels
        path = self[QUANTIZATION_JSON]
        report = read_json(path, "quantization report") if path.is_file() else {}
        if report.get("int8_threshold") is None:
            return self.labels
        self._check_int8(self[MODEL_INT8])
        try:
            baseline = report.get("int8_score_baseline")
            return dataclasses.replace(self.labels, threshold=float(report["int8_threshold"]), score_baseline=(
                self.labels.score_baseline if baseline is None else tuple(float(s) for s in baseline)))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path} has a malformed int8_threshold: {exc}",
                             f"run `tinyml quantize {self.run_dir}` again") from None

    def keras(self) -> Path:
        """The float model, checked against model.json."""
        path = self.file if self.file is not None and self.file.suffix == ".keras" else self[MODEL_KERAS]
        if not path.is_file():
            raise InputError(f"{self.run_dir} has no {MODEL_KERAS}", "re-run `tinyml train` into this directory")
        if path == self[MODEL_KERAS]:
            self._check_written_with_model_json(MODEL_KERAS)
        return path

    def preprocess(self) -> Preprocess:
        from tinyml.preprocess import Preprocess

        path = self[PREPROCESS_JSON]
        obj = read_json(path, "preprocessing constants")
        self._check_written_with_model_json(PREPROCESS_JSON)
        return Preprocess.from_json(obj)

    def tflite_file(self) -> Path:
        """The .tflite to use: a bare file as it is; a run's model_int8.tflite only while
        quantization.json says it was made from the run's current model.keras and preprocess.json."""
        if self.run_dir is None:
            assert self.file is not None
            return self.file
        tflite = self.file if self.file is not None and self.file.suffix == ".tflite" else self[MODEL_INT8]
        self._check_int8(tflite)
        return tflite

    def int8(self) -> Int8Model:
        """The checked full-int8 model (``tflite_file``) with its quantization and label meanings."""
        from tinyml.model.interpreters import io_quantization

        tflite = self.tflite_file()
        data = tflite.read_bytes()
        q = io_quantization(data)
        if self.run_dir is None:
            task = "anomaly" if q.in_shape == q.out_shape else "classifier"  # a bare autoencoder echoes its input
            return Int8Model(tflite, data, q, Labels(task=task), None)
        return Int8Model(tflite, data, q, self.int8_labels, self.run_dir)

    def _check_int8(self, tflite: Path) -> None:
        report_path = self[QUANTIZATION_JSON]
        report = read_json(report_path, "quantization report") if report_path.is_file() else {}
        requantize = f"run `tinyml quantize {self.run_dir}`"
        if not tflite.is_file():
            failed = " (the last quantize failed its tolerance; see quantization.json)" \
                if report.get("passed") is False else ""
            raise InputError(f"{self.run_dir} has no {MODEL_INT8}{failed}", f"{requantize} first")
        wrote = (report.get("wrote") or {}).get(MODEL_INT8)
        if not wrote:
            raise InputError(f"{tflite} has no record of what it was made from ({QUANTIZATION_JSON} "
                             "missing or from an older tinyml)", f"{requantize} to make and record it")
        if tflite.name != MODEL_INT8:
            raise InputError(f"{tflite} is not this run's {MODEL_INT8}", f"pass {self.run_dir} or its {MODEL_INT8}")
        if sha256_file(tflite) != wrote:
            raise InputError(f"{tflite} is not the model {QUANTIZATION_JSON} describes (changed or copied in)",
                             requantize)
        made_from = report.get("made_from") or {}
        for name in (MODEL_KERAS, PREPROCESS_JSON):
            path = self[name]
            if name in made_from and path.is_file() and sha256_file(path) != made_from[name]:
                raise InputError(f"{tflite} is stale: it was quantized from another {name} than the one in "
                                 f"{self.run_dir} (retrained since?)", requantize)


def run_dir_of(path: str | Path) -> Path:
    """A run directory given either the directory itself or any file inside it."""
    model = open_model(path)
    if model.run_dir is None:
        raise InputError(f"{path} is not a tinyml run directory (no {MODEL_JSON})", "pass the --out directory of `tinyml train`")
    return model.run_dir


def open_model(path: str | Path, *, bare: bool = True) -> Model:
    """Resolve a run directory, a file in one, or (with ``bare``) a bare int8 .tflite."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"model not found: {path}", "pass a run directory written by `tinyml train` or a file in it")
    folder = path if path.is_dir() else path.parent
    file = None if path.is_dir() else path
    if not (folder / MODEL_JSON).is_file():
        if file is not None and bare:
            return Model(path, None, file, {}, Labels())
        if file is not None:
            raise InputError(f"no {MODEL_JSON} beside {path}: it is not in a tinyml run directory",
                             "pass the run directory written by `tinyml train`")
        raise InputError(f"{folder} is not a tinyml run directory (no {MODEL_JSON})",
                         "pass the --out directory of `tinyml train`" + (" or an int8 .tflite" if bare else ""))
    info = read_json(folder / MODEL_JSON, "model description")
    if file is not None and file.name == MODEL_JSON:
        file = None
    return Model(path, folder, file, info, Labels.from_info(info, folder / MODEL_JSON))


def read_model_info(run_dir: Path) -> dict:
    """model.json of a training run, with the keys every reader needs."""
    info = read_json(Path(run_dir) / MODEL_JSON, "model description")
    for key in ("task", "classes", "input_shape", "model"):
        if key not in info:
            raise InputError(f"{Path(run_dir) / MODEL_JSON} lacks {key!r}", RETRAIN)
    return info


def read_labels(path: str | Path) -> Labels:
    """What a device's results mean, from a run directory or its model.json (the gateway's [[models]]): the int8
    model's labels (``Model.int8_labels``), as devices run it; a model description kept apart from its run (another
    name than model.json) is read as it is."""
    path = Path(path)
    where = path / MODEL_JSON if path.is_dir() else path
    if not where.is_file():
        raise InputError(f"model file {where} not found", "point `run` at a training run directory")
    model = open_model(where.parent) if where.name == MODEL_JSON else None
    info = model.info if model is not None else read_json(where, "model description")
    if info.get("task") not in ("classifier", "anomaly"):
        raise InputError(f"{where} has no task 'classifier' or 'anomaly'",
                         "it must be the model.json written by `tinyml train`")
    return model.int8_labels if model is not None else Labels.from_info(info, where)


def int8_model(path: str | Path) -> Int8Model:
    """The checked int8 model of a run directory (or a file in one), or a bare int8 .tflite."""
    return open_model(path).int8()
