"""Features that need the windows before this one: a learned daily cycle and rolling statistics, in integers.

Why: a slow fault (a probe drifting a few tenths of a degree per hour) looks like any other afternoon
inside one window. What gives it away is the level against what this time of day usually reads and a
trend that keeps going, which needs state carried from window to window, on the device as in Python.

The ``daily_cycle`` feature entry yields four columns per channel, each in the window mean's units
(Q8 of the int16 samples, like ``mean``), from the window mean m and the window's slot of the day
(``slots`` windows per day, slot = round(start time / hop) mod slots, the device counts windows):

  residual   m - profile[slot]: the residual after the daily-cycle fit (0 until the slot has been seen)
  trend      EMA of the residual over 2^trend_shift windows (a drift keeps it growing)
  deviation  m - baseline, the baseline an EMA of m over 2^baseline_shift windows (rolling level)
  scale      EMA of |residual| over 2^scale_shift windows (rolling spread)

then the state learns from this window: profile[slot] moves 2^-profile_shift of the way to m (the first
visit sets it), the baseline 2^-baseline_shift. State is Q16 (m << 8); every update is
``x += rshift_round(target - x, shift)`` with ``features_int.rshift_round``, mirrored by
``firmware_templates/common/tinyml_series.c``. Each stream (a group of windows, one device) has its own
state, starting empty at its first window; gaps keep the state (the slot comes from the time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyml.errors import InputError

NAME = "daily_cycle"
COLUMNS = ("residual", "trend", "deviation", "scale")
DAY = 86400.0


@dataclass(frozen=True)
class Stream:
    """Where each window sits in its stream: start time (s since the epoch: the slot of the day), group (one
    state per group; None: one stream) and order (None: by time; ``detect`` passes file order, which a
    clock reset makes differ)."""
    starts: np.ndarray
    groups: np.ndarray | None = None
    sequence: np.ndarray | None = None

    def take(self, mask: np.ndarray) -> Stream:
        pick = lambda a: None if a is None else np.asarray(a)[mask]  # noqa: E731
        return Stream(np.asarray(self.starts)[mask], pick(self.groups), pick(self.sequence))


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


def window_means_q8(q: np.ndarray) -> np.ndarray:
    """Per window and channel, the mean of the int samples in Q8 [N, C] (``features_int``'s ``mean``)."""
    from tinyml.data.features_int import div_round

    q = np.asarray(q, np.int64)
    return div_round(q.sum(axis=1) << 8, q.shape[1])


def stream_slots(starts: np.ndarray, slots: int) -> np.ndarray:
    """The slot of the day of each window start time (seconds since the epoch)."""
    return (np.floor(np.asarray(starts, np.float64) * slots / DAY + 0.5).astype(np.int64)) % slots


def series_values(means_q8: np.ndarray, slots_of: np.ndarray, streams: np.ndarray, entry: dict) -> np.ndarray:
    """int64 [N, 4C] (channel by channel, COLUMNS within each) for windows given in time order per stream
    (``streams`` labels them; a new label starts a fresh state)."""
    from tinyml.data.features_int import rshift_round

    m = np.asarray(means_q8, np.int64)
    n, c = m.shape
    slots = int(entry["slots"])
    out = np.zeros((n, c, len(COLUMNS)), np.int64)
    ps, bs, ts, ss = (int(entry[k]) for k in ("profile_shift", "baseline_shift", "trend_shift", "scale_shift"))
    state = None
    for i in range(n):
        if state is None or streams[i] != streams[i - 1]:
            profile, seen = np.zeros((slots, c), np.int64), np.zeros(slots, bool)
            base, trend, scale = m[i] << 8, np.zeros(c, np.int64), np.zeros(c, np.int64)
            state = True
        s, big = int(slots_of[i]), m[i] << 8
        resid = big - profile[s] if seen[s] else np.zeros(c, np.int64)
        trend = trend + rshift_round(resid - trend, ts)
        scale = scale + rshift_round(np.abs(resid) - scale, ss)
        out[i] = np.stack([rshift_round(resid, 8), rshift_round(trend, 8), rshift_round(big - base, 8),
                           rshift_round(scale, 8)], axis=1)
        profile[s] = profile[s] + rshift_round(big - profile[s], ps) if seen[s] else big
        seen[s] = True
        base = base + rshift_round(big - base, bs)
    return out.reshape(n, c * len(COLUMNS))


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
                           groups[order], entry)
    out = np.empty_like(values)
    out[order] = values
    return out
