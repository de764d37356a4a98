"""Alarms judged as an operator judges them: per labelled event, not per window.

Detected events with their lead time (the interval's end minus the first alarm inside it; negative for an alarm
raised late by a window still holding the event's samples), missed events, false alarms per day (alarms that start
in no interval and are no late detection) and a NAB-style score with NAB's standard profile:
an alarm at relative position y in an interval (-1 at its start, 0 at its end) earns
A_TP * sigma(y), sigma(y) = 2 / (1 + e^(5y)) - 1, only the first alarm per interval counts; a missed
interval costs A_FN; a false alarm costs A_FP * sigma(y) measured from the end of the interval before it
(the full A_FP when none precedes it). The raw score is normalised as NAB does: 0 for a detector that
never fires, 100 for one that fires at the start of every interval and nowhere else.
"""

from __future__ import annotations

import math

import numpy as np

STANDARD_PROFILE = {"tp": 1.0, "fp": 0.11, "fn": 1.0}


def scaled_sigmoid(y: float) -> float:
    return 2.0 / (1.0 + math.exp(min(5.0 * y, 700.0))) - 1.0


def score_events(alarms: np.ndarray, intervals: list[tuple[float, float]], *, span_seconds: float,
                 late_s: float = 0.0, covered: list[tuple[float, float]] | None = None,
                 profile: dict[str, float] = STANDARD_PROFILE) -> dict:
    """Scores of alarm start times against labelled (start, end) intervals over ``span_seconds`` of data.

    ``late_s`` (the model's window, for ``detect``): an alarm up to that long after an interval's end was raised
    by a window that still holds the event's samples, so it detects the event late (a negative lead time) and is no
    false alarm. The NAB score keeps NAB's own rule (such an alarm is a false positive just after the window).
    ``covered`` (the stretches some window holds samples of): an interval no window holds a sample of lies in a gap
    of the data; no detector could see it, so it is listed apart (``unobserved``) and not scored. A missed interval
    the data holds only part of is still missed; ``held_s`` says how much of its ``length_s`` some window holds."""
    alarms = np.sort(np.asarray(alarms, dtype=np.float64))
    intervals = sorted(intervals)
    unobserved = [] if covered is None else [
        (s, e) for s, e in intervals if not any(a < e and b > s for a, b in covered)]
    intervals = [iv for iv in intervals if iv not in unobserved]
    detected, missed = [], []
    raw = 0.0
    inside = np.zeros(len(alarms), bool)
    theirs = np.zeros(len(alarms), bool)  # inside, or late for an interval
    for start, end in intervals:
        hits = (alarms >= start) & (alarms <= end)
        late = (alarms > end) & (alarms <= end + late_s)
        inside |= hits
        theirs |= hits | late
        if (hits | late).any():
            first = float(alarms[hits | late][0])
            detected.append({"start": start, "end": end, "alarm": first, "lead_s": end - first,
                             "late": not hits.any()})
        else:
            missed.append({"start": start, "end": end,
                           **({} if covered is None else {"held_s": held_seconds(start, end, covered),
                                                          "length_s": end - start})})
        if hits.any():  # NAB: only an alarm inside the window counts
            raw += profile["tp"] * scaled_sigmoid((float(alarms[hits][0]) - end) / (end - start))
        else:
            raw -= profile["fn"]
    for t in alarms[~inside]:
        before = [(s, e) for s, e in intervals if e < t]
        if before:
            s, e = before[-1]
            raw += profile["fp"] * scaled_sigmoid((t - e) / (e - s))
        else:
            raw -= profile["fp"]
    false_alarms = alarms[~theirs]
    perfect = profile["tp"] * scaled_sigmoid(-1.0) * len(intervals)
    null = -profile["fn"] * len(intervals)
    days = span_seconds / 86400.0
    return {"events": len(intervals), "detected": detected, "missed": missed,
            "unobserved": [{"start": s, "end": e} for s, e in unobserved],
            "late": sum(d["late"] for d in detected), "false_alarms": int(false_alarms.size),
            "false_alarms_per_day": float(false_alarms.size / days) if days > 0 else None,
            "nab_raw": raw, "nab_score": 100.0 * (raw - null) / (perfect - null) if intervals else None,
            "profile": "standard", "weights": dict(profile)}


def held_seconds(start: float, end: float, covered: list[tuple[float, float]]) -> float:
    """Seconds of (start, end) that the ``covered`` stretches (disjoint) hold."""
    return float(sum(max(0.0, min(b, end) - max(a, start)) for a, b in covered))
