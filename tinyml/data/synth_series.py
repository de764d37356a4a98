"""A long machine-temperature log as a logger writes it, with labelled events, gaps and one clock reset.

The project's own test bed for ``tinyml detect`` (issue 17): weeks of 5-minute samples whose normal
behaviour is daily cycles (the ambient's, and one shift a day switching the load on about 07:00 and off
about 17:00, each +-45 min, at 70-100 %), slow weather wander and noise, with four kinds of injected
events and the faults real logs have. Physics as in ``synth.py``'s temperature windows: ambient 18-26
deg C with a 2-5 deg C daily swing, the load heating through a first-order lag (tau 30-90 min, 8-20 deg C
at full load), noise, 0.0625 deg C steps. Events (each labelled from its onset to its end):

- ``drift``: the reading creeps up 0.3-0.6 deg C per hour for 10-16 hours (fouling, a failing probe);
- ``step``: a sudden offset of 3-6 deg C for 2-4 hours (a loose probe, a calibration jump);
- ``runaway``: an accelerating rise (t^2) of 10-20 deg C over 3-5 hours (a bearing or winding failing);
- ``stuck``: the reading freezes for 3-6 hours.

Gaps drop whole hours of rows around the events, never inside one (the target is to find every injected
event, so each is in the log from onset to end; ``detect`` on a user's log reports an event a gap cuts for
what it is); the clock reset (after the quiet days) sets every later time back by
``clock_reset_s`` (the labels follow the logged times, as an operator reading the log would write them: an event
that straddles the reset starts before it and ends after it on the log's clock; the reset is shorter than the
shortest event, 2 hours, so that logged end stays after its logged start).
The first ``quiet_days`` hold no events: the unlabelled history of the same machine a model learns from.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml.data.timestamps import iso

EVENT_KINDS = ("drift", "step", "runaway", "stuck")
EVENT_HOURS = {"drift": (10, 16), "step": (2, 4), "runaway": (3, 5), "stuck": (3, 6)}  # each event's length, drawn
SHORTEST_EVENT_S = 3600.0 * min(lo for lo, _ in EVENT_HOURS.values())
DAY = 86400.0


@dataclass(frozen=True, kw_only=True)
class SeriesOptions:
    days: float = 28.0
    step_s: float = 300.0                 # one sample per 5 minutes
    start: str = "2024-01-01T00:00:00"
    events_per_kind: int = 2              # 0: a normal history
    quiet_days: float = 2.0               # no events before this (the history a model learns "normal" from)
    gaps: int = 3                         # each 2-8 hours of missing rows
    clock_reset_s: float = 0.0            # > 0: once, every later time set back by this much
    seed: int = 0


@dataclass(frozen=True)
class SeriesEvent:
    kind: str
    start: float  # logged time, seconds since the epoch
    end: float


def synth_series(o: SeriesOptions = SeriesOptions()) -> tuple[np.ndarray, np.ndarray, list[SeriesEvent]]:
    """Logged times (s since the epoch, in file order), values (deg C) and the injected events."""
    if not 0 <= o.clock_reset_s < SHORTEST_EVENT_S:
        raise ValueError(f"clock_reset_s {o.clock_reset_s:g}: a reset of the shortest event's length or more would "
                         "log a straddling event's end before its start")
    rng = np.random.default_rng(o.seed)
    n = int(o.days * DAY / o.step_s)
    t = np.datetime64(o.start, "s").astype(np.int64) + np.arange(n) * o.step_s
    temp = _normal(n, o.step_s, rng)
    events = _inject(temp, t, o, rng)
    temp = np.round(temp / 0.0625) * 0.0625
    keep = np.ones(n, bool)
    for _ in range(o.gaps):
        a = int(rng.uniform(0.05, 0.95) * n)
        keep[a:a + int(rng.uniform(2, 8) * 3600 / o.step_s)] = False
    for e in events:  # gaps fall around events, never in them: every injected event is logged whole
        keep[(t >= e.start) & (t < e.end)] = True
    logged = t.astype(np.float64)
    if o.clock_reset_s > 0:  # after the quiet days
        q = int(o.quiet_days * DAY / o.step_s)
        at = q + int(rng.uniform(0.3, 0.7) * (n - q))
        logged[at:] -= o.clock_reset_s
        events = [SeriesEvent(e.kind, e.start - o.clock_reset_s * (e.start >= t[at]),  # each end as it logs
                              e.end - o.clock_reset_s * (e.end >= t[at])) for e in events]
    return logged[keep], temp[keep], events


def _normal(n: int, dt: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) * dt
    amb = rng.uniform(18, 26) + rng.uniform(2, 5) * np.sin(2 * np.pi * (t + rng.uniform(0, DAY)) / DAY)
    amb += np.cumsum(rng.normal(0, 0.5 * np.sqrt(dt / DAY), n))  # weather: about 0.5 deg C a day
    load = np.zeros(n)
    hour = (t / 3600.0) % 24.0
    for day in range(int(np.ceil(n * dt / DAY))):  # one shift a day: on about 07:00, off about 17:00
        on, off = rng.normal(7, 0.75), rng.normal(17, 0.75)
        today = (t >= day * DAY) & (t < (day + 1) * DAY)
        load[today & (hour >= on) & (hour < off)] = rng.uniform(0.7, 1.0)
    tau, rise = rng.uniform(1800, 5400), rng.uniform(8, 20)
    alpha = 1 - np.exp(-dt / tau)
    temp = np.empty(n)
    temp[0] = amb[0] + rise * load[0]
    for k in range(1, n):
        temp[k] = temp[k - 1] + alpha * (amb[k] + rise * load[k] - temp[k - 1])
    return temp + rng.normal(0, rng.uniform(0.05, 0.1), n)


def _inject(temp: np.ndarray, t: np.ndarray, o: SeriesOptions, rng: np.random.Generator) -> list[SeriesEvent]:
    """Events spread evenly (in shuffled kind order) after the quiet days, applied to ``temp`` in place."""
    kinds = [k for k in EVENT_KINDS for _ in range(o.events_per_kind)]
    rng.shuffle(kinds)
    n, out = len(temp), []
    quiet = int(o.quiet_days * DAY / o.step_s)
    slot = (n - quiet) // max(len(kinds), 1)
    for i, kind in enumerate(kinds):
        hours = EVENT_HOURS[kind]
        length = int(rng.uniform(*hours) * 3600 / o.step_s)
        a = quiet + i * slot + int(rng.uniform(0.1, 0.5) * slot)
        b = min(a + length, n)
        ramp = (np.arange(b - a) + 1) * o.step_s / 3600
        if kind == "drift":
            temp[a:b] += rng.uniform(0.3, 0.6) * ramp
        elif kind == "step":
            temp[a:b] += rng.choice([-1, 1]) * rng.uniform(3, 6)
        elif kind == "runaway":
            temp[a:b] += rng.uniform(10, 20) * (ramp / ramp[-1]) ** 2
        else:
            temp[a:b] = temp[a]
        out.append(SeriesEvent(kind, float(t[a]), float(t[b - 1] + o.step_s)))
    return out


def write_series(path: Path, times: np.ndarray, values: np.ndarray) -> Path:
    """``timestamp,value`` rows, times as ``YYYY-MM-DD HH:MM:SS`` (what loggers write)."""
    times, values = np.asarray(times), np.asarray(values)
    stamps = np.datetime_as_string(np.asarray(times, np.int64).astype("datetime64[s]"), unit="s")
    with open(path, "w", newline="") as fh:
        fh.write("timestamp,value\n")
        fh.writelines(f"{s.replace('T', ' ')},{v:.4f}\n" for s, v in zip(stamps, values, strict=True))
    return path


def write_intervals(path: Path, events: list[SeriesEvent]) -> Path:
    """``start,end,label`` rows, the label being the event kind."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["start", "end", "label"])
        w.writerows([iso(e.start), iso(e.end), e.kind] for e in events)
    return path
