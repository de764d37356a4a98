"""The anomaly threshold for a target false-alarm rate per day, chosen on validation data.

Why not a percentile of window scores: an operator lives with alarms, not windows. Windows overlap, and
the gateway's k-of-n rule (``tinyml.gateway.rules.AnomalyKofN``, also what ``tinyml detect`` runs) turns
a run of anomalous windows into one alarm, so the same window false-positive rate can mean one alarm a
week or ten a day. Two estimates, the higher one kept:

- counted: the validation windows replayed in time order through that rule for each candidate
  threshold; the lowest threshold for which no higher candidate raises more alarms than the rate allows
  over the validation span. Exact, but a few days of validation cannot tell one alarm a week from none.
- extrapolated: each alarm needs k anomalous windows, so at most ``rate * k`` windows a day may exceed
  the threshold; the score for that exceedance probability comes from a Pareto tail (exponential in log
  score) fitted to the top ``TAIL`` of validation scores, which reaches below one window in the span.
  The tail's slope is taken at its upper ``CONFIDENCE`` bound, not its estimate: a week of validation
  leaves some 40 scores in the tail, whose slope is then uncertain by about 15 %, and the threshold lies
  three or more slopes beyond them, so a fit on the low side alone can mean several times the asked rate
  (on 48 synthetic machine logs, up to 5 alarms in 4 weeks at 0.1 a day; docs/benchmarks.md, issue 17).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinyml.errors import InputError

MAX_CANDIDATES = 400  # thresholds tried: the validation scores' quantiles
TAIL = 0.1            # the share of validation scores the tail is fitted to
CONFIDENCE = 0.9      # one-sided: the tail's slope is at most the one used, with this probability


@dataclass(frozen=True, kw_only=True)
class AlarmRule:
    k: int = 2        # fire when k of the last n windows are anomalous ...
    n: int = 3
    clear_k: int = 0  # ... clear when clear_k or fewer are
    escalate: float | None = 3.0  # an open alarm fires anew on a score this many times its lowest since it fired


def alarm_count(scores: np.ndarray, threshold: float, streams: np.ndarray, rule: AlarmRule) -> int:
    """How many times the rule fires (escalations too) over windows in time order (afresh in each stream)."""
    from tinyml.gateway.rules import AnomalyKofN

    fired, state = 0, None
    for i, score in enumerate(scores):
        if i == 0 or streams[i] != streams[i - 1]:
            state = AnomalyKofN(rule.k, rule.n, rule.clear_k, escalate=rule.escalate)
        change = state.observe(bool(score > threshold), float(i), float(score))
        fired += change is not None and change.firing
    return fired


def streams_of(starts: np.ndarray, groups: np.ndarray, hop_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Window order by (group, start time) and a stream id per ordered window: a new stream at a new group
    or where consecutive windows are more than one hop apart (a gap, a split boundary)."""
    order = np.lexsort((starts, groups))
    s, g = starts[order], groups[order]
    new = np.concatenate([[True], (g[1:] != g[:-1]) | (np.diff(s) > 1.5 * hop_s)])
    return order, np.cumsum(new)


def threshold_for_rate(scores: np.ndarray, starts: np.ndarray, groups: np.ndarray, *, hop_s: float,
                       per_day: float, rule: AlarmRule = AlarmRule()) -> tuple[float, dict]:
    """The threshold and what it was chosen on (validation days, alarms allowed and raised, the rule)."""
    if not np.all(np.isfinite(starts)):
        raise InputError("--false-alarms-per-day needs window times: some validation windows have none",
                         "import every file with --time-column")
    order, streams = streams_of(starts, groups, hop_s)
    ordered = np.asarray(scores, np.float64)[order]
    days = len(ordered) * hop_s / 86400.0
    allowed = int(np.floor(per_day * days + 1e-9))
    candidates = np.unique(np.quantile(ordered, np.linspace(0, 1, MAX_CANDIDATES)))
    counts = np.array([alarm_count(ordered, c, streams, rule) for c in candidates])
    too_many = np.flatnonzero(counts > allowed)
    counted = float(candidates[too_many[-1] + 1] if too_many.size else candidates[0])  # the top never fires
    tail = tail_threshold(ordered, per_window=per_day * rule.k * hop_s / 86400.0)
    pick = max(counted, tail)
    return pick, {"false_alarms_per_day": per_day, "validation_days": round(days, 3),
                  "alarms_allowed": allowed, "alarms_on_validation": alarm_count(ordered, pick, streams, rule),
                  "counted_threshold": counted, "tail_threshold": tail, "tail_confidence": CONFIDENCE,
                  "rule": asdict(rule)}


def tail_threshold(scores: np.ndarray, *, per_window: float, confidence: float = CONFIDENCE) -> float:
    """The score exceeded with probability at most ``per_window``: the empirical quantile down to the tail,
    beyond it a Pareto tail fitted to the top TAIL of the scores (log score above its TAIL quantile:
    exponential), its slope at the upper ``confidence`` bound (``confidence`` 0.5: about the estimate)."""
    s = np.log(np.maximum(np.asarray(scores, np.float64), 1e-30))
    if per_window >= TAIL or s.size < 20:
        return float(np.exp(np.quantile(s, 1.0 - min(per_window, 1.0))))
    u = float(np.quantile(s, 1.0 - TAIL))
    top = s[s > u] - u
    beta = float(np.mean(top)) * slope_bound(top.size, confidence) if top.size else 0.0
    return float(np.exp(u + beta * np.log(TAIL / per_window)))


def slope_bound(m: int, confidence: float) -> float:
    """The factor from the mean of ``m`` exponential excesses to the upper one-sided ``confidence`` bound on
    their scale: 2 m mean / scale is chi-squared with 2 m degrees of freedom."""
    from scipy.stats import chi2

    return float(2 * m / chi2.ppf(1.0 - confidence, 2 * m))
