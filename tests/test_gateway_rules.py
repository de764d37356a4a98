"""Alert rules and drift statistics: pure state machines fed with plain sequences."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tinyml.gateway.drift import DriftConfig, DriftMonitor, ks, psi
from tinyml.gateway.rules import AnomalyKofN, DeviceRules, ErrorRate, RuleConfig, ScoreAbove, Silent


def states(rule_outputs) -> list[tuple[int, bool]]:
    return [(i, t.firing) for i, t in enumerate(rule_outputs) if t is not None]


def test_k_of_n_fires_at_k_and_clears_only_at_clear_k():
    rule = AnomalyKofN(k=3, n=5, clear_k=1)
    seq = [1, 0, 1, 0, 1,  # 3 of 5 -> fire at index 4
           0, 1, 0, 1,     # stays 2-3 of 5: hysteresis keeps it firing (no flapping)
           0, 0, 0]        # drops to 1 of 5 -> clear
    out = [rule.observe(bool(x)) for x in seq]
    assert states(out) == [(4, True), (11, False)]


def test_k_of_n_without_hysteresis_band_would_flap_but_does_not():
    rule = AnomalyKofN(k=3, n=5, clear_k=1)
    # alternating 3/2 anomalies in the window: a naive rule toggles every result
    seq = [1, 1, 1] + [0, 1] * 20
    out = [rule.observe(bool(x)) for x in seq]
    assert states(out) == [(2, True)]


def _transitions(p: float, seconds: float, rate: float = 20.0, seed: int = 0) -> list[tuple[float, bool]]:
    """(time, firing) of every anomaly-rule transition on a stationary stream with anomaly share p."""
    rules = DeviceRules(RuleConfig(silent_seconds=None, error_rate=None))
    rng = random.Random(seed)
    out = []
    for i in range(int(seconds * rate)):
        now = i / rate
        out += [(now, t.firing) for t in rules.on_result(rng.random() < p, 0.0, now)]
    return out


@pytest.mark.parametrize("p", [0.02, 0.1, 0.2, 0.25, 0.3, 0.5, 0.9])
def test_default_anomaly_rule_does_not_flap_on_a_stationary_stream(p):
    """30 minutes at 20 results/s with a steady anomaly share: at most one transition (it fires
    for a high share and then stays), never fire-and-clear."""
    changes = _transitions(p, seconds=1800)
    assert len(changes) <= 1, changes[:6]
    if p >= 0.5:
        assert changes and changes[0][1] and changes[0][0] < 5  # a real anomaly share is still flagged fast


def test_default_anomaly_rule_fires_on_a_burst_and_clears_after_a_calm_hold():
    rules = DeviceRules(RuleConfig(silent_seconds=None, error_rate=None))
    rng = random.Random(3)
    events = []
    for i in range(20 * 120):  # 2 minutes at 20/s: normal, a 20 s burst at 80 %, normal again
        now = i / 20
        p = 0.8 if 30 <= now < 50 else 0.03
        events += [(now, t.firing) for t in rules.on_result(rng.random() < p, 0.0, now)]
    assert [firing for _, firing in events] == [True, False]
    fired, cleared = events[0][0], events[1][0]
    assert 30 < fired < 32
    assert cleared >= 50 + 10  # the window drains, then the calm is held for anomaly_clear_seconds


def test_a_short_lull_keeps_the_alert_open():
    rule = AnomalyKofN(k=2, n=3, clear_k=0, clear_seconds=10)
    assert rule.observe(True, 0) is None
    assert rule.observe(True, 1).firing
    assert all(rule.observe(False, t) is None for t in range(2, 13))  # calm (0 of 3) since t=4: not 10 s yet
    assert rule.observe(True, 13) is None  # one anomaly restarts the calm clock
    assert all(rule.observe(False, t) is None for t in range(14, 26))  # calm again since t=16
    cleared = rule.observe(False, 26)
    assert cleared is not None and not cleared.firing


def test_score_above_needs_duration_and_clears_below_lower_level():
    rule = ScoreAbove(threshold=1.0, clear=0.8, seconds=5)
    t = 0.0
    events = []
    for score in [1.2] * 4 + [0.5] + [1.2] * 7:  # a dip restarts the clock
        events.append(rule.observe(score, t))
        t += 1
    assert states(events) == [(10, True)]
    # 0.9 is below the firing threshold but above the clear level: still firing
    assert all(rule.observe(0.9, t + i) is None for i in range(10))
    t += 10
    cleared = [rule.observe(0.7, t + i) for i in range(7)]
    assert states(cleared) == [(5, False)]


def test_silent_fires_after_quiet_time_once_and_clears_on_next_frame():
    rule = Silent(seconds=30)
    assert rule.tick(100) is None  # never seen: nothing to miss
    rule.seen(100)
    assert rule.tick(129) is None
    fired = rule.tick(131)
    assert fired and fired.firing and fired.value == pytest.approx(31)
    assert rule.tick(200) is None  # no repeat while firing
    cleared = rule.seen(201)
    assert cleared and not cleared.firing


def test_error_rate_waits_for_enough_frames_and_has_hysteresis():
    rule = ErrorRate(rate=0.05, clear_rate=0.01, window=100, min_frames=20)
    assert rule.observe(0, 5) is None  # 5 frames are too few to judge
    fired = rule.observe(15, 0)
    assert fired and fired.firing  # 5 bad of 20
    assert rule.observe(60, 0) is None  # 5 of 80: below 5% but above 1%: still firing
    cleared = rule.observe(420, 0)  # window of 100 now clean
    assert cleared and not cleared.firing


@pytest.mark.parametrize("window", [1, 7, 100])
def test_error_rate_counts_the_bad_frames_of_its_window_whatever_the_reads_bring(window):
    """The share is kept as frames come and go (one call per port read, not a sum over the
    window); reads of more frames than the window holds included. Checked against the window's own
    frames, and the alert against the share recomputed from them."""
    rng = random.Random(window)
    rule = ErrorRate(rate=0.2, clear_rate=0.1, window=window, min_frames=1)
    firing = False
    for _ in range(2000):
        t = rule.observe(rng.randrange(0, 2 * window + 2), rng.choice([0, 0, 1, 2, window + 3]))
        share = sum(rule.frames) / len(rule.frames)
        assert rule.bad == sum(rule.frames)
        if t is not None:
            firing = t.firing
            assert t.value == share and (share > 0.2 if firing else share <= 0.1)
        assert rule.firing == firing


def test_device_rules_use_model_threshold_and_can_be_restored():
    rules = DeviceRules(RuleConfig(score_seconds=0, silent_seconds=None), score_threshold=0.5)
    assert rules.score is not None and rules.score.clear == pytest.approx(0.45)
    assert [t.rule for t in rules.on_result(False, 0.9, 0.0)] == ["score"]
    restored = DeviceRules(RuleConfig(), score_threshold=0.5)
    restored.restore_firing("score")
    assert restored.on_result(False, 0.9, 0.0) == []  # already open in the store: no second alert


@pytest.mark.parametrize("bad", [dict(anomaly_k=60), dict(anomaly_clear_k=30), dict(anomaly_clear_seconds=-1),
                                 dict(error_clear_rate=0.5),
                                 dict(score_threshold=1.0, score_clear=2.0)])
def test_rule_config_refuses_inconsistent_thresholds(bad):
    with pytest.raises(ValueError):
        RuleConfig(**bad)


def test_psi_and_ks_are_zero_for_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 5000)
    same = rng.normal(0, 1, 5000)
    shifted = rng.normal(1.5, 1, 5000)
    assert psi(base, same) < 0.02 and ks(base, same) < 0.05
    assert psi(base, shifted) > 1.0 and ks(base, shifted) > 0.5
    # KS agrees with its definition on a tiny case: CDFs of [0,1] and [1,2] differ by 0.5 at most
    assert ks([0, 1], [1, 2]) == pytest.approx(0.5)


def test_psi_survives_constant_baselines_and_empty_bins():
    assert psi([0.0] * 100, [0.0] * 100) == pytest.approx(0.0)
    assert psi([0.0] * 100, [5.0] * 100) > 1.0


@pytest.mark.parametrize("method", ["psi", "ks"])
def test_drift_monitor_flags_a_shift_and_clears_back(method):
    rng = random.Random(3)
    window = 500 if method == "psi" else 200
    cfg = DriftConfig(method=method, threshold=0.25 if method == "psi" else 0.2, clear=0.1, window=window,
                      baseline_n=1000, every=10)
    mon = DriftMonitor(cfg)
    events = [mon.observe(rng.gauss(0, 1)) for _ in range(2000)]
    assert all(e is None for e in events), "no drift on the baseline's own distribution"
    events = [mon.observe(rng.gauss(1, 1)) for _ in range(window)]
    assert [e.firing for e in events if e] == [True]
    events = [mon.observe(rng.gauss(0, 1)) for _ in range(2 * window)]
    assert [e.firing for e in events if e] == [False]


def test_drift_monitor_uses_a_given_baseline_at_once():
    mon = DriftMonitor(DriftConfig(window=50, every=10), baseline=[0.1, 0.2, 0.3, 0.15, 0.25] * 40)
    events = [mon.observe(5.0) for _ in range(50)]
    assert events[-1] is not None and events[-1].firing


def test_drift_config_rejects_unknown_method():
    with pytest.raises(ValueError, match="psi"):
        DriftConfig(method="chi2")


def test_drift_monitor_value_is_ks_of_its_baseline_and_window_also_after_a_restore():
    rng = random.Random(3)
    monitor = DriftMonitor(DriftConfig(window=50, baseline_n=80, every=10))
    for _ in range(300):
        monitor.observe(rng.random())
        if monitor.value is not None and monitor.since_check == 0:  # just computed
            assert monitor.value == ks(monitor.baseline, list(monitor.recent))
    monitor.baseline = [rng.gauss(2, 1) for _ in range(80)]  # as the writer restores it from the store
    for _ in range(10):
        monitor.observe(rng.random())
    assert monitor.value == ks(monitor.baseline, list(monitor.recent)) > 0.5


def test_an_open_alert_escalates_on_a_score_that_many_times_the_one_it_fired_on():
    rule = AnomalyKofN(k=2, n=3, clear_k=0, escalate=3.0)
    assert rule.observe(True, 0, 0.5) is None
    assert rule.observe(True, 1, 1.0).firing  # fired on 1.0
    assert rule.observe(True, 2, 2.9) is None
    up = rule.observe(True, 3, 3.2)
    assert up is not None and up.firing and "escalated" in up.message
    assert rule.observe(True, 4, 9.0) is None  # the level is now 3.2
    assert rule.observe(True, 5, 9.7).firing
    assert rule.observe(False, 6, 50.0) is None  # a normal result never escalates
    assert [rule.observe(False, t, 0.0) for t in (7, 8)][-1].firing is False
    assert rule.observe(True, 9, 0.3) is None and rule.observe(True, 10, 0.4).firing  # afresh after it cleared
    assert rule.observe(True, 11, 1.1) is None and rule.observe(True, 12, 1.3).firing  # 3 x 0.4


def test_the_escalation_level_follows_a_draining_alert_down():
    rule = AnomalyKofN(k=2, n=3, clear_k=0, escalate=3.0)
    assert rule.observe(True, 0, 20.0) is None and rule.observe(True, 1, 20.0).firing
    assert all(rule.observe(True, t, 20.0 - 2 * t) is None for t in range(2, 8))  # drains to 6.0
    assert rule.observe(True, 8, 17.0) is None  # under 3 x 6.0, though the alert fired on 20
    up = rule.observe(True, 9, 18.5)
    assert up is not None and up.firing and "its lowest since it fired" in up.message


def test_a_level_at_or_below_zero_never_escalates():
    rule = AnomalyKofN(k=2, n=3, clear_k=0, escalate=3.0)
    assert rule.observe(True, 0, 0.0) is None and rule.observe(True, 1, 0.0).firing
    assert all(rule.observe(True, t, float(t)) is None for t in range(2, 6))  # level 0: 3 x 0 is no bar


def test_without_escalate_an_open_alert_never_fires_again():
    rule = AnomalyKofN(k=2, n=3, clear_k=0)
    assert rule.observe(True, 0, 1.0) is None and rule.observe(True, 1, 1.0).firing
    assert all(rule.observe(True, t, 10.0 ** t) is None for t in range(2, 10))


def test_escalate_at_or_below_one_is_refused():
    with pytest.raises(ValueError, match="anomaly_escalate > 1"):
        RuleConfig(anomaly_escalate=1.0)


def test_a_sensor_fault_fires_at_once_counts_towards_k_and_clears_as_any_anomaly():
    rule = AnomalyKofN(k=3, n=5, clear_k=1)
    out = [rule.observe(False), rule.observe(False, fault=True)]
    assert states(out) == [(1, True)] and "sensor fault" in out[1].message
    out += [rule.observe(True), rule.observe(False, fault=True)]  # open: no new firing
    assert states(out) == [(1, True)] and rule.count == 3
    out += [rule.observe(False) for _ in range(4)]  # the faults leave the last 5: cleared
    assert states(out) == [(1, True), (7, False)]


def test_a_sensor_fault_beginning_during_an_alert_of_another_cause_fires_again():
    rule = AnomalyKofN(k=2, n=3, clear_k=0, escalate=3.0)
    out = [rule.observe(True, 0, 1.0), rule.observe(True, 1, 1.0)]  # the rule's alert (a drift, say)
    assert states(out) == [(1, True)] and rule.opened_by == "rule"
    out.append(rule.observe(False, 2, 0.5, fault=True))  # the probe freezes: a fault of its own
    assert states(out) == [(1, True), (2, True)] and "while the alert was open" in out[2].message
    assert rule.opened_by == "sensor_fault"
    out += [rule.observe(False, t, 0.5, fault=True) for t in (3, 4)]  # it stays frozen: the same alert
    out += [rule.observe(False, 5, 0.1), rule.observe(False, 6, 0.5, fault=True)]  # a thaw and a refreeze: too
    assert states(out) == [(1, True), (2, True)]
    out += [rule.observe(False, t, 0.1) for t in range(7, 10)]
    assert states(out) == [(1, True), (2, True), (9, False)] and rule.opened_by is None
    # an escalation's alert is another cause as well
    for t, score in enumerate((1.0, 1.0, 4.0), start=10):
        out.append(rule.observe(True, t, score))
    assert rule.opened_by == "escalation" and rule.observe(True, 13, 1.0, fault=True).firing


def test_a_restored_alert_is_superseded_by_a_fault_s_onset_but_not_by_a_fault_already_going_on():
    rules = DeviceRules(RuleConfig(anomaly_k=2, anomaly_n=3, anomaly_clear_k=0, silent_seconds=None,
                                   error_rate=None))
    rules.restore_firing("anomalies")  # the gateway restarted with an alert open; its cause is not known
    assert rules.on_result(True, 0.5, 0.0, fault=True) == []  # the first result may be a fault that was on
    assert rules.on_result(True, 0.5, 1.0) == []
    [t] = rules.on_result(True, 0.5, 2.0, fault=True)  # a fault after a result that was none: its own alert
    assert t.firing and "sensor fault" in t.message
