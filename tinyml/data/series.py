"""A timestamped series made regular: clock faults found and handled, gaps split, samples put on a grid.

Rules (each stated in docs/series.md):
- A duplicated time (equal to the one before) or a backwards time (earlier than the latest so far) is a
  clock fault. By default a file with one is refused, naming the lines; ``drop`` keeps only rows later than
  every row before them, ``sort`` orders the rows by time (stable) and keeps the first of equal times,
  ``split`` starts a new recording at each fault (a logger whose clock was reset), ``continue`` keeps the
  rows in file order and moves every time from a fault on later, so that the fault's row follows the row
  before it by one grid step (a clock set back while the logger kept sampling: the time of day the data
  follows goes on; each later time is recorded with the seconds added, to report events on the log's clock).
- The grid step is the median step between consecutive times. A step longer than ``max_gap`` (default
  2.5 grid steps) is a gap: the recording ends before it and a new one starts after it, so no window spans it.
- Inside a recording, samples off the grid are interpolated onto it (``linear`` or ``previous``, i.e.
  sample-and-hold); an already regular series is kept exactly as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyml.errors import InputError

ON_BACKWARDS = ("refuse", "drop", "sort", "split", "continue")
RESAMPLE_METHODS = ("linear", "previous")
DEFAULT_MAX_GAP_STEPS = 2.5
SHOWN = 5  # faults named in one error line


@dataclass(frozen=True)
class ClockFault:
    line: int
    kind: str       # "duplicate" or "backwards"
    seconds: float  # how far back (0 for a duplicate)


@dataclass(frozen=True, kw_only=True)
class TimeOptions:
    """How ``--time-column`` values are read and made regular (see the module docstring)."""
    time_format: str | None = None
    on_backwards: str = "refuse"
    max_gap: float | None = None      # seconds; default DEFAULT_MAX_GAP_STEPS grid steps
    resample: str = "linear"


def clock_faults(t: np.ndarray, first_line: int) -> list[ClockFault]:
    """Each row whose time is not later than the row before it (where the clock stood still or jumped back)."""
    step = np.diff(t)
    return [ClockFault(first_line + int(i) + 1, "duplicate" if step[i] == 0 else "backwards", float(-step[i]))
            for i in np.flatnonzero(step <= 0)]


def describe_faults(faults: list[ClockFault]) -> str:
    parts = [f"{f.kind} at line {f.line}" + (f" ({f.seconds:g} s back)" if f.kind == "backwards" else "")
             for f in faults[:SHOWN]]
    return ", ".join(parts) + (f" and {len(faults) - SHOWN} more" if len(faults) > SHOWN else "")


def order(t: np.ndarray, faults: list[ClockFault], *, on_backwards: str, where: str) -> tuple[np.ndarray, list[int]]:
    """Row indices to keep, in time order, and the row indices where ``split`` starts new recordings."""
    rows = np.arange(len(t))
    if not faults:
        return rows, []
    if on_backwards == "refuse":
        raise InputError(f"{where}: {len(faults)} clock fault(s): {describe_faults(faults)}",
                         "fix the logger's clock, or pass --on-backwards drop|sort|split|continue")
    if on_backwards == "drop":
        latest = np.concatenate([[-np.inf], np.maximum.accumulate(t)[:-1]])
        return rows[t > latest], []
    if on_backwards == "sort":
        idx = np.argsort(t, kind="stable")
        keep = np.concatenate([[True], np.diff(t[idx]) > 0])
        return idx[keep], []
    if on_backwards == "continue":
        return rows, []
    return rows, [int(i) for i in np.flatnonzero(np.diff(t) <= 0) + 1]


def retime(t: np.ndarray, rows: np.ndarray, fault_rows: list[int], *, step: float) -> list[tuple[float, float]]:
    """``continue``: ``t[rows]`` moved in place so that each fault's row (``fault_rows``, file row indices in
    ``rows``, ascending) follows the row before it by ``step``; per fault its new time and the seconds added
    from there on in total (``logged`` takes them back)."""
    shifts, total = [], 0.0
    for r in fault_rows:
        j = int(np.searchsorted(rows, r))
        add = float(t[rows[j - 1]] + step - t[r])
        t[rows[j:]] += add
        total += add
        shifts.append((float(t[r]), total))
    return shifts


def logged(times: np.ndarray, shifts: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Times re-timed by ``retime`` back on the logger's clock (unchanged without shifts)."""
    times = np.asarray(times, np.float64)
    if not shifts:
        return times
    starts, added = np.array([0.0, *(s for s, _ in shifts)]), np.array([0.0, *(a for _, a in shifts)])
    starts[0] = -np.inf
    return times - added[np.searchsorted(starts, times, side="right") - 1]


def on_data_clock(start: float, end: float, shifts: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """A labelled (start, end) on the log's clock moved onto the one ``retime`` made. A clock set back logs some times
    twice; an interval is then read as the widest it can mean: its start the earliest time that logs as it, its end the
    latest. Why: an operator labels what the log shows, and an alarm on either side of the reset may be the event's."""
    if not shifts:
        return start, end
    lo = np.array([-np.inf, *(s for s, _ in shifts)])
    hi = np.array([*(s for s, _ in shifts), np.inf])
    added = np.array([0.0, *(a for _, a in shifts)])
    starts, ends = start + added, end + added
    return (float(starts[(starts >= lo) & (starts <= hi)].min()), float(ends[(ends >= lo) & (ends <= hi)].max()))


def gaps(t: np.ndarray, max_gap: float) -> np.ndarray:
    """Indices i where the step t[i] - t[i-1] is longer than ``max_gap``."""
    return np.flatnonzero(np.diff(t) > max_gap) + 1


def to_grid(t: np.ndarray, values: np.ndarray, *, step: float, method: str) -> tuple[np.ndarray, bool]:
    """``values`` sampled at ``t`` on the grid t[0] + k*step, and whether anything had to move."""
    n = int(np.floor((t[-1] - t[0]) / step + 1e-6)) + 1
    if n == len(t) and np.allclose(np.diff(t), step, rtol=1e-6, atol=0):
        return values, False
    grid = t[0] + np.arange(n) * step
    if method == "previous":
        idx = np.clip(np.searchsorted(t, grid + step * 1e-6, side="right") - 1, 0, len(t) - 1)
        return values[idx], True
    return np.stack([np.interp(grid, t, values[:, c]) for c in range(values.shape[1])], axis=1), True
