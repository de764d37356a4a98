"""`tinyml detect` over a long timestamped series, event-level scores, and predict's window times."""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.train.event_scores import score_events

START = dt.datetime(2014, 1, 1)


def sig(y: float) -> float:
    return 2 / (1 + math.exp(5 * y)) - 1


def test_event_scores_follow_the_nab_standard_profile():
    intervals = [(0.0, 100.0), (200.0, 300.0), (1000.0, 1100.0)]
    s = score_events([10.0, 50.0, 250.0, 500.0, 2000.0], intervals, span_seconds=2 * 86400)
    assert [d["lead_s"] for d in s["detected"]] == [90.0, 50.0]  # the first alarm per interval counts
    assert s["missed"] == [{"start": 1000.0, "end": 1100.0}]
    assert s["false_alarms"] == 2 and s["false_alarms_per_day"] == 1.0
    raw = sig(-0.9) + sig(-0.5) - 1.0 + 0.11 * sig(2.0) + 0.11 * sig(9.0)
    assert s["nab_raw"] == pytest.approx(raw)
    null, perfect = -3.0, 3 * sig(-1.0)
    assert s["nab_score"] == pytest.approx(100 * (raw - null) / (perfect - null))
    assert score_events([0.0, 200.0, 1000.0], intervals, span_seconds=86400)["nab_score"] == pytest.approx(100.0)
    assert score_events([], intervals, span_seconds=86400)["nab_score"] == pytest.approx(0.0)
    early_fp = score_events([-50.0], intervals, span_seconds=86400)
    assert early_fp["nab_raw"] == pytest.approx(-3.0 - 0.11)  # no interval before it: the full A_FP


def test_an_alarm_raised_by_a_window_that_holds_the_event_is_late_not_false():
    intervals = [(0.0, 100.0), (1000.0, 1100.0)]
    s = score_events([150.0, 1200.0], intervals, span_seconds=86400, late_s=60.0)
    assert s["detected"] == [{"start": 0.0, "end": 100.0, "alarm": 150.0, "lead_s": -50.0, "late": True}]
    assert s["missed"] == [{"start": 1000.0, "end": 1100.0}] and s["late"] == 1
    assert s["false_alarms"] == 1  # 1200 is beyond 1100 + 60
    # NAB keeps its own rule: the late alarm is a false positive just after the window, the event missed
    assert s["nab_raw"] == score_events([150.0, 1200.0], intervals, span_seconds=86400)["nab_raw"]
    inside = score_events([50.0, 150.0], intervals, span_seconds=86400, late_s=60.0)
    assert inside["detected"][0]["alarm"] == 50.0 and not inside["detected"][0]["late"] and inside["false_alarms"] == 0


def test_an_event_no_window_holds_a_sample_of_is_listed_apart():
    from tinyml.train.detect import covered_spans

    covered = covered_spans(np.array([200.0, 100.0, 150.0, 1000.0]), 100.0)
    assert covered == [(0.0, 200.0), (900.0, 1000.0)]
    s = score_events([50.0], [(20.0, 60.0), (300.0, 400.0), (850.0, 901.0)], span_seconds=86400, covered=covered)
    assert s["events"] == 2 and len(s["detected"]) == 1
    assert s["missed"] == [{"start": 850.0, "end": 901.0, "held_s": 1.0, "length_s": 51.0}]  # the data holds 1 s
    assert s["unobserved"] == [{"start": 300.0, "end": 400.0}]
    assert s["nab_score"] == score_events([50.0], [(20.0, 60.0), (850.0, 901.0)], span_seconds=86400)["nab_score"]


def test_labels_across_a_clock_set_back_are_judged_on_the_data_clock():
    """Seed 76 of the benchmark: a probe froze 15 minutes before the logger's clock was set back an hour, and the
    window that flagged it was read after the reset, so on the log's clock the alarm precedes the labelled start."""
    from tinyml.data.series import on_data_clock
    from tinyml.data.timestamps import iso
    from tinyml.train.detect import Event, events_csv, score_alarms

    shifts = ((10_000.0, 3600.0),)  # from data time 10,000 on, the log reads an hour less
    assert on_data_clock(1000.0, 2000.0, shifts) == (1000.0, 2000.0)
    assert on_data_clock(20_000.0, 21_000.0, shifts) == (23_600.0, 24_600.0)
    assert on_data_clock(7000.0, 8000.0, shifts) == (7000.0, 11_600.0)  # logged twice: read as the widest
    assert on_data_clock(7000.0, 8000.0, ()) == (7000.0, 8000.0)
    label = (9100.0, 16_300.0)  # frozen from data time 9,100 for three hours: its end logs at 19,900 - 3,600
    assert on_data_clock(*label, shifts) == (9100.0, 19_900.0)
    alarm = Event(10_300.0, 12_000.0, 5.0, 3, "sensor_fault")  # logged at 6,700
    summary = {"clock_shifts": shifts, "span_seconds": 86400.0, "window_s": 7200.0, "covered": [(0.0, 30_000.0)]}
    s = score_alarms([alarm], [label], summary)
    assert s["false_alarms"] == 0 and s["detected"] == [
        {"start": 9100.0, "end": 16_300.0, "alarm": 6700.0, "lead_s": 19_900.0 - 10_300.0, "late": False}]
    on_log = score_events([6700.0], [label], span_seconds=86400.0, late_s=7200.0)
    assert on_log["false_alarms"] == 1 and on_log["missed"]  # what judging on the log's clock made of it
    row = events_csv([alarm], shifts).decode().splitlines()[1].split(",")
    assert row[1:4] == [iso(6700.0), iso(8400.0), "1700"]  # written on the log's clock, the duration as elapsed


def test_the_synthetic_log_labels_each_event_time_as_it_logs():
    """Each of an event's times is set back with the clock if it falls after the reset, so an event across the reset
    starts on the old clock and ends on the new one (the generator once shifted both by the start alone)."""
    from tinyml.data.synth_series import SeriesOptions, synth_series

    across = 0
    for seed in range(12):
        _, _, true = synth_series(SeriesOptions(days=10.0, quiet_days=2.0, gaps=0, seed=seed))
        times, _, events = synth_series(SeriesOptions(days=10.0, quiet_days=2.0, gaps=0, seed=seed,
                                                      clock_reset_s=3600.0))
        reset = times[int(np.flatnonzero(np.diff(times) < 0)[0]) + 1] + 3600.0  # its first row's true time
        assert [(e.start, e.end) for e in events] == [
            (t.start - 3600.0 * (t.start >= reset), t.end - 3600.0 * (t.end >= reset)) for t in true]
        assert all(e.end > e.start for e in events)
        across += sum(t.start < reset <= t.end for t in true)
    assert across
    with pytest.raises(ValueError, match="clock_reset_s 7200"):
        synth_series(SeriesOptions(clock_reset_s=7200.0))


def test_the_synthetic_logs_gaps_fall_around_events_never_in_them():
    """Every injected event is logged whole, onset to end (the target is to find each one), while the gaps stay:
    a gap drawn across an event is cut back to its edges (the generator once kept only an event's first hour)."""
    from tinyml.data.synth_series import SeriesOptions, synth_series

    cut_back = 0
    for seed in range(8):
        whole_t, whole_v, _ = synth_series(SeriesOptions(days=10.0, quiet_days=2.0, gaps=0, seed=seed))
        times, values, events = synth_series(SeriesOptions(days=10.0, quiet_days=2.0, gaps=12, seed=seed))
        assert len(times) < len(whole_t)  # the gaps are there
        for e in events:
            inside = (whole_t >= e.start) & (whole_t < e.end)
            logged = (times >= e.start) & (times < e.end)
            assert np.array_equal(times[logged], whole_t[inside]) and np.array_equal(values[logged], whole_v[inside])
            missing_before = not np.isin(e.start - SeriesOptions().step_s, times)
            missing_after = not np.isin(e.end, times) and e.end < whole_t[-1]
            cut_back += missing_before or missing_after
    assert cut_back  # some gap was drawn across an event and now stops at its edge


def test_an_escalation_ends_the_open_event_and_opens_the_next():
    from tinyml.train.detect import DetectOptions, alarm_events

    scores = np.array([0.1, 2.0, 2.0, 2.5, 7.0, 8.0, 0.1, 0.1, 0.1, 0.1])
    ends = np.arange(scores.size) * 10.0
    which = np.zeros(scores.size, int)
    events = alarm_events(scores, 1.0, ends, which, DetectOptions())
    assert [(e.start, e.end, e.peak_score, e.anomalous_windows, e.opened_by) for e in events] == [
        (20.0, 40.0, 2.5, 2, "rule"), (40.0, 80.0, 8.0, 2, "escalation")]
    plain = alarm_events(scores, 1.0, ends, which, DetectOptions(escalate=None))
    assert [(e.start, e.end, e.anomalous_windows) for e in plain] == [(20.0, 80.0, 4)]


def test_a_sensor_fault_during_an_alarm_of_another_cause_ends_it_and_opens_its_own_event():
    from tinyml.train.detect import DetectOptions, alarm_events

    # a drift's alarm held open, the probe freezes in it (windows 5-6), the drift goes on, all clears
    scores = np.array([0.1, 2.0, 2.0, 2.5, 2.2, 2.0, 2.1, 2.4, 0.1, 0.1, 0.1, 0.1])
    faults = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0], bool)
    ends = np.arange(scores.size) * 10.0
    which = np.zeros(scores.size, int)
    events = alarm_events(scores, 1.0, ends, which, DetectOptions(), faults=faults)
    assert [(e.start, e.end, e.anomalous_windows, e.opened_by) for e in events] == [
        (20.0, 50.0, 3, "rule"), (50.0, 100.0, 3, "sensor_fault")]
    # without the faults, one alarm; a fault in an alarm the fault opened is no new event
    assert [(e.start, e.end) for e in alarm_events(scores, 1.0, ends, which, DetectOptions())] == [(20.0, 100.0)]
    refreeze = faults.copy()
    refreeze[1] = True  # the alarm opens on a fault: its sensor freezing again in it is the same fault
    events = alarm_events(scores, 1.0, ends, which, DetectOptions(), faults=refreeze)
    assert [(e.start, e.opened_by) for e in events] == [(10.0, "sensor_fault")]


def test_a_sensor_fault_window_fires_at_once_even_as_the_last_before_a_gap():
    from tinyml.train.detect import DetectOptions, alarm_events, events_csv

    # recording 0: one lone window above the threshold, then a frozen window as the last before a gap;
    # recording 1: a frozen window amid normal ones (the alarm clears when it leaves the last 3)
    scores = np.array([0.1, 2.0, 0.1, 0.1, 1.2, 0.1, 1.3, 0.1, 0.1, 0.1, 0.1])
    faults = np.array([0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0], bool)
    ends = np.arange(scores.size) * 10.0
    which = np.array([0] * 5 + [1] * 6)
    o = DetectOptions(escalate=None)
    events = alarm_events(scores, 1.0, ends, which, o, faults=faults)
    assert [(e.start, e.end, e.anomalous_windows, e.opened_by) for e in events] == [
        (40.0, 40.0, 1, "sensor_fault"), (60.0, 90.0, 1, "sensor_fault")]
    assert "sensor_fault" in events_csv(events).decode().splitlines()[1]
    # without the faults (the rule alone, as before): a lone window above the threshold fires nothing
    assert alarm_events(scores, 1.0, ends, which, o) == []
    # a fault on a window the rule fires on anyway is the rule's alarm
    two = alarm_events(np.array([2.0, 2.0, 0.1, 0.1, 0.1]), 1.0, ends[:5], np.zeros(5, int), o,
                       faults=np.array([0, 1, 0, 0, 0], bool))
    assert [(e.start, e.opened_by) for e in two] == [(10.0, "rule")]


def write_series(path: Path, start: dt.datetime, days: int, events: list[tuple[float, float, str]],
                 seed: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """A 5-minute temperature log with a daily cycle and injected step/runaway/stuck events."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 288) * 300.0
    v = 60 + 5 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 0.3, t.size)
    for a, b, kind in events:
        i, j = int(a * 288), int(b * 288)
        v[i:j] = {"step": v[i:j] + 8, "runaway": v[i:j] + np.linspace(0, 15, j - i), "stuck": v[i]}[kind]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        w.writerows([(start + dt.timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S"), f"{x:.3f}"]
                     for s, x in zip(t, v, strict=True))
    return [(start + dt.timedelta(days=a), start + dt.timedelta(days=b)) for a, b, _ in events]


def clock_set_back(src: Path, out: Path, *, at_row: int, seconds: int) -> dt.datetime:
    """``src`` with every time from data row ``at_row`` on set back by ``seconds`` (sampling went on); the true
    time of that row."""
    rows = src.read_text().splitlines()
    when = dt.datetime.fromisoformat(rows[1 + at_row].split(",")[0])
    for i in range(1 + at_row, len(rows)):
        t, v = rows[i].split(",")
        rows[i] = f"{(dt.datetime.fromisoformat(t) - dt.timedelta(seconds=seconds)).isoformat(sep=' ')},{v}"
    out.write_text("\n".join(rows) + "\n")
    return when


def write_labels(path: Path, spans: list[tuple[dt.datetime, dt.datetime]]) -> Path:
    path.write_text("start,end,label\n" + "".join(f"{a.isoformat(sep=' ')},{b.isoformat(sep=' ')},anomaly\n"
                                                  for a, b in spans))
    return path


def test_detect_finds_injected_events_with_lead_times(tmp_path):
    train_spans = write_series(tmp_path / "train.csv", START - dt.timedelta(days=7), 7, [(5.0, 5.3, "step")], 1)
    data = tmp_path / "train.npz"
    ok = run_cli("data", "import", tmp_path / "train.csv", "--time-column", "timestamp", "--labels",
                 write_labels(tmp_path / "train_labels.csv", train_spans), "--kind", "temperature", "--window", "24",
                 "--hop", "6", "--out", data)
    assert ok.returncode == 0, ok.stderr
    run = tmp_path / "run"
    ok = run_cli("train", data, "--model", "autoencoder", "--out", run, "--seed", "0", "--quiet", "--epochs", "30")
    assert ok.returncode == 0, ok.stderr
    scored = tmp_path / "scores.csv"
    ok = run_cli("predict", run, data, "--out", scored)
    assert ok.returncode == 0, ok.stderr
    rows = list(csv.DictReader(scored.read_text().splitlines()))
    starts = [r["start"] for r in rows]
    assert starts == sorted(starts) and rows[0]["start"] == "2013-12-25T00:00:00"  # data order, not split order
    assert rows[1]["start"] == "2013-12-25T00:30:00" and rows[0]["end"] == "2013-12-25T02:00:00"

    spans = write_series(tmp_path / "test.csv", START, 7, [(2.0, 2.25, "step"), (4.0, 4.4, "runaway")], 2)
    labels = write_labels(tmp_path / "test_labels.csv", spans)
    events = tmp_path / "events.csv"
    det = run_cli("detect", run, tmp_path / "test.csv", "--labels", labels, "--out", events)
    assert det.returncode == 0, det.stderr
    assert "events detected 2/2 (0 late), missed 0" in det.stdout and "NAB score" in det.stdout
    assert "lead time" in det.stdout
    alarms = [r["start"] for r in csv.DictReader(events.read_text().splitlines())]
    for a, b in spans:  # an alarm inside every injected event
        assert any(a.isoformat() <= x <= b.isoformat() for x in alarms)
    reset = clock_set_back(tmp_path / "test.csv", tmp_path / "reset.csv", at_row=3 * 288, seconds=3600)
    on_log = [(a, b) if b <= reset else (a - dt.timedelta(hours=1), b - dt.timedelta(hours=1)) for a, b in spans]
    events2 = tmp_path / "events2.csv"
    det = run_cli("detect", run, tmp_path / "reset.csv", "--labels", write_labels(tmp_path / "l2.csv", on_log),
                  "--on-backwards", "continue", "--out", events2)
    assert det.returncode == 0, det.stderr
    assert "events detected 2/2 (0 late), missed 0" in det.stdout
    # the data is scored on the clock it follows (the same windows as before), events reported on the log's
    got = list(csv.DictReader(events2.read_text().splitlines()))
    expect = list(csv.DictReader(events.read_text().splitlines()))
    back = [(dt.datetime.fromisoformat(r["start"]) - dt.timedelta(hours=1)).isoformat()
            if r["start"] >= reset.isoformat() else r["start"] for r in expect]
    assert [r["start"] for r in got] == back and len(back) >= 2
    bad = run_cli("detect", run, tmp_path / "test.csv", "--time-column", "when", "--out", tmp_path / "e2.csv")
    assert_clean_error(bad, "unknown column 'when'")
    assert not (tmp_path / "e2.csv").exists()
    outside = write_labels(tmp_path / "outside.csv", [(dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 2))])
    bad = run_cli("detect", run, tmp_path / "test.csv", "--labels", outside, "--out", tmp_path / "e3.csv")
    assert_clean_error(bad, "lies outside the series")
    assert not (tmp_path / "e3.csv").exists()
    for args, message in ((["--escalate", "1"], "--escalate 1 would re-fire"),
                          (["--escalate", "2", "--no-escalate"], "contradict each other")):
        bad = run_cli("detect", run, tmp_path / "test.csv", *args, "--out", tmp_path / "e4.csv")
        assert_clean_error(bad, message)
        assert not (tmp_path / "e4.csv").exists()
    rows_in = (tmp_path / "test.csv").read_text().splitlines()  # 6 hours missing on day 5, an event inside them
    (tmp_path / "gap.csv").write_text("\n".join(rows_in[:1 + 5 * 288] + rows_in[1 + 5 * 288 + 72:]) + "\n")
    in_gap = [(START + dt.timedelta(days=5, hours=1), START + dt.timedelta(days=5, hours=4))]
    det = run_cli("detect", run, tmp_path / "gap.csv", "--labels",
                  write_labels(tmp_path / "l3.csv", spans + in_gap), "--out", tmp_path / "e5.csv")
    assert det.returncode == 0, det.stderr
    assert "events detected 2/2 (0 late)" in det.stdout and "1 labelled event(s) in gaps of the data" in det.stdout
    assert f"in a gap {in_gap[0][0].isoformat()}" in det.stdout
    # a labelled stretch of normal data running into the gap: missed, and how little of it the data holds said
    into = [(START + dt.timedelta(days=4, hours=23), START + dt.timedelta(days=5, hours=3))]
    det = run_cli("detect", run, tmp_path / "gap.csv", "--labels",
                  write_labels(tmp_path / "l4.csv", spans + into), "--out", tmp_path / "e6.csv")
    assert det.returncode == 0, det.stderr
    assert "events detected 2/3" in det.stdout
    assert f"missed   {into[0][0].isoformat()}..{into[0][1].isoformat()} (the data holds 1 h of its 4 h)" in det.stdout
    plain = tmp_path / "plain.csv"
    assert run_cli("detect", run, tmp_path / "test.csv", "--no-escalate", "--out", plain).returncode == 0
    rows = list(csv.DictReader(events.read_text().splitlines()))
    plain_rows = list(csv.DictReader(plain.read_text().splitlines()))
    assert {r["opened_by"] for r in plain_rows} == {"rule"}
    # escalations only split alarms: every plain alarm opens where one of the escalating run's alarms opens
    assert {r["start"] for r in plain_rows} == {r["start"] for r in rows if r["opened_by"] == "rule"}


@pytest.mark.slow
def test_a_series_model_keeps_state_and_a_threshold_for_an_alarm_rate(tmp_path):
    """temperature-series features and --false-alarms-per-day through the commands (few epochs: plumbing)."""
    import json

    from tinyml.data.synth_series import SeriesOptions, synth_series, write_intervals, write_series

    times, values, events = synth_series(SeriesOptions(days=12.0, quiet_days=8.0, events_per_kind=1, seed=3))
    cut = int(np.searchsorted(times, times[0] + 8 * 86400.0))
    write_series(tmp_path / "history.csv", times[:cut], values[:cut])
    write_series(tmp_path / "test.csv", times[cut:], values[cut:])
    labels = write_intervals(tmp_path / "labels.csv", events)
    data, run = tmp_path / "h.npz", tmp_path / "run"
    ok = run_cli("data", "import", tmp_path / "history.csv", "--time-column", "timestamp", "--label", "normal",
                 "--normal-class", "normal", "--kind", "temperature", "--window", "24", "--hop", "6", "--split",
                 "time", "--out", data)
    assert ok.returncode == 0, ok.stderr
    ok = run_cli("train", data, "--model", "autoencoder", "--features", "temperature-series", "--epochs", "3",
                 "--false-alarms-per-day", "0.5", "--quiet", "--out", run)
    assert ok.returncode == 0, ok.stderr
    info = json.loads((run / "model.json").read_text())
    rule = info["threshold_rule"]
    assert info["threshold"] == max(rule["counted_threshold"], rule["tail_threshold"])
    assert rule["alarms_on_validation"] <= rule["alarms_allowed"] == int(0.5 * rule["validation_days"])
    spec = json.loads((run / "preprocess.json").read_text())["feature_spec"]
    assert spec[-1]["name"] == "daily_cycle" and spec[-1]["slots"] == 48  # 30-minute hops
    scored = tmp_path / "scores.csv"
    ok = run_cli("predict", run, data, "--split", "test", "--out", scored)
    assert ok.returncode == 0, ok.stderr
    det = run_cli("detect", run, tmp_path / "test.csv", "--labels", labels, "--out", tmp_path / "events.csv")
    assert det.returncode == 0, det.stderr
    assert "events detected" in det.stdout and (tmp_path / "events.csv").exists()
    bad = run_cli("detect", run, tmp_path / "test.csv", "--hop", "3", "--out", tmp_path / "e2.csv")
    assert_clean_error(bad, "daily_cycle feature counts windows of hop 6")
    assert_int8_threshold_is_its_own(run, tmp_path / "test.csv")


def assert_int8_threshold_is_its_own(run: Path, series_csv: Path) -> None:
    """quantize chooses the int8 model's threshold by the float model's alarm-rate rule on the int8 model's own
    validation scores; everything that decides as the device does reads it, the float model keeps model.json's."""
    import json

    from tinyml.errors import InputError
    from tinyml.rundir import int8_model, open_model, read_labels
    from tinyml.train.detect import score_series

    ok = run_cli("quantize", run)
    assert ok.returncode == 0, ok.stderr
    assert "int8 " in ok.stdout.splitlines()[-1] and "the device decides with it" in ok.stdout
    info = json.loads((run / "model.json").read_text())
    report = json.loads((run / "quantization.json").read_text())
    own, rule = report["int8_threshold"], report["int8_threshold_rule"]
    assert own == max(rule["counted_threshold"], rule["tail_threshold"]) == report["int8_tflm"]["threshold"]
    assert rule["alarms_on_validation"] <= rule["alarms_allowed"] and rule["false_alarms_per_day"] == 0.5
    assert report["float"]["threshold"] == info["threshold"] != own  # quantization moved the errors
    assert len(report["int8_score_baseline"]) == len(info["score_baseline"])
    assert int8_model(run).threshold == own == open_model(run / "model_int8.tflite").threshold
    assert open_model(run).threshold == info["threshold"] == open_model(run / "model.keras").threshold
    assert read_labels(run).threshold == own  # the gateway: devices run the int8 model
    assert score_series(run / "model_int8.tflite", series_csv).summary["threshold"] == own
    assert score_series(run, series_csv).summary["threshold"] == info["threshold"]
    (run / "quantization.json").write_text(json.dumps({**report, "int8_threshold": "high"}))
    with pytest.raises(InputError, match="malformed int8_threshold"):
        read_labels(run)
    (run / "model_int8.tflite").write_bytes(b"not the model")  # a threshold for a model that is no longer there
    with pytest.raises(InputError, match="not the model quantization.json describes"):
        read_labels(run)


@pytest.mark.slow
def test_the_input_guard_through_train_detect_predict_and_the_firmware(tmp_path):
    """--guard-margin: model.json's envelope, detect and predict fold it into the score (the keras and the int8
    model alike), the firmware gets its int8 bounds; the same run without the field scores as before."""
    import json
    import re

    from tinyml.data.synth_series import SeriesOptions, synth_series, write_series
    from tinyml.firmware.boards import load_board
    from tinyml.firmware.render import render_project
    from tinyml.rundir import int8_model
    from tinyml.train.detect import DetectOptions, score_series

    times, values, _ = synth_series(SeriesOptions(days=12.0, quiet_days=8.0, events_per_kind=1, seed=5))
    cut = int(np.searchsorted(times, times[0] + 8 * 86400.0))
    write_series(tmp_path / "history.csv", times[:cut], values[:cut])
    test = write_series(tmp_path / "test.csv", times[cut:], values[cut:])
    data, run = tmp_path / "h.npz", tmp_path / "run"
    ok = run_cli("data", "import", tmp_path / "history.csv", "--time-column", "timestamp", "--label", "normal",
                 "--normal-class", "normal", "--kind", "temperature", "--window", "24", "--hop", "6", "--split",
                 "time", "--out", data)
    assert ok.returncode == 0, ok.stderr
    for bad, why in (("-1", "is no margin"), ("nan", "is no margin")):
        assert_clean_error(run_cli("train", data, "--model", "autoencoder", "--guard-margin", bad, "--out",
                                   tmp_path / "bad"), why)
    assert not (tmp_path / "bad").exists()
    assert_clean_error(run_cli("train", data, "--model", "mlp", "--guard-margin", "1", "--out", tmp_path / "bad"),
                       "a classifier has no anomaly score")
    ok = run_cli("train", data, "--model", "autoencoder", "--features", "temperature-series", "--epochs", "3",
                 "--false-alarms-per-day", "0.5", "--guard-margin", "0.5", "--quiet", "--out", run)
    assert ok.returncode == 0, ok.stderr
    info = json.loads((run / "model.json").read_text())
    guard, threshold = info["guard"], info["threshold"]
    assert guard["margin_sd"] == 0.5 and len(guard["low"]) == len(guard["high"]) == info["input_shape"][0] == 16

    s = score_series(run, test, DetectOptions())
    flat = s.inputs.reshape(len(s.inputs), -1)
    low, high = (np.array([bound if v is None else v for v in guard[k]]) for k, bound in (("low", -np.inf),
                                                                                          ("high", np.inf)))
    assert np.count_nonzero(np.isinf(low)) == np.count_nonzero(np.isinf(high)) == 3  # the daily_cycle values
    outside = (flat < low - 1e-6).any(axis=1) | (flat > high + 1e-6).any(axis=1)
    assert outside.any() and np.all(s.scores[outside] > threshold)  # the events' windows leave the envelope
    assert np.array_equal(s.scores[~outside], s.errors[~outside]) and np.all(s.scores >= s.errors)
    det = run_cli("detect", run, test, "--out", tmp_path / "events.csv")
    assert det.returncode == 0, det.stderr
    assert f"{np.count_nonzero((s.scores > threshold) & (s.errors <= threshold))} of them by the input guard" in det.stdout

    ok = run_cli("quantize", run)
    assert ok.returncode == 0, ok.stderr
    report, metrics = (json.loads((run / name).read_text()) for name in ("quantization.json", "metrics.json"))
    assert report["float"]["confusion_matrix"] == metrics["confusion_matrix"]  # quantize folds the guard as train
    model = int8_model(run)
    s8 = score_series(run / "model_int8.tflite", test, DetectOptions())
    own = s8.summary["threshold"]  # the int8 model's own
    assert np.all(s8.scores[s8.scores != s8.errors] > own) and np.any(s8.scores != s8.errors)
    out = render_project(load_board("qemu-mps2-an386"), model, tmp_path / "fw")
    config = next(out.rglob("tinyml_config.h")).read_text()
    lo, hi = model.guard().bounds_int8(model.in_scale, model.in_zp)
    assert "#define TINYML_HAS_GUARD 1" in config
    assert re.search(r"tinyml_guard_lo\[TINYML_INPUT_BYTES\] = \{ ([-0-9, ]+) \}", config)[1] == ", ".join(map(str, lo))
    assert re.search(r"tinyml_guard_hi\[TINYML_INPUT_BYTES\] = \{ ([-0-9, ]+) \}", config)[1] == ", ".join(map(str, hi))
    ok = run_cli("predict", run, data, "--split", "all", "--out", tmp_path / "guarded.csv")
    assert ok.returncode == 0, ok.stderr

    # the same run as one trained before the guard: no field, the reconstruction error as the score
    info.pop("guard")
    (run / "model.json").write_text(json.dumps(info))
    old = score_series(run, test, DetectOptions())
    assert np.array_equal(old.scores, s.errors)
    config = next(render_project(load_board("qemu-mps2-an386"), int8_model(run), tmp_path / "fw0")
                  .rglob("tinyml_config.h")).read_text()
    assert "#define TINYML_HAS_GUARD 0" in config and "tinyml_guard_lo" not in config
    ok = run_cli("predict", run, data, "--split", "all", "--out", tmp_path / "plain.csv")
    assert ok.returncode == 0, ok.stderr
    rows = lambda p: list(csv.DictReader(p.open()))  # noqa: E731
    guarded, plain = rows(tmp_path / "guarded.csv"), rows(tmp_path / "plain.csv")
    assert all(float(g["anomaly_score"]) >= float(p["anomaly_score"]) for g, p in zip(guarded, plain, strict=True))
