"""Append captured windows to a dataset file, with provenance per window.

Captured windows (from `tinyml capture` or the gateway's evidence windows) become ordinary
dataset windows (tinyml/data/dataset.py), so `tinyml data info` and `tinyml train` read them
unchanged. What the format has no field for goes into ``meta``:

- ``meta["provenance"]``: one list per field (device, boot_id, window, time, sensor, fs,
  source), each as long as the file has windows; windows that came from elsewhere (a synth or
  an import) have ``None`` there.
- ``meta["captures"]``: one summary per capture session appended.

One file holds one sampling rate and one window layout: a model is trained for exactly one,
so a mix is refused with the reason. Windows are split in blocks of consecutive windows
(each block its own group), so neighbouring windows of one session rarely sit on both sides
of train/val/test.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinyml.data.dataset import Dataset, load
from tinyml.data.split import TEST, TRAIN, VAL
from tinyml.errors import InputError

BLOCK = 8  # consecutive windows that share a group (and so a split)
PROVENANCE_FIELDS = ("device", "boot_id", "window", "time", "sensor", "fs", "source")
RATE_TOLERANCE = 1e-5  # relative: f32 on the wire, float64 in the file


@dataclass(frozen=True)
class WindowOrigin:
    """Where one captured window came from."""

    device: str
    boot_id: int | None
    window: int | None
    time: float  # unix seconds when the host received it
    sensor: str
    fs: float
    source: str  # "protocol", "csv" or "gateway"


def block_split(index: int) -> int:
    """Split code of the ``index``-th window of a session: blocks 5 and 6 of every 7 go to val
    and test, so a long session fills all three sides and a short one trains (train carves
    validation from it)."""
    return {5: VAL, 6: TEST}.get(index // BLOCK % 7, TRAIN)


def same_rate(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RATE_TOLERANCE)


def check_compatible(ds: Dataset, *, fs: float, samples: int, channels: int, path: Path | str,
                     channel_names: list[str] | None = None) -> None:
    """Refuse windows that do not fit the file: another rate, window length or channel layout."""
    hint = "capture into another --out file (one file holds one sampling rate and window layout)"
    if not same_rate(ds.fs, fs):
        raise InputError(f"refusing to mix sampling rates: {path} holds {ds.fs:g} Hz windows, these are {fs:g} Hz",
                         hint)
    if ds.x.shape[1] != samples:
        raise InputError(f"refusing to mix window lengths: {path} holds windows of {ds.x.shape[1]} samples, "
                         f"these have {samples}", hint)
    if ds.x.shape[2] != channels:
        raise InputError(f"refusing to mix channel layouts: {path} holds {ds.x.shape[2]} channel(s) "
                         f"({', '.join(ds.channels)}), these have {channels}", hint)
    if channel_names is not None and list(channel_names) != list(ds.channels):
        raise InputError(f"refusing to mix channel layouts: {path} holds channels {', '.join(ds.channels)}, "
                         f"these are {', '.join(channel_names)}", hint)


def default_channels(n: int) -> list[str]:
    return ["x", "y", "z"] if n == 3 else ["temp"] if n == 1 else [f"ch{i}" for i in range(n)]


def append_windows(path: Path, windows: np.ndarray, origins: list[WindowOrigin], *, label: str, session: str,
                   channels: list[str] | None = None, kind: str | None = None, labels: list[str | None] | None = None,
                   sessions: list[str] | None = None, existing: Dataset | None = None, replace: bool = False,
                   extra: dict | None = None) -> Dataset:
    """Add ``windows`` [N, T, C] of class ``label`` (or per-window ``labels``; per-window
    ``sessions`` too; a label None leaves the window unlabeled, y = -1) to the dataset at ``path`` (created when missing, or anew with ``replace``)
    and write it atomically; returns the saved dataset. ``extra`` goes into ``meta`` as is."""
    windows = np.asarray(windows, np.float32)
    if windows.ndim != 3 or not len(windows):
        raise InputError("no complete windows to save", "capture for longer (--seconds) or more windows (--windows)")
    if len(origins) != len(windows) or (labels is not None and len(labels) != len(windows)):
        raise ValueError("one origin and label per window")
    n, samples, nch = windows.shape
    fs = origins[0].fs
    if any(not same_rate(o.fs, fs) for o in origins):
        raise InputError(f"refusing to mix sampling rates in one file: windows at {fs:g} Hz and "
                         f"{next(o.fs for o in origins if not same_rate(o.fs, fs)):g} Hz",
                         "export or capture each rate into its own file")
    labels = labels or [label] * n
    ds = existing if existing is not None else (load(path) if Path(path).exists() and not replace else None)
    if ds is not None:
        check_compatible(ds, fs=fs, samples=samples, channels=nch, path=path, channel_names=channels)
        base = ds
    else:
        names = channels or default_channels(nch)
        if len(names) != nch:
            raise InputError(f"{len(names)} channel names for {nch} channels", "give one --channels name per channel")
        base = None
    classes = list(base.classes) if base else []
    for name in labels:
        if name is not None and name not in classes:
            classes.append(name)
    y_new = np.array([-1 if name is None else classes.index(name) for name in labels], np.int64)
    sessions = sessions or [session] * n
    index_in_session: list[int] = []
    seen: dict[str, int] = {}
    for s in sessions:
        index_in_session.append(seen.get(s, 0))
        seen[s] = index_in_session[-1] + 1
    split_new = np.array([block_split(i) for i in index_in_session], np.int8)
    groups_new = np.array([f"{s}-b{i // BLOCK:04d}" for s, i in zip(sessions, index_in_session, strict=True)])
    meta = dict(base.meta) if base else {"generator": "tinyml capture"}
    old_n = base.n if base else 0
    prov = {k: list(v) for k, v in meta.get("provenance", {}).items()} if base else {}
    for field in PROVENANCE_FIELDS:
        column = prov.get(field, [])
        column += [None] * (old_n - len(column))
        column += [asdict(o)[field] for o in origins]
        prov[field] = column
    meta["provenance"] = prov
    meta.update(extra or {})
    meta["captures"] = [*meta.get("captures", []), {
        "session": session, "label": label if len(set(labels)) == 1 else "mixed", "windows": n,
        "devices": sorted({o.device for o in origins}), "source": origins[0].source,
        "first_time": min(o.time for o in origins), "last_time": max(o.time for o in origins)}]
    if base is None:
        out = Dataset(windows, y_new, classes, names, float(fs), split_new, groups_new, kind or "generic", "", meta)
    else:
        out = Dataset(np.concatenate([base.x, windows]), np.concatenate([base.y, y_new]), classes, base.channels,
                      base.fs, np.concatenate([base.split, split_new]), np.concatenate([base.groups, groups_new]),
                      base.kind, base.normal_class, meta,
                      columns={k: np.concatenate([v, np.full(n, "")]) for k, v in base.columns.items()})
    out.save(path)
    return out
