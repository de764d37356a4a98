"""Read recordings from CSV, MATLAB ``.mat`` and raw ``.npz`` files.

A reader returns ``Recording`` objects: one contiguous stretch of samples from one source
with one label and one group. A CSV is cut into a new recording wherever the label or
group changes (or the time column jumps), so a window can never mix two recordings.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml.data import series
from tinyml.data.csvtable import decimals, read_table, text
from tinyml.data.timestamps import iso, parse_times
from tinyml.errors import InputError

DATA_SUFFIXES = (".csv", ".mat", ".npz")
FS_NAMES = ("fs", "sampling_rate", "sample_rate", "samplerate")


@dataclass
class Recording:
    signal: np.ndarray          # [T, C] float64
    channels: list[str]
    source: str                 # the file it came from
    label: str | None = None
    group: str | None = None    # None: the source file is the group
    fs: float | None = None     # None: unknown, the caller's --source-fs/--fs applies
    t0: float | None = None     # time of the first sample (s since the epoch) when a time column gave it
    timing: dict | None = None  # span, lines, the gap before it and clock faults (for `data info`)
    speed: np.ndarray | None = None  # [T] shaft speed in rpm per sample (tinyml/data/speed.py)
    clock_shifts: tuple[tuple[float, float], ...] = ()  # --on-backwards continue: series.retime's, for series.logged


def _missing(cell: str) -> bool:
    return cell.strip().lower() in ("", "nan", "na", "null", "none", "inf", "+inf", "-inf", "infinity", "-infinity")


def _fill_or_fail(values: np.ndarray, names: list[str], source: str, fill: str | None,
                  where: Callable[[int], str]) -> np.ndarray:
    """Reject NaN/inf naming the first bad spot, or fill it (``fill`` = "linear", "previous" or "zero")."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    if fill is None:
        r, c = np.argwhere(bad)[0]
        raise InputError(f"{source}: missing, NaN or infinite value at {where(int(r))}, column {names[c]!r}",
                         "clean the file, or pass --fill linear|previous|zero to fill gaps")
    out = values.copy()
    for c in range(out.shape[1]):
        col = out[:, c]
        ok = np.isfinite(col)
        if not ok.any():
            raise InputError(f"{source}: column {names[c]!r} has no finite values", "check --columns")
        if fill == "zero":
            col[~ok] = 0.0
        elif fill == "previous":
            idx = np.where(ok, np.arange(len(col)), 0)
            np.maximum.accumulate(idx, out=idx)
            first = np.flatnonzero(ok)[0]
            col[:] = col[idx]
            col[:first] = col[first]
        else:
            col[~ok] = np.interp(np.flatnonzero(~ok), np.flatnonzero(ok), col[ok])
    return out


def read_csv(path: Path, columns: list[str] | None, time_column: str | None, label_column: str | None,
             group_column: str | None, fill: str | None, *,
             timing: series.TimeOptions | None = None) -> list[Recording]:
    """Rows of a CSV with a header line, cut into recordings by label/group runs and time gaps."""
    table = read_table(path)
    header = table.header
    special = [c for c in (time_column, label_column, group_column) if c]
    for name in special + (columns or []):
        if name not in header:
            raise InputError(f"{path}: unknown column {name!r}", f"columns are: {', '.join(header)}")
    column = {name: table.columns[header.index(name)] for name in header}
    if columns is None:
        columns = [h for h in header if h not in special and _numeric_column(column[h])]
        if not columns:
            raise InputError(f"{path}: no numeric signal columns", "choose them with --columns a,b,c")
    signal = np.stack([_numeric(column[name], name, path) for name in columns], axis=1)
    labels = _names(column[label_column]) if label_column else None
    groups = _names(column[group_column]) if group_column else None
    if time_column:
        return _timed(path, column[time_column], time_column, signal, columns, labels, groups,
                      fill, timing or series.TimeOptions())
    cuts = _run_starts(labels, groups, table.rows)
    out = []
    for a, b in zip(cuts, cuts[1:] + [table.rows], strict=True):
        seg = _fill_or_fail(signal[a:b], columns, str(path), fill, lambda r, a=a: f"line {a + r + 2}")
        out.append(Recording(seg, list(columns), str(path), labels[a] if labels else None,
                             groups[a] if groups else None))
    return out


def _names(cells: np.ndarray) -> list[str]:
    """A label or group column as stripped str (one Python str per distinct value)."""
    values, inverse = np.unique(cells, return_inverse=True)
    names = [text(v).strip() for v in values]
    return [names[i] for i in inverse.tolist()]


def _timed(path: Path, cells: np.ndarray, name: str, signal: np.ndarray, columns: list[str],
           labels: list[str] | None, groups: list[str] | None, fill: str | None,
           o: series.TimeOptions) -> list[Recording]:
    """Recordings of a timestamped CSV: runs of label/group, clock faults handled, split at gaps, on a grid."""
    where = f"{path}, column {name!r}"
    t = parse_times(cells, fmt=o.time_format, where=where)
    n = len(t)
    if not np.all(np.isfinite(t)):
        r = int(np.flatnonzero(~np.isfinite(t))[0])
        raise InputError(f"{path}: missing or non-finite time at line {r + 2}, column {name!r}",
                         "fix the time column")
    runs = []  # (row indices in time order) per run of one label and group
    cuts = _run_starts(labels, groups, n)
    for a, b in zip(cuts, cuts[1:] + [n], strict=True):
        faults = series.clock_faults(t[a:b], a + 2)
        keep, breaks = series.order(t[a:b], faults, on_backwards=o.on_backwards, where=str(path))
        for k, (p, q) in enumerate(zip([0, *breaks], [*breaks, len(keep)], strict=True)):
            runs.append((a + keep[p:q], faults if k == 0 else []))
    step = _step(t, runs, path)
    if step is None:  # one row per recording: nothing to say about the rate (the caller's --fs applies)
        return [Recording(signal[rows], list(columns), str(path), labels[rows[0]] if labels else None,
                          groups[rows[0]] if groups else None, None, float(t[rows[0]])) for rows, _ in runs]
    shifts: list[list[tuple[float, float]]] = [[] for _ in runs]
    if o.on_backwards == "continue" and any(faults for _, faults in runs):
        t = t.astype(np.float64, copy=True)  # from here on the re-timed clock; the timing info reports the log's
        shifts = [series.retime(t, rows, [f.line - 2 for f in faults], step=step) for rows, faults in runs]
    max_gap = o.max_gap if o.max_gap is not None else series.DEFAULT_MAX_GAP_STEPS * step
    out = []
    for (rows, faults), shifted in zip(runs, shifts, strict=True):
        tr = t[rows]
        cuts = [0, *series.gaps(tr, max_gap).tolist(), len(rows)]
        firsts = [int(rows[p]) + 2 for p in cuts[:-1]]
        for k, (p, q) in enumerate(itertools.pairwise(cuts)):
            idx = rows[p:q]
            seg = _fill_or_fail(signal[idx], columns, str(path), fill, lambda r, idx=idx: f"line {int(idx[r]) + 2}")
            seg, moved = series.to_grid(tr[p:q], seg, step=step, method=o.resample)
            mine = [vars(f) for f in faults  # each fault goes with the piece its line falls in
                    if (k == 0 or f.line >= firsts[k]) and (k + 1 == len(firsts) or f.line < firsts[k + 1])]
            mine_shifts = tuple(x for x in shifted if x[0] <= tr[q - 1])
            on_log = series.logged(np.array([tr[p], tr[q - 1]]), mine_shifts)
            info = {"start": iso(on_log[0]), "end": iso(on_log[1] + step), "first_line": int(idx[0]) + 2,
                    "last_line": int(idx[-1]) + 2, "samples": int(seg.shape[0]), "resampled": moved,
                    "gap_before_s": float(tr[p] - tr[p - 1]) if k else None, "clock_faults": mine,
                    **({"retimed_s": mine_shifts[-1][1]} if mine_shifts else {})}
            out.append(Recording(seg, list(columns), str(path), labels[idx[0]] if labels else None,
                                 groups[idx[0]] if groups else None, 1.0 / step, float(tr[p]), info,
                                 clock_shifts=mine_shifts))
    return out


def _step(t: np.ndarray, runs: list[tuple[np.ndarray, list]], path: Path) -> float | None:
    """The grid step: the median step between consecutive times in every run."""
    dt = np.concatenate([np.diff(t[rows]) for rows, _ in runs])
    dt = dt[dt > 0]
    if all(len(rows) < 2 for rows, _ in runs):
        return None
    if not dt.size:
        raise InputError(f"{path}: the time column never increases", "check --time-column, or drop it and pass --fs")
    return float(np.median(dt))


def _numeric_column(cells: np.ndarray) -> bool:
    for cell in cells[:50]:
        if _missing(text(cell)):
            continue
        try:
            float(cell)
        except ValueError:
            return False
    return True


def _numeric(cells: np.ndarray, name: str, path: Path) -> np.ndarray:
    """A column as float64: plain decimals by array arithmetic, the rest by numpy's parser; the loop below
    only runs to name a bad cell (missing values become NaN for ``_fill_or_fail``)."""
    try:
        return decimals(cells)
    except ValueError:
        pass
    out = np.empty(len(cells))
    for r, cell in enumerate(cells.tolist()):
        try:
            out[r] = float(cell)
        except ValueError:
            if _missing(text(cell)):
                out[r] = math.nan
                continue
            raise InputError(f"{path}: non-numeric value {text(cell).strip()[:20]!r} at line {r + 2}, "
                             f"column {name!r}",
                             "pick numeric columns with --columns, or name the label with --label-column") from None
    return out


def _run_starts(labels: list[str] | None, groups: list[str] | None, n: int) -> list[int]:
    """Row indices where a new recording starts: the label or the group changes."""
    change = np.zeros(max(n - 1, 0), bool)
    for names in (labels, groups):
        if names is not None:
            a = np.array(names, dtype=object)
            change |= a[1:] != a[:-1]
    return [0, *(np.flatnonzero(change) + 1).tolist()]


def _orient(arr: np.ndarray) -> np.ndarray:
    """[T] or [T, C] float64; a [C, T] array with few rows is transposed."""
    a = np.squeeze(np.asarray(arr, dtype=np.float64))
    if a.ndim == 1:
        return a[:, None]
    return a.T if a.shape[0] < a.shape[1] else a


def pick_arrays(arrays: dict[str, np.ndarray], pattern: str | None, path: Path) -> tuple[np.ndarray, list[str]]:
    """The signal of a .mat/.npz: every array whose name matches ``pattern`` (as channels), else the largest."""
    numeric = {k: v for k, v in arrays.items()
               if isinstance(v, np.ndarray) and v.dtype.kind in "iuf" and v.size > 1 and np.squeeze(v).ndim <= 2}
    if not numeric:
        raise InputError(f"{path}: no numeric array inside", "the file holds no signal to import")
    if pattern:
        glob = pattern if any(ch in pattern for ch in "*?[") else f"*{pattern}*"
        names = sorted(k for k in numeric if fnmatch.fnmatchcase(k.lower(), glob.lower()))
        if not names:
            raise InputError(f"{path}: no array matches --variable {pattern!r}",
                             f"arrays in the file: {', '.join(sorted(numeric))}")
    else:
        names = [max(sorted(numeric), key=lambda k: numeric[k].size)]
    parts = [_orient(numeric[k]) for k in names]
    if len({p.shape[0] for p in parts}) != 1:
        raise InputError(f"{path}: arrays {', '.join(names)} have different lengths",
                         "narrow --variable to arrays of one length")
    channels = [f"{k}[{i}]" if p.shape[1] > 1 else k for k, p in zip(names, parts, strict=True)
                for i in range(p.shape[1])]
    return np.concatenate(parts, axis=1), channels


def _fs_inside(arrays: dict[str, np.ndarray]) -> float | None:
    for k, v in arrays.items():
        if k.lower() in FS_NAMES and isinstance(v, np.ndarray) and v.size == 1 and v.dtype.kind in "iuf":
            fs = float(v.ravel()[0])
            if fs > 0 and math.isfinite(fs):
                return fs
    return None


def _from_arrays(arrays: dict[str, np.ndarray], path: Path, variable: str | None, fill: str | None) -> Recording:
    signal, channels = pick_arrays(arrays, variable, path)
    signal = _fill_or_fail(signal, channels, str(path), fill, lambda r: f"sample {r}")
    return Recording(signal, channels, str(path), fs=_fs_inside(arrays))


def read_mat(path: Path, variable: str | None, fill: str | None) -> list[Recording]:
    """A MATLAB file (CWRU bearing-data style: ``X097_DE_time``, ``X097_FE_time``, ``X097RPM``)."""
    try:
        import scipy.io
    except ModuleNotFoundError as exc:
        raise InputError("reading .mat files needs scipy", "pip install scipy (or the [train] extra)") from exc
    try:
        arrays = scipy.io.loadmat(str(path))
    except NotImplementedError as exc:
        raise InputError(f"{path}: MATLAB v7.3 (HDF5) files are not supported",
                         "re-save it in MATLAB with save(..., '-v7')") from exc
    except Exception as exc:  # noqa: BLE001 - scipy raises many kinds for broken files
        raise InputError(f"cannot read {path} as a MATLAB file: {' '.join(str(exc).split())[:200]}",
                         "the file is truncated or not a .mat file") from exc
    return [_from_arrays({k: v for k, v in arrays.items() if not k.startswith("__")}, path, variable, fill)]


def read_npz(path: Path, variable: str | None, fill: str | None) -> list[Recording]:
    """Raw arrays in an .npz (a signal array, optionally ``fs``)."""
    import zipfile

    from tinyml.data.dataset import check_npz, is_dataset_file
    check_npz(path, "save arrays with numpy.savez, or import the data as CSV")
    if is_dataset_file(path):
        raise InputError(f"{path} is already a tinyml dataset", "use it directly, or `tinyml data info` it")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read {path} as .npz: {' '.join(str(exc).split())[:200]}",
                         "the file is truncated or not an .npz") from exc
    return [_from_arrays(arrays, path, variable, fill)]
