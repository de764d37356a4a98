"""Alert rules as small state machines with hysteresis, so alerts do not flap.

Every rule fires on one condition and clears only on a stricter opposite condition
(a lower count, a lower score, a lower error rate, held for a while). Rules are pure:
they see observations and the time they are given, never the clock or the store, so
they are tested with plain sequences.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Transition:
    """A rule changed state: fired (``firing`` True) or cleared (False)."""

    rule: str
    firing: bool
    value: float
    message: str


@dataclass(frozen=True, kw_only=True)
class RuleConfig:
    """Thresholds of the alert rules (gateway.toml ``[rules]``). ``None`` turns a rule off."""

    # Fire at 40 % anomalies, clear at 10 % held for 10 s: over 50 results the count's noise is at
    # most 3.5, so the 15-result gap leaves a stationary stream one side or the other, never both,
    # and a device streaming 20 results/s with a steady anomaly share does not flap.
    anomaly_k: int = 20
    anomaly_n: int = 50
    anomaly_clear_k: int = 5
    anomaly_clear_seconds: float = 10.0
    anomaly_escalate: float | None = None  # an open alert fires again on a score this many times its lowest
    score_threshold: float | None = None
    score_clear: float | None = None
    score_seconds: float = 10.0
    silent_seconds: float | None = 30.0
    error_rate: float | None = 0.05
    error_clear_rate: float = 0.01
    error_window: int = 200
    error_min_frames: int = 20

    def __post_init__(self) -> None:
        if not 0 < self.anomaly_k <= self.anomaly_n:
            raise ValueError("need 0 < anomaly_k <= anomaly_n")
        if not 0 <= self.anomaly_clear_k < self.anomaly_k:
            raise ValueError("need 0 <= anomaly_clear_k < anomaly_k")
        if self.anomaly_clear_seconds < 0:
            raise ValueError("need anomaly_clear_seconds >= 0")
        if self.anomaly_escalate is not None and not self.anomaly_escalate > 1:
            raise ValueError("need anomaly_escalate > 1")
        if self.score_clear is not None and self.score_threshold is not None \
                and self.score_clear > self.score_threshold:
            raise ValueError("need score_clear <= score_threshold")
        if self.error_rate is not None and not 0 <= self.error_clear_rate < self.error_rate:
            raise ValueError("need 0 <= error_clear_rate < error_rate")


SENSOR_FAULT = "the device reports a sensor fault (a frozen reading)"  # the alert message


class AnomalyKofN:
    """Fires when at least k of the last n results are anomalies; clears when clear_k or fewer
    have been for ``clear_seconds`` (a lull shorter than that keeps the alert open).

    With ``escalate`` (a factor above 1), an open alert fires again when a result's score exceeds
    ``escalate`` times its level: the lowest anomalous score since it last fired (at first the score it fired
    on; a level at or below 0 never escalates). A second fault that begins while the first alert is still open (a runaway after a drift, a drift while
    a slope alarm drains) is a new alert, not hidden behind the open one. The rule's caller supersedes the open
    alert with the new one.

    A result the device labels a sensor fault (``fault``: its stuck guard fired, docs/protocol.md) fires at once,
    without waiting for k: a frozen reading is no statistical judgement to confirm, and one window may be all a
    device sends of it before it goes quiet. It counts as an anomaly towards k and the clearing as any other. Its
    onset (a fault after a result that was none) while an alert of another cause is open fires again, as an
    escalation does: a probe that freezes during a long drift alarm is a fault of its own, for someone to fix, not
    more of the drift. ``opened_by`` says what fired the open alert: "rule" (k of n), "sensor_fault",
    "escalation", or None when the alert was restored from the store (its cause not known: a fault's onset
    supersedes it, but not the first result after the restore, which may be a fault that was already going on)."""

    name = "anomalies"

    def __init__(self, k: int, n: int, clear_k: int, clear_seconds: float = 0.0, escalate: float | None = None):
        self.k, self.clear_k, self.clear_seconds, self.escalate = k, clear_k, clear_seconds, escalate
        self.window: deque[bool] = deque(maxlen=n)
        self.count = 0
        self.calm_since: float | None = None
        self.firing = False
        self.level: float | None = None  # the lowest anomalous score since it last fired (None: not known)
        self.opened_by: str | None = None  # what fired the open alert (None: not firing, or restored)
        self.faulted: bool | None = False  # whether the last result was a sensor fault (None: not known)

    def restore(self) -> None:
        """An alert of this rule is open in the store (the gateway restarted): fire no second one for it."""
        self.firing, self.opened_by, self.faulted = True, None, None

    def observe(self, anomalous: bool, now: float = 0.0, score: float | None = None, *,
                fault: bool = False) -> Transition | None:
        anomalous = anomalous or fault
        window = self.window
        if len(window) == window.maxlen:
            self.count -= window[0]
        window.append(anomalous)
        self.count += anomalous
        count, n = self.count, window.maxlen
        onset, self.faulted = fault and self.faulted is False, fault
        if not self.firing:
            if count >= self.k or fault:
                self.firing, self.calm_since, self.level = True, None, score
                self.opened_by = "rule" if count >= self.k else "sensor_fault"
                return Transition(self.name, True, count, SENSOR_FAULT if count < self.k
                                  else f"{count} of the last {n} results are anomalies")
            return None
        if onset and self.opened_by != "sensor_fault":
            self.opened_by, self.level, self.calm_since = "sensor_fault", score, None
            return Transition(self.name, True, count, f"{SENSOR_FAULT} while the alert was open")
        if self.escalate is not None and score is not None and anomalous:
            if self.level is not None and self.level > 0 and score > self.escalate * self.level:
                level, self.level, self.calm_since, self.opened_by = self.level, score, None, "escalation"
                return Transition(self.name, True, count, f"escalated: score {score:.4g} is more than "
                                  f"{self.escalate:g} times {level:.4g}, its lowest since it fired")
            self.level = score if self.level is None else min(self.level, score)
        if count > self.clear_k:
            self.calm_since = None
            return None
        if self.calm_since is None:
            self.calm_since = now
        if now - self.calm_since < self.clear_seconds:
            return None
        self.firing, self.calm_since, self.level, self.opened_by = False, None, None, None
        return Transition(self.name, False, count, f"{count} of the last {n} results are anomalies")


class ScoreAbove:
    """Fires when the score stays above a threshold for t seconds; clears when it stays
    at or below the (lower) clear level for t seconds."""

    name = "score"

    def __init__(self, threshold: float, clear: float, seconds: float):
        self.threshold, self.clear, self.seconds = threshold, clear, seconds
        self.since: float | None = None  # start of the current run towards a state change
        self.firing = False

    def observe(self, score: float, now: float) -> Transition | None:
        towards_change = score <= self.clear if self.firing else score > self.threshold
        if not towards_change:
            self.since = None
            return None
        if self.since is None:
            self.since = now
        if now - self.since < self.seconds:
            return None
        self.since = None
        self.firing = not self.firing
        level = f"above {self.threshold:g}" if self.firing else f"at or below {self.clear:g}"
        return Transition(self.name, self.firing, score, f"score {level} for {self.seconds:g} s")


class Silent:
    """Fires when a device has sent nothing for t seconds; clears on its next frame."""

    name = "silent"

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.last_seen: float | None = None
        self.firing = False

    def seen(self, now: float) -> Transition | None:
        self.last_seen = now
        if self.firing:
            self.firing = False
            return Transition(self.name, False, 0.0, "device is sending again")
        return None

    def tick(self, now: float) -> Transition | None:
        if self.firing or self.last_seen is None:
            return None
        quiet = now - self.last_seen
        if quiet >= self.seconds:
            self.firing = True
            return Transition(self.name, True, quiet, f"no frame for {quiet:.0f} s")
        return None


class ErrorRate:
    """Fires when the share of bad frames among the last frames exceeds a rate; clears
    when it falls to the (lower) clear rate. Judged only once enough frames were seen."""

    name = "errors"

    def __init__(self, rate: float, clear_rate: float, window: int, min_frames: int):
        self.rate, self.clear_rate, self.min_frames = rate, clear_rate, min_frames
        self.frames: deque[bool] = deque(maxlen=window)  # True = bad
        self.bad = 0  # bad frames in ``frames``, kept as they come and go (called once per port read)
        self.firing = False

    def observe(self, good: int, bad: int) -> Transition | None:
        frames = self.frames
        leaving = len(frames) + good + bad - (frames.maxlen or 0)
        if leaving > 0:  # the oldest frames make room (all of them when more come than the window holds)
            self.bad -= sum(itertools.islice(frames, leaving))
        frames.extend([False] * good + [True] * bad)
        self.bad += min(bad, len(frames))  # the bad ones come last, so they are what stays of the new
        if len(frames) < self.min_frames:
            return None
        share = self.bad / len(frames)
        if not self.firing and share > self.rate:
            self.firing = True
            return Transition(self.name, True, share, f"{share:.1%} of recent frames are bad")
        if self.firing and share <= self.clear_rate:
            self.firing = False
            return Transition(self.name, False, share, f"{share:.1%} of recent frames are bad")
        return None


class DeviceRules:
    """All alert rules of one device, built from one RuleConfig."""

    def __init__(self, config: RuleConfig, score_threshold: float | None = None):
        self.anomalies = AnomalyKofN(config.anomaly_k, config.anomaly_n, config.anomaly_clear_k,
                                     config.anomaly_clear_seconds, config.anomaly_escalate)
        threshold = config.score_threshold if config.score_threshold is not None else score_threshold
        self.score = None if threshold is None else ScoreAbove(
            threshold, config.score_clear if config.score_clear is not None else 0.9 * threshold,
            config.score_seconds)
        self.silent = None if config.silent_seconds is None else Silent(config.silent_seconds)
        self.errors = None if config.error_rate is None else ErrorRate(
            config.error_rate, config.error_clear_rate, config.error_window, config.error_min_frames)

    def restore_firing(self, rule: str) -> None:
        """Mark a rule as firing (an alert still open in the store), so it is not fired twice."""
        if rule == self.anomalies.name:
            self.anomalies.restore()
        for r in (self.score, self.silent, self.errors):
            if r is not None and r.name == rule:
                r.firing = True

    def on_result(self, anomalous: bool | None, score: float, now: float, *, fault: bool = False) -> list[Transition]:
        """``fault``: the device labelled the result a sensor fault (``AnomalyKofN`` fires at once)."""
        out = [self.silent.seen(now) if self.silent else None]
        if anomalous is not None:
            out.append(self.anomalies.observe(anomalous, now, score, fault=fault))
        if self.score is not None:
            out.append(self.score.observe(score, now))
        return [t for t in out if t is not None]

    def on_frames(self, good: int, bad: int, now: float) -> list[Transition]:
        out = [self.silent.seen(now) if self.silent and (good or bad) else None,
               self.errors.observe(good, bad) if self.errors else None]
        return [t for t in out if t is not None]

    def on_tick(self, now: float) -> list[Transition]:
        t = self.silent.tick(now) if self.silent else None
        return [t] if t else []
