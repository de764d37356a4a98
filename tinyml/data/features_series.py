"""Features that need the windows before this one: a learned daily cycle and rolling statistics, in integers.

Why: a slow fault (a probe drifting a few tenths of a degree per hour) looks like any other afternoon
inside one window. What gives it away is the level against what this time of day usually reads and a
trend that keeps going, which needs state carried from window to window, on the device as in Python.

The ``daily_cycle`` feature entry computes four values per channel, each in the window mean's units
(Q8 of the int16 samples, like ``mean``), from the window mean m and the window's slot of the day
(``slots`` windows per day, slot = round(start time / hop) mod slots, the device counts windows):

  residual   m - profile[slot]: the residual after the daily-cycle fit (0 until the slot has been seen)
  trend      EMA of the residual over 2^trend_shift windows (a drift keeps it growing)
  deviation  m - baseline, the baseline an EMA of m over 2^baseline_shift windows (rolling level)
  scale      EMA of |residual| over 2^scale_shift windows (rolling spread)

(the entry's ``columns`` lists the ones it yields, in this order; default all four),
then the state learns from this window: profile[slot] moves 2^-profile_shift of the way to m (the first
visit sets it), the baseline 2^-baseline_shift. State is Q16 (m << 8); every update is
``x += rshift_round(target - x, shift)`` with ``features_int.rshift_round``, mirrored by
``firmware_templates/common/tinyml_series.c``. Each stream (a group of windows, one device) has its own
state, starting empty at its first window; gaps keep the state (the slot comes from the time).

A run-mode device learns the time from the host's TIME frame and takes each window's start as the moment
its last sample was read minus ``window_span_ms`` (``slot_ending``, mirrored in tinyml_series.c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyml.errors import InputError

NAME = "daily_cycle"
COLUMNS = ("residual", "trend", "deviation", "scale")
# Columns the input guard (tinyml/train/guard.py) leaves unbounded: all four. They follow the weather's day-to-day
# change and the shift's timing, so weeks of history do not bound them (the scale, a 16-hour rolling mean of
# |residual|, about one independent value a day, least of all); the autoencoder and the slope guard judge them. On 105
# synthetic logs their bounds raised 12 of 67 false alarms and found no event the other inputs, the slope guard or
# the autoencoder missed (docs/benchmarks.md, tenth and eleventh rounds).
UNGUARDED = COLUMNS
DAY = 86400.0
DAY_MS = 86_400_000


def emitted(entry: dict) -> list[int]:
    """Indices into COLUMNS of the values a daily_cycle entry yields per channel (its ``columns``, default all)."""
    columns = entry.get("columns")
    return list(range(len(COLUMNS))) if columns is None else [COLUMNS.index(c) for c in columns]


@dataclass(frozen=True)
class Stream:
    """Where each window sits in its stream: start time (s since the epoch: the slot of the day), group (one
    state per group; None: one stream) and order (None: by time; ``detect`` passes file order, which a
    clock reset makes differ)."""
    starts: np.ndarray
    groups: np.ndarray | None = None
    sequence: np.ndarray | None = None
    state: SeriesState | None = None  # carry this state on (one device's run loop) instead of starting afresh

    def take(self, mask: np.ndarray) -> Stream:
        pick = lambda a: None if a is None else np.asarray(a)[mask]  # noqa: E731
        return Stream(np.asarray(self.starts)[mask], pick(self.groups), pick(self.sequence), self.state)


def with_slots(spec: list[dict] | None, hop_s: float) -> list[dict] | None:
    """The spec with each daily_cycle entry's ``slots`` filled in from the data's hop (when not given)."""
    if spec is None:
        return None
    return [e | {"slots": slots_for(hop_s)} if e.get("name") == NAME and e.get("slots") is None else e for e in spec]


def slots_for(hop_s: float) -> int:
    """Windows per day; the hop must divide a day so that a slot is one time of day every day."""
    slots = DAY / hop_s
    if not (math.isfinite(slots) and slots >= 1 and abs(slots - round(slots)) < 1e-6 * slots):
        raise InputError(f"daily_cycle needs a hop that divides a day; {hop_s:g} s gives {slots:g} windows a day",
                         "choose --hop so that 86400 s / (hop / fs) is a whole number")
    return int(round(slots))


def run_hop(spec: list[dict] | None, window: int, fs: float) -> int:
    """Samples between a run-mode device's window starts: for a spec with daily_cycle, the hop its training windows
    were cut with (a day over its ``slots``, at ``fs``), so the device steps its state at training's cadence
    (tinyml_run.c: a shorter hop slides the window, a longer one discards the samples between windows); the
    window (windows back to back) for a stateless spec."""
    entry = next((e for e in spec or [] if e.get("name") == NAME and e.get("slots")), None)
    if entry is None:
        return window
    hop = DAY * fs / int(entry["slots"])
    if not (math.isfinite(hop) and abs(hop - round(hop)) < 1e-6 * max(hop, 1.0) and round(hop) >= 1):
        raise InputError(f"daily_cycle's {int(entry['slots'])} windows a day are {hop:g} samples apart at {fs:g} Hz, "
                         "not a whole number", "train the run at the rate its timestamped dataset was imported at")
    return int(round(hop))


def window_means_q8(q: np.ndarray) -> np.ndarray:
    """Per window and channel, the mean of the int samples in Q8 [N, C] (``features_int``'s ``mean``)."""
    from tinyml.data.features_int import div_round

    q = np.asarray(q, np.int64)
    return div_round(q.sum(axis=1) << 8, q.shape[1])


def stream_slots(starts: np.ndarray, slots: int) -> np.ndarray:
    """The slot of the day of each window start time (seconds since the epoch)."""
    return (np.floor(np.asarray(starts, np.float64) * slots / DAY + 0.5).astype(np.int64)) % slots


def window_span_ms(window: int, fs: float) -> int:
    """From a window's first sample to its last, in whole ms: a device's window started this long before the
    moment its last sample was read."""
    return int(round((window - 1) * 1000.0 / fs))


def slot_ending(end_ms: int, span_ms: int, slots: int) -> int:
    """The slot of the day (``stream_slots``) of a window whose last sample was read ``end_ms`` into the day,
    in integers as the device computes it (tinyml_series.c ``tinyml_series_slot_at``)."""
    start = (end_ms - span_ms) % DAY_MS
    return (2 * start * slots + DAY_MS) // (2 * DAY_MS) % slots


class SeriesState:
    """One stream's state (empty until its first window): what ``series_values`` carries from window to window,
    and the emulated device's run loop too."""

    def __init__(self, entry: dict, channels: int):
        self.shifts = tuple(int(entry[k]) for k in ("profile_shift", "baseline_shift", "trend_shift", "scale_shift"))
        slots = int(entry["slots"])
        self.profile, self.seen = np.zeros((slots, channels), np.int64), np.zeros(slots, bool)
        self.base: np.ndarray | None = None
        self.trend, self.scale = np.zeros(channels, np.int64), np.zeros(channels, np.int64)

    def step(self, m: np.ndarray, s: int) -> np.ndarray:
        """int64 [C, 4] of one window's means ``m`` (Q8) [C] in slot ``s``; then the state learns from it."""
        from tinyml.data.features_int import rshift_round

        ps, bs, ts, ss = self.shifts
        big = m << 8
        if self.base is None:
            self.base = big
        resid = big - self.profile[s] if self.seen[s] else np.zeros_like(big)
        self.trend = self.trend + rshift_round(resid - self.trend, ts)
        self.scale = self.scale + rshift_round(np.abs(resid) - self.scale, ss)
        out = np.stack([rshift_round(resid, 8), rshift_round(self.trend, 8), rshift_round(big - self.base, 8),
                        rshift_round(self.scale, 8)], axis=1)
        self.profile[s] = self.profile[s] + rshift_round(big - self.profile[s], ps) if self.seen[s] else big
        self.seen[s] = True
        self.base = self.base + rshift_round(big - self.base, bs)
        return out


def series_values(means_q8: np.ndarray, slots_of: np.ndarray, streams: np.ndarray, entry: dict,
                  state: SeriesState | None = None) -> np.ndarray:
    """int64 [N, KC] (channel by channel, the entry's K ``emitted`` COLUMNS within each) for windows in time order per stream
    (``streams`` labels them; a new label starts a fresh state). ``state``: the first stream carries it on
    (and leaves it as its last window does)."""
    m = np.asarray(means_q8, np.int64)
    n, c = m.shape
    out = np.zeros((n, c, len(COLUMNS)), np.int64)
    for i in range(n):
        if i and streams[i] != streams[i - 1] or i == 0 and state is None:
            state = SeriesState(entry, c)
        out[i] = state.step(m[i], int(slots_of[i]))
    keep = emitted(entry)
    return out[:, :, keep].reshape(n, c * len(keep))


def stream_features(q: np.ndarray, stream: Stream | None, entry: dict) -> np.ndarray:
    """``series_values`` of int sample windows [N, T, C] in any order: run in stream order, returned in the
    given order."""
    if stream is None or not np.all(np.isfinite(stream.starts)):
        raise InputError("the daily_cycle feature needs each window's time (it keeps state across windows)",
                         "use a dataset imported with --time-column, or drop daily_cycle from the feature spec")
    starts = np.asarray(stream.starts, np.float64)
    groups = np.zeros(len(starts), np.int64) if stream.groups is None else np.asarray(stream.groups)
    order = np.lexsort((starts if stream.sequence is None else np.asarray(stream.sequence), groups))
    values = series_values(window_means_q8(q)[order], stream_slots(starts, int(entry["slots"]))[order],
                           groups[order], entry, stream.state)
    out = np.empty_like(values)
    out[order] = values
    return out
