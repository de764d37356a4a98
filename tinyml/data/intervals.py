"""Labels given as time intervals ("the pump failed between 14:00 and 18:30"), turned into window labels.

Files: a CSV with ``start,end,label`` columns, a JSON list of ``{"start", "end", "label"}`` objects, or NAB's
``combined_windows.json`` shape (a data file name mapped to ``[[start, end], ...]``, label ``anomaly``).
Times are read like the data's time column (``tinyml/data/timestamps.py``). A window takes an interval's
label when at least half of it lies inside the interval; other windows are normal (or unlabelled).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from tinyml.data.timestamps import iso, parse_times
from tinyml.errors import InputError

NAB_LABEL = "anomaly"
HINT = "give start,end,label rows (CSV or JSON), or NAB's {\"file.csv\": [[start, end], ...]}"


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    label: str
    source: str | None  # the data file it belongs to (NAB shape), None: every file
    where: str          # how to name it in an error


def read_intervals(path: str | Path, *, time_format: str | None = None) -> list[Interval]:
    """Every interval in the file, checked: start before end, no overlap between different labels."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"labels file not found: {path}", "pass a .csv or .json of start,end,label intervals")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read labels file {path}: {exc}", HINT) from None
    rows = _json_rows(text, path) if path.suffix.lower() == ".json" else _csv_rows(text, path)
    if not rows:
        raise InputError(f"{path}: no intervals", HINT)
    starts = parse_times([r[0] for r in rows], fmt=time_format, where=f"{path} (start)")
    ends = parse_times([r[1] for r in rows], fmt=time_format, where=f"{path} (end)")
    out = [Interval(float(s), float(e), r[2], r[3], r[4]) for s, e, r in zip(starts, ends, rows, strict=True)]
    for iv in out:
        if not iv.end > iv.start:
            raise InputError(f"{path}: {iv.where} ends ({iso(iv.end)}) before it starts ({iso(iv.start)})",
                             "swap start and end")
    _no_conflicts(out, path)
    return out


def _csv_rows(text: str, path: Path) -> list[tuple]:
    table = list(csv.reader(text.splitlines()))
    header = [h.strip().lower() for h in table[0]] if table else []
    if not {"start", "end", "label"} <= set(header):
        raise InputError(f"{path}: the header must name start, end and label (found {', '.join(header)})", HINT)
    i, j, k = header.index("start"), header.index("end"), header.index("label")
    return [(r[i], r[j], r[k].strip(), None, f"line {n}") for n, r in enumerate(table[1:], start=2) if any(r)]


def _json_rows(text: str, path: Path) -> list[tuple]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})", HINT) from None
    try:
        if isinstance(doc, dict):  # NAB: {"realKnownCause/x.csv": [["2013-12-10 06:25:00.000000", "..."], ...]}
            return [(str(p[0]), str(p[1]), NAB_LABEL, name, f"{name} interval {n + 1}")
                    for name, pairs in doc.items() for n, p in enumerate(pairs) if len(p) == 2]
        return [(str(d["start"]), str(d["end"]), str(d["label"]), d.get("file"), f"interval {n + 1}")
                for n, d in enumerate(doc)]
    except (TypeError, KeyError, IndexError):
        raise InputError(f"{path}: cannot read intervals", HINT) from None


def _no_conflicts(intervals: list[Interval], path: Path) -> None:
    ordered = sorted(intervals, key=lambda iv: (iv.source or "", iv.start))
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.source == b.source and b.start < a.end and a.label != b.label:
            raise InputError(f"{path}: {a.where} ({a.label}, {iso(a.start)} to {iso(a.end)}) overlaps {b.where} "
                             f"({b.label}, {iso(b.start)} to {iso(b.end)})",
                             "make intervals with different labels disjoint")


def applies_to(iv: Interval, source: str) -> bool:
    """NAB keys are paths relative to NAB's data folder: match them by file name."""
    return iv.source is None or PurePosixPath(iv.source).name == Path(source).name


def label_windows(intervals: list[Interval], *, starts: np.ndarray, seconds: float, sources: np.ndarray,
                  where: str) -> np.ndarray:
    """The interval label of each window (half or more of it inside), '' for none; intervals off the data fail
    (intervals NAB keys to a file not imported are skipped)."""
    out = np.full(len(starts), "", dtype=object)
    ends = starts + seconds
    for iv in intervals:
        mine = np.array([applies_to(iv, s) for s in sources]) & np.isfinite(starts)
        if not mine.any() and iv.source is not None:
            continue  # NAB's file names every data file; only the imported ones matter
        if not mine.any() or iv.end <= starts[mine].min() or iv.start >= ends[mine].max():
            span = f"{iso(starts[mine].min())} to {iso(ends[mine].max())}" if mine.any() else "no data of its file"
            raise InputError(f"{where}: {iv.where} ({iso(iv.start)} to {iso(iv.end)}) lies outside the data ({span})",
                             "check the interval times and their time zone against the data's time column")
        inside = np.minimum(ends, iv.end) - np.maximum(starts, iv.start)
        out[mine & (inside >= seconds / 2)] = iv.label
    return out
