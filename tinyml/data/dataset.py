"""The dataset file every stage exchanges: one ``.npz`` of fixed-length windows.

Keys (all arrays; scalars are 0-d arrays):
  x         float32 [N, T, C]  windows of raw samples (T samples, C channels)
  y         int64   [N]        class index into ``classes``; -1 when unlabeled
  classes   str     [K]        class names; for anomaly data the normal class is ``normal_class``
  channels  str     [C]        channel names, e.g. ["x", "y", "z"] or ["temp"]
  fs        float64 []         sampling rate in Hz
  split     int8    [N]        0 train, 1 val, 2 test
  groups    str     [N]        recording/group id of each window (splits never cut a group when grouped)
  kind      str     []         "vibration", "temperature" or "generic"
  normal_class str  []         name of the normal class ("" when not an anomaly dataset)
  meta      str     []         JSON with provenance (generator and seed, source files, options)
  times     float64 [N]        optional: start time of each window, seconds since the epoch (NaN: unknown);
                               present when the source had a time column
  rpm       float64 [N]        optional: shaft speed of each window in rpm (NaN: unknown); from
                               `data import --rpm/--rpm-column` or the synthesizer
  meta["bearing"]              optional: the bearing's geometry and defect orders (tinyml/data/bearings.py)
  meta["rpm_range"]            optional: [low, high] rpm, the machine's operating speed range
  column_names  str [G]        optional: names of per-window group columns (operating conditions such as
  column_values str [N, G]     severity, speed, load), their values; what `tinyml evaluate --by` holds out

Only this module reads and writes the format, so every stage agrees on it.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyml.errors import InputError
from tinyml.outputs import atomic_path

if TYPE_CHECKING:
    from tinyml.data.features_series import Stream

SPLITS = {"train": 0, "val": 1, "test": 2}
FORMAT_VERSION = 1


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    channels: list[str]
    fs: float
    split: np.ndarray
    groups: np.ndarray
    kind: str = "generic"
    normal_class: str = ""
    meta: dict = field(default_factory=dict)
    times: np.ndarray | None = None
    rpm: np.ndarray | None = None
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # group columns: name -> str [N]

    def __post_init__(self) -> None:
        self.columns = {str(k): np.asarray(v).astype(str) for k, v in self.columns.items()}
        if self.times is not None:
            self.times = np.asarray(self.times, dtype=np.float64)
        if self.rpm is not None:
            self.rpm = np.asarray(self.rpm, dtype=np.float64)
        self.x = np.asarray(self.x, dtype=np.float32)
        self.y = np.asarray(self.y, dtype=np.int64)
        self.split = np.asarray(self.split, dtype=np.int8)
        self.groups = np.asarray(self.groups).astype(str)
        self.validate()

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def validate(self) -> None:
        """Reject inconsistent data early, with a message that names the problem."""
        if self.x.ndim != 3:
            raise InputError(f"dataset windows must be [N, T, C], got shape {self.x.shape}",
                             "recreate the file with `tinyml data import` or `tinyml data synth`")
        n, _, c = self.x.shape
        if n == 0:
            raise InputError("dataset has no windows", "check --window/--hop against the recording length")
        fields = (("y", self.y), ("split", self.split), ("groups", self.groups))
        optional = tuple((k, v) for k, v in (("times", self.times), ("rpm", self.rpm)) if v is not None)
        for name, arr in fields + optional:
            if arr.shape != (n,):
                raise InputError(f"dataset field {name!r} has shape {arr.shape}, expected ({n},)",
                                 "the file is inconsistent; recreate it")
        for name, arr in self.columns.items():
            if arr.shape != (n,) or not name:
                raise InputError(f"dataset group column {name!r} has shape {arr.shape}, expected ({n},)",
                                 "the file is inconsistent; recreate it")
        if len(self.channels) != c:
            raise InputError(f"dataset has {c} channels but {len(self.channels)} channel names",
                             "the file is inconsistent; recreate it")
        if not np.all(np.isfinite(self.x)):
            bad = int(np.count_nonzero(~np.isfinite(self.x)))
            raise InputError(f"dataset contains {bad} NaN or infinite samples",
                             "clean or interpolate the source data before importing")
        if self.rpm is not None and not np.all(np.isnan(self.rpm) | (self.rpm > 0)):
            raise InputError("dataset shaft speeds (rpm) must be positive or NaN (unknown)",
                             "check --rpm/--rpm-column; a stopped machine has no shaft speed to order-normalise")
        if self.y.size and (self.y.max() >= len(self.classes) or self.y.min() < -1):
            raise InputError("dataset labels point outside the class list", "recreate the file")
        if not np.isfinite(self.fs) or self.fs <= 0:
            raise InputError(f"sampling rate must be positive, got {self.fs}", "pass --fs HZ")
        if set(np.unique(self.split).tolist()) - set(SPLITS.values()):
            raise InputError("dataset split codes must be 0 (train), 1 (val) or 2 (test)", "recreate the file")

    def stream(self) -> Stream | None:
        """Each window's place in time (start, group) for features with state across windows; None untimed."""
        from tinyml.data.features_series import Stream

        return None if self.times is None else Stream(self.times, self.groups)

    def subset(self, which: str | None) -> Dataset:
        """The windows of one split ("train", "val", "test"), or all of them for None/"all"."""
        if which in (None, "all"):
            return self
        if which not in SPLITS:
            raise InputError(f"unknown split {which!r}", "use one of: train, val, test, all")
        mask = self.split == SPLITS[which]
        if not mask.any():
            raise InputError(f"dataset has no windows in the {which!r} split",
                             "re-import with a split that leaves windows on every side")
        return self.take(mask)

    def take(self, index: np.ndarray, split: np.ndarray | None = None) -> Dataset:
        """The windows picked by ``index`` (a boolean mask or indices), every per-window field with
        them; ``split`` replaces their split codes."""
        return Dataset(self.x[index], self.y[index], self.classes, self.channels, self.fs,
                       self.split[index] if split is None else split, self.groups[index], self.kind,
                       self.normal_class, self.meta, None if self.times is None else self.times[index],
                       None if self.rpm is None else self.rpm[index], {k: v[index] for k, v in self.columns.items()})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays = {"x": self.x, "y": self.y, "classes": np.array(self.classes, dtype=str),
                  "channels": np.array(self.channels, dtype=str), "fs": np.float64(self.fs), "split": self.split,
                  "groups": self.groups, "kind": np.array(self.kind), "normal_class": np.array(self.normal_class),
                  "meta": np.array(json.dumps(self.meta)), "format_version": np.int64(FORMAT_VERSION),
                  **({} if self.times is None else {"times": self.times}),
                  **({} if self.rpm is None else {"rpm": self.rpm}),
                  **({"column_names": np.array(list(self.columns), dtype=str),
                      "column_values": np.stack(list(self.columns.values()), axis=1)} if self.columns else {})}
        # what np.savez_compressed writes, at deflate level 1: a million-row import's windows compress in a
        # quarter of level 6's time, about 5 % larger
        with atomic_path(path, suffix=".npz") as tmp, \
                zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:  # never a half file
            for name, value in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
        return path


def check_npz(path: Path, hint: str) -> None:
    """Refuse a file that is not a zip archive before numpy guesses it is a pickle."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint) from None
    if not head.startswith(b"PK"):
        what = "an empty file" if not head else "text" if head.isascii() else "other data"
        raise InputError(f"{path} is not an .npz archive (it holds {what}, not zip data)", hint)


def load(path: str | Path) -> Dataset:
    """Read a dataset file, turning every way it can be broken into an InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"dataset file not found: {path}", "create one with `tinyml data synth` or `tinyml data import`")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a dataset file", "pass the .npz written by `tinyml data`")
    check_npz(path, "create a dataset with `tinyml data synth` or `tinyml data import`")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x", "y", "classes", "fs") if k not in z.files]
            if missing:
                raise InputError(f"{path} is not a tinyml dataset (missing {', '.join(missing)})",
                                 "import raw arrays with `tinyml data import FILE.npz`")
            x = z["x"]
            n = x.shape[0] if x.ndim else 0
            return Dataset(
                x=x, y=z["y"], classes=[str(c) for c in z["classes"]],
                channels=[str(c) for c in z["channels"]] if "channels" in z.files
                else [f"ch{i}" for i in range(x.shape[-1] if x.ndim == 3 else 0)],
                fs=float(z["fs"]),
                split=z["split"] if "split" in z.files else np.zeros(n, np.int8),
                groups=z["groups"] if "groups" in z.files else np.array([""] * n),
                kind=str(z["kind"]) if "kind" in z.files else "generic",
                normal_class=str(z["normal_class"]) if "normal_class" in z.files else "",
                meta=json.loads(str(z["meta"])) if "meta" in z.files else {},
                times=z["times"] if "times" in z.files else None,
                rpm=z["rpm"] if "rpm" in z.files else None,
                columns=_columns(z),
            )
    except InputError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read dataset {path}: {' '.join(str(exc).split())}",
                         "the file is truncated or not an .npz; recreate it") from exc


def _columns(z: np.lib.npyio.NpzFile) -> dict[str, np.ndarray]:
    if "column_names" not in z.files:
        return {}
    names, values = z["column_names"], z["column_values"]
    if names.ndim != 1 or values.ndim != 2 or values.shape[1] != names.shape[0]:
        raise InputError(f"group columns: {names.shape[0] if names.ndim else 0} names but values of shape "
                         f"{values.shape}", "the file is inconsistent; recreate it")
    return {str(k): values[:, i] for i, k in enumerate(names)}


def group_column(ds: Dataset, name: str) -> np.ndarray:
    """The per-window values of a group column: one of ``ds.columns``, or the recording groups
    (``group``, or the column name they were imported from with --group-column)."""
    if name in ds.columns:
        return ds.columns[name]
    imported = (ds.meta.get("options") or {}).get("group_column") if isinstance(ds.meta, dict) else None
    if name in ("group", imported):
        return ds.groups
    known = [*ds.columns, "group", *([imported] if imported else [])]
    raise InputError(f"dataset has no group column {name!r}",
                     f"use one of: {', '.join(known)} (`tinyml data synth vibration --severities/--speeds/"
                     "--loads/--resonances/--noise` records them)")


def is_dataset_file(path: str | Path) -> bool:
    """True when an .npz already follows this format (as opposed to raw arrays to import)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {"x", "y", "classes", "fs"} <= set(z.files)
    except Exception:  # noqa: BLE001 - any unreadable file is simply "not a dataset"
        return False
