"""``tinyml data import``: files or labelled folders in, one windowed, split dataset out.

Steps: find the files (``PATH/<label>/<files>`` labels by folder), read recordings,
resample every recording to one rate, split (by group, by time within each recording, or
at random), cut windows from each contiguous recording only, and check the result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinyml import optioncheck as oc
from tinyml.data import series, speed
from tinyml.data.dataset import Dataset
from tinyml.data.io import DATA_SUFFIXES, Recording, read_csv, read_mat, read_npz
from tinyml.data.split import TEST, TRAIN, VAL, allocate, check_split, split_by_group, split_random
from tinyml.errors import InputError

SPLIT_MODES = ("group", "time", "random")
FILL_MODES = ("linear", "previous", "zero")


@dataclass(frozen=True, kw_only=True)
class ImportOptions:
    columns: list[str] | None = None
    time_column: str | None = None
    label_column: str | None = None
    group_column: str | None = None
    label: str | None = None            # one label for every file (when no column or folder gives one)
    variable: str | None = None         # .mat/.npz array name pattern
    fs: float | None = None             # target rate; also the source rate when nothing else says
    source_fs: float | None = None      # rate of sources with no time column and no fs inside
    window: int = 256
    hop: int | None = None              # default: the window (no overlap)
    split: str | None = None            # default: group for several sources or a group column, else time
    val: float = 0.15
    test: float = 0.15
    test_groups: list[str] | None = None
    val_groups: list[str] | None = None
    fill: str | None = None
    kind: str = "generic"
    normal_class: str = ""
    class_names: dict[str, str] | None = None  # label as found -> class name to store
    seed: int = 0
    time_format: str | None = None      # s, ms or a strptime pattern (default: numbers or ISO 8601)
    on_backwards: str = "refuse"        # clock faults: refuse, drop, sort or split
    max_gap: float | None = None        # seconds; longer steps split the recording
    resample: str = "linear"            # how irregular times go onto the grid: linear or previous
    labels: str | None = None           # interval file (start,end,label CSV/JSON, or NAB combined_windows.json)
    unlabelled_as: str = "normal"       # windows in no interval: the normal class, or "none" (unlabelled, -1)
    rpm: float | str | dict[str, float] | None = None  # shaft speed: one value, per recording {group: rpm}, or "estimate"
    rpm_column: str | None = None       # CSV column of the shaft speed in rpm (a window gets its mean)
    rpm_range: list[float] | None = None  # [low, high] rpm: the machine's speed range (and the estimate's search)
    bearing: str | None = None          # bearing name (bearings/NAME.toml) or a .toml file

    def check(self) -> None:
        oc.at_least(self, "window", 2)
        oc.at_least(self, "hop", 1)
        oc.positive(self, "fs")
        oc.positive(self, "source_fs")
        oc.one_of(self, "fill", FILL_MODES)
        oc.one_of(self, "split", SPLIT_MODES)
        oc.split_fractions(self)
        oc.one_of(self, "on_backwards", series.ON_BACKWARDS)
        oc.one_of(self, "resample", series.RESAMPLE_METHODS)
        oc.positive(self, "max_gap")
        oc.one_of(self, "unlabelled_as", ("normal", "none"))
        if self.labels and not self.time_column:
            raise InputError("--labels needs --time-column", "name the CSV column of timestamps")
        if self.labels and (self.label_column or self.label):
            raise InputError("--labels gives the labels; --label/--label-column would contradict it",
                             "drop --label/--label-column")
        if (self.time_format or self.max_gap) and not self.time_column:
            raise InputError("--time-format/--max-gap need --time-column", "name the CSV column of timestamps")
        speed.check_options(self)


def find_sources(paths: list[str | Path]) -> list[tuple[Path, str | None]]:
    """Data files with the label their folder gives (``PATH/<label>/...``), or None."""
    out: list[tuple[Path, str | None]] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"no such file or folder: {p}", "check the path")
        if p.is_file():
            if p.suffix.lower() not in DATA_SUFFIXES:
                raise InputError(f"{p}: unsupported file type {p.suffix or '(none)'}",
                                 f"import {', '.join(DATA_SUFFIXES)} files")
            out.append((p, None))
            continue
        found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in DATA_SUFFIXES)
        if not found:
            raise InputError(f"folder {p} has no data files ({', '.join(DATA_SUFFIXES)})",
                             "lay it out as PATH/<label>/<files>")
        for f in found:
            rel = f.relative_to(p).parts
            out.append((f, rel[0] if len(rel) > 1 else None))
    return out


def _read(path: Path, o: ImportOptions) -> list[Recording]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        columns = o.columns if o.columns is None or not o.rpm_column else [*o.columns, o.rpm_column]
        return read_csv(path, columns, o.time_column, o.label_column, o.group_column, o.fill,
                        timing=series.TimeOptions(time_format=o.time_format, on_backwards=o.on_backwards,
                                                  max_gap=o.max_gap, resample=o.resample))
    if o.columns or o.label_column or o.group_column or o.time_column or o.rpm_column:
        raise InputError(f"{path}: --columns/--label-column/--group-column/--time-column/--rpm-column apply to CSV "
                         "files only",
                         "use --variable for .mat/.npz arrays and folders or --label for labels")
    return read_mat(path, o.variable, o.fill) if suffix == ".mat" else read_npz(path, o.variable, o.fill)


def resample(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Band-limited resampling of [T, C] by trimming or zero-padding the spectrum (anti-aliased)."""
    if abs(fs_in - fs_out) <= 1e-9 * fs_out:
        return signal
    n = signal.shape[0]
    m = max(1, round(n * fs_out / fs_in))
    spec = np.fft.rfft(signal, axis=0)
    keep = min(spec.shape[0], m // 2 + 1)
    out = np.zeros((m // 2 + 1, signal.shape[1]), dtype=complex)
    out[:keep] = spec[:keep]
    return np.fft.irfft(out, n=m, axis=0) * (m / n)


def _cut(n: int, window: int, hop: int) -> list[int]:
    return list(range(0, n - window + 1, hop)) if n >= window else []


def import_data(paths: list[str | Path], o: ImportOptions = ImportOptions()) -> Dataset:
    """Read, resample, split and window ``paths`` into a Dataset (see the module docstring)."""
    o.check()
    hop = o.window if o.hop is None else o.hop
    sources = find_sources(paths)
    recs = _read_all(sources, o)
    fs = _target_fs(recs, o)
    for r in recs:
        r.signal = resample(r.signal, r.fs or o.source_fs or fs, fs)
    has_speed = speed.recording_speeds(recs, o, fs)   # rpm per sample (a --rpm-column leaves the signal)
    channels = _channels(recs)
    longest = max(r.signal.shape[0] for r in recs)  # too short is the first thing to say, before classes
    if longest < o.window:
        raise InputError(f"--window {o.window} is longer than the longest recording ({longest} samples at {fs:g} Hz)",
                         "use a shorter --window, or import longer recordings")
    classes = _classes(recs, o) if not o.labels else [recs[0].label]
    for r in recs:
        r.label = (o.class_names or {}).get(r.label, r.label)
    mode = o.split or ("group" if o.group_column or len(sources) > 1 else "time")
    if mode not in SPLIT_MODES:
        raise InputError(f"unknown --split {mode!r}", f"use one of: {', '.join(SPLIT_MODES)}")
    if (o.test_groups or o.val_groups) and mode != "group":
        raise InputError("--test-groups/--val-groups need --split group", "add --split group")
    pieces = _time_pieces(recs, o, hop) if mode == "time" else [(r, 0, r.signal.shape[0], TRAIN) for r in recs]
    x, y, groups, sp, skipped, times, on_log, sources_of, rpm = _windows(pieces, classes, o.window, hop, fs)
    normal_class = o.normal_class
    if o.labels:  # intervals are on the log's clock
        classes, y, normal_class = _interval_labels(o, on_log, sources_of, o.window / fs)
    need_val, need_test = (o.val > 0 or bool(o.val_groups)), (o.test > 0 or bool(o.test_groups))
    if mode == "group":
        split = split_by_group(groups, y, o.val, o.test, o.seed, o.test_groups, o.val_groups)
    elif mode == "random":
        split = split_random(y, o.val, o.test, o.seed)
    else:
        split = sp
    check_split(split, need_val, need_test)
    meta = {"importer": "tinyml.data.importer", "sources": [str(p) for p, _ in sources],
            "options": asdict(o) | {"split": mode, "hop": hop}, "skipped_short_recordings": skipped,
            "source_fs": sorted({r.fs or o.source_fs or fs for r in recs})}
    timed = [r for r in recs if r.timing is not None]
    if timed:
        meta["recordings"] = [{"source": r.source, "label": r.label, "group": r.group, **r.timing} for r in timed]
    meta |= speed.machine_meta(o, recs)
    return Dataset(x, y, classes, channels, fs, split, groups, o.kind, normal_class, meta,
                   times if timed else None, rpm if has_speed else None)


def _read_all(sources: list[tuple[Path, str | None]], o: ImportOptions) -> list[Recording]:
    """Every recording of every source, labelled (column, folder or --label) and grouped (column or file)."""
    recs: list[Recording] = []
    for path, folder_label in sources:
        for r in _read(path, o):
            r.label = r.label if r.label is not None else folder_label if folder_label is not None else o.label
            if o.labels:  # every window starts normal; the intervals label the rest after cutting
                r.label = o.normal_class or "normal"
            if r.label is None:
                raise InputError(f"{path}: no label for its samples",
                                 "use --label-column, lay files out as PATH/<label>/<files>, or pass --label NAME")
            r.group = r.group if r.group is not None else str(path)
            recs.append(r)
    return recs


def _windows(pieces: list[tuple[Recording, int, int, int]], classes: list[str], window: int, hop: int,
             fs: float):
    """Windows cut inside each piece [a, b) of one recording: x, y, groups, split codes, pieces too short,
    start times (NaN where the recording had no time column), the same on the log's clock (they differ after
    a clock fault ``--on-backwards continue`` re-timed), mean shaft speeds (NaN without one)."""
    xs, ys, gs, sp, ts, logged, src, rpm = [], [], [], [], [], [], [], []
    skipped = 0
    for r, a, b, code in pieces:
        starts = _cut(b - a, window, hop)
        skipped += not starts
        xs += [r.signal[a + s:a + s + window] for s in starts]
        ys += [classes.index(r.label)] * len(starts)
        gs += [r.group] * len(starts)
        sp += [code] * len(starts)
        mine = [(r.t0 if r.t0 is not None else np.nan) + (a + s) / fs for s in starts]
        ts += mine
        logged += series.logged(np.array(mine), r.clock_shifts).tolist()
        src += [r.source] * len(starts)
        rpm += [float(r.speed[a + s:a + s + window].mean()) if r.speed is not None else np.nan for s in starts]
    if not xs:
        raise InputError(f"no recording piece is as long as --window {window}", "use a shorter --window")
    return (np.stack(xs), np.array(ys, dtype=np.int64), np.array(gs, dtype=str), np.array(sp, dtype=np.int8),
            skipped, np.array(ts, dtype=np.float64), np.array(logged, dtype=np.float64), np.array(src, dtype=str),
            np.array(rpm, dtype=np.float64))


def _interval_labels(o: ImportOptions, times: np.ndarray, sources: np.ndarray, seconds: float):
    """Classes (normal first), window labels and the normal class name from ``--labels`` intervals."""
    from tinyml.data.intervals import label_windows, read_intervals
    found = label_windows(read_intervals(o.labels, time_format=o.time_format), starts=times, seconds=seconds,
                          sources=sources, where=str(o.labels))
    normal = o.normal_class or "normal"
    classes = [normal] + sorted({str(f) for f in found} - {"", normal})
    unlabelled = 0 if o.unlabelled_as == "normal" else -1
    y = np.array([classes.index(f) if f else unlabelled for f in found], dtype=np.int64)
    return classes, y, normal


def _channels(recs: list[Recording]) -> list[str]:
    counts = {len(r.channels) for r in recs}
    if len(counts) != 1:
        raise InputError(f"sources have different channel counts: {sorted(counts)}",
                         "pick the same channels in every file (--columns or --variable)")
    names = {tuple(r.channels) for r in recs}
    return list(recs[0].channels) if len(names) == 1 else [f"ch{i}" for i in range(counts.pop())]


def _target_fs(recs: list[Recording], o: ImportOptions) -> float:
    rates = {r.fs or o.source_fs or o.fs for r in recs}
    if None in rates:
        raise InputError("sampling rate unknown for some sources (no time column, no fs inside)",
                         "pass --fs HZ (or --source-fs HZ for the files' own rate)")
    if o.fs is not None:
        return float(o.fs)
    if len({round(float(f), 6) for f in rates}) > 1:
        raise InputError(f"sources have different sampling rates ({', '.join(f'{f:g}' for f in sorted(rates))} Hz)",
                         "pass --fs HZ to resample them to one rate")
    return float(rates.pop())


def _classes(recs: list[Recording], o: ImportOptions) -> list[str]:
    """Class names in label order (numeric labels sort as numbers), renamed by ``class_names``."""
    labels = {r.label for r in recs}
    try:
        found = sorted(labels, key=float)
    except ValueError:
        found = sorted(labels)
    unknown = sorted(set(o.class_names or {}) - labels)
    if unknown:
        raise InputError(f"--class-names renames unknown label(s) {', '.join(unknown)}",
                         f"labels in the data: {', '.join(found)}")
    classes = [(o.class_names or {}).get(c, c) for c in found]
    if len(set(classes)) != len(classes):
        raise InputError("--class-names gives two labels the same name", "give every label its own name")
    if o.normal_class and o.normal_class not in classes:
        raise InputError(f"--normal-class {o.normal_class!r} is not a class", f"classes: {', '.join(classes)}")
    if len(classes) < 2 and not o.normal_class:
        raise InputError(f"only one class ({classes[0]!r}) in the data; a classifier needs at least two",
                         "import files of several labels, or pass --normal-class NAME for anomaly data")
    return classes


def _time_pieces(recs: list[Recording], o: ImportOptions, hop: int) -> list[tuple[Recording, int, int, int]]:
    """Each recording cut in time: the first part for train, then val, then test."""
    out = []
    for r in recs:
        n = r.signal.shape[0]
        n_win = len(_cut(n, o.window, hop))
        if n_win == 0:
            out.append((r, 0, n, TRAIN))
            continue
        n_val, n_test = allocate(n_win, o.val, o.test, f"windows in recording {r.group}/{r.label}") \
            if n_win >= 3 else (0, 0)  # too short to cut in three: all of it trains
        frac_val, frac_test = n_val / n_win, n_test / n_win
        b_train = round(n * (1 - frac_val - frac_test))
        b_val = round(n * (1 - frac_test))
        out += [(r, 0, b_train, TRAIN), (r, b_train, b_val, VAL), (r, b_val, n, TEST)]
    return out
