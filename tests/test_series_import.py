"""Timestamped CSVs as loggers write them: time formats, clock faults, gaps, irregular sampling, `data info`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import assert_clean_error, run_cli
from tinyml.data.dataset import load
from tinyml.data.importer import ImportOptions, import_data
from tinyml.data.timestamps import parse_times
from tinyml.errors import InputError

START = dt.datetime(2013, 12, 2, 21, 15, tzinfo=dt.timezone.utc)


def log_csv(path: Path, times: list[str], values: list[float] | None = None) -> Path:
    values = values if values is not None else list(range(len(times)))
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in zip(times, values, strict=True)))
    return path


def five_minutes(n: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> list[str]:
    return [(START + dt.timedelta(minutes=5 * i)).strftime(fmt) for i in range(n)]


def opts(**kw) -> ImportOptions:
    base = {"time_column": "timestamp", "label": "normal", "normal_class": "normal", "kind": "temperature",
            "window": 24, "split": "time", "val": 0.0, "test": 0.0}
    return ImportOptions(**(base | kw))


@pytest.mark.parametrize("fmt", ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ",
                                 "%Y-%m-%dT%H:%M:%S.000+00:00", "%Y-%m-%d %H:%M"])
def test_the_issue_log_imports_in_every_common_format(tmp_path, fmt):
    ds = import_data([log_csv(tmp_path / "log.csv", five_minutes(240, fmt))], opts())
    assert ds.fs == pytest.approx(1 / 300) and ds.n == 10
    assert ds.times[0] == START.timestamp() and np.all(np.diff(ds.times) == 24 * 300)
    assert ds.x[1, 0, 0] == 24  # exact values: a regular series is not resampled


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
       st.sampled_from(["", "Z", "+05:30", "-0800"]), st.booleans())
def test_vectorised_iso_parsing_agrees_with_datetime(when, zone, space):
    text = when.isoformat(sep=" " if space else "T", timespec="microseconds" if when.microsecond else "seconds")
    got = parse_times([text + zone, text + zone], where="x")[0]
    aware = dt.datetime.fromisoformat((text + zone).replace("Z", "+00:00"))
    expect = aware.timestamp() if zone else aware.replace(tzinfo=dt.timezone.utc).timestamp()
    assert got == pytest.approx(expect, abs=1e-6)


def test_numeric_seconds_milliseconds_and_explicit_formats():
    assert list(parse_times(["0", "1.5"])) == [0.0, 1.5]
    assert list(parse_times(["1386018900000"])) == [1386018900.0]  # epoch ms found by size
    assert list(parse_times(["0", "250"], fmt="ms")) == [0.0, 0.25]
    got = parse_times(["02.12.2013 21:15", "02.12.2013 21:20"], fmt="%d.%m.%Y %H:%M")
    assert list(got) == [START.timestamp(), START.timestamp() + 300]


def test_bad_timestamps_name_the_line_and_the_format_tried(tmp_path):
    times = five_minutes(50)
    times[30] = "2013-12-02 25:00:00"
    with pytest.raises(InputError, match=r"cannot read time '2013-12-02 25:00:00' at line 32 \(tried .*ISO 8601"):
        import_data([log_csv(tmp_path / "a.csv", times)], opts())
    with pytest.raises(InputError, match=r"cannot read time 'now' at line 3"):
        parse_times(["2013-12-02", "now"], where="x")
    with pytest.raises(InputError, match=r"at line 2 with --time-format '%d.%m.%Y'"):
        import_data([log_csv(tmp_path / "b.csv", five_minutes(50))], opts(time_format="%d.%m.%Y"))
    mixed = five_minutes(50, "%Y-%m-%dT%H:%M:%S")
    mixed[10] += "+01:00"
    with pytest.raises(InputError, match="mixed time zones: line 2 .* has none, line 12 .* has one"):
        import_data([log_csv(tmp_path / "c.csv", mixed)], opts())


def test_zones_are_converted_to_utc_so_a_dst_change_is_no_fault(tmp_path):
    local = [(START + dt.timedelta(minutes=5 * i)).astimezone(dt.timezone(dt.timedelta(hours=1 if i < 60 else 2)))
             .isoformat() for i in range(120)]
    ds = import_data([log_csv(tmp_path / "dst.csv", local)], opts())
    assert ds.n == 5 and ds.meta["recordings"][0]["clock_faults"] == []


def test_clock_faults_are_refused_by_default_and_handled_on_request(tmp_path):
    times = five_minutes(200)
    times[50] = times[49]                         # duplicate at line 52
    times[120:] = five_minutes(200)[100:180]      # clock set back 20 samples at line 122
    path = log_csv(tmp_path / "faults.csv", times, [float(i) for i in range(200)])
    with pytest.raises(InputError, match=r"2 clock fault\(s\): duplicate at line 52, backwards at line 122 "
                                         r"\(5700 s back\)") as err:
        import_data([path], opts())
    assert "--on-backwards drop|sort|split" in err.value.hint
    dropped = import_data([path], opts(on_backwards="drop"))
    # the duplicate and the repeated stretch dropped; the time lost at line 52 interpolated: 180 grid points
    assert [r["samples"] for r in dropped.meta["recordings"]] == [180]
    assert dropped.x[:, :, 0].ravel()[120] == 140.0  # after the repeat: the row logged 20 rows later
    ordered = import_data([path], opts(on_backwards="sort"))  # one timeline; the first of equal times kept
    assert [r["samples"] for r in ordered.meta["recordings"]] == [180]
    assert ordered.x[:, :, 0].ravel()[100] == 100.0
    split = import_data([path], opts(on_backwards="split"))
    assert len(split.meta["recordings"]) == 3
    faults = [f for r in split.meta["recordings"] for f in r["clock_faults"]]
    assert [(f["line"], f["kind"]) for f in faults] == [(52, "duplicate"), (122, "backwards")]


def test_continue_keeps_the_clock_going_past_a_reset_and_labels_on_the_log_clock(tmp_path):
    true = five_minutes(480)
    logged = true[:200] + [(START + dt.timedelta(minutes=5 * i - 60)).strftime("%Y-%m-%d %H:%M:%S")
                           for i in range(200, 480)]  # set back an hour at line 202; sampling went on
    path = log_csv(tmp_path / "reset.csv", logged, [float(i) for i in range(480)])
    on_log = START + dt.timedelta(minutes=5 * 300 - 60)  # rows 300-323, given on the log's clock
    labels = tmp_path / "labels.csv"
    labels.write_text(f"start,end,label\n{on_log.isoformat()},{(on_log + dt.timedelta(hours=2)).isoformat()},hot\n")
    ds = import_data([path], opts(on_backwards="continue", labels=str(labels), label=None))
    rec, = ds.meta["recordings"]
    assert rec["samples"] == 480 and not rec["resampled"] and rec["retimed_s"] == 3600.0
    end_on_log = START + dt.timedelta(minutes=5 * 480 - 60)  # after the last row, on the log's clock
    assert rec["start"] == "2013-12-02T21:15:00" and rec["end"] == end_on_log.strftime("%Y-%m-%dT%H:%M:%S")
    assert [(f["line"], f["kind"]) for f in rec["clock_faults"]] == [(202, "backwards")]
    assert np.array_equal(ds.x[:, :, 0].ravel(), np.arange(480.0))  # nothing dropped, in file order
    assert np.array_equal(ds.times, START.timestamp() + 300.0 * 24 * np.arange(20))  # the clock the data follows
    hot = ds.classes.index("hot")
    assert [int(t) for t in np.flatnonzero(ds.y == hot)] == [12, 13]  # windows of rows 288-311, 312-335
    shown = run_cli("data", "info", ds.save(tmp_path / "reset.npz"))
    assert shown.returncode == 0, shown.stderr
    assert "moved 3600 s later (--on-backwards continue)" in shown.stdout


def test_gaps_split_recordings_and_no_window_spans_one(tmp_path):
    all_times = five_minutes(300)
    keep = [i for i in range(300) if not 100 <= i < 130 and i != 200]  # a 2.5 h gap and one lost sample
    path = log_csv(tmp_path / "gaps.csv", [all_times[i] for i in keep], [float(i) for i in keep])
    ds = import_data([path], opts(window=12, hop=6))
    recs = ds.meta["recordings"]
    assert [r["samples"] for r in recs] == [100, 170] and recs[1]["gap_before_s"] == 31 * 300
    assert recs[1]["resampled"]  # the lost sample at index 200 is interpolated (a step of 2 < 2.5 grid steps)
    assert np.allclose(np.diff(ds.x[:, :, 0], axis=1), 1.0)  # window values follow the grid: no gap inside
    assert np.allclose(ds.times, START.timestamp() + ds.x[:, 0, 0] * 300)
    small = import_data([path], opts(window=12, hop=6, max_gap=400))
    assert len(small.meta["recordings"]) == 3


def test_irregular_sampling_goes_onto_the_grid_by_the_stated_method(tmp_path):
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(50, 70, 500))  # about one a minute, jittered
    times = [(START + dt.timedelta(seconds=float(s))).isoformat() for s in t]
    path = log_csv(tmp_path / "jitter.csv", times, list(2.0 * t))  # value = 2 * seconds: linear is exact
    ds = import_data([path], opts(window=20))
    step = 1 / ds.fs
    assert 55 < step < 65 and ds.meta["recordings"][0]["resampled"]
    grid = (ds.times[:, None] - START.timestamp()) + np.arange(20) * step
    assert np.allclose(ds.x[:, :, 0], 2 * grid, rtol=1e-5)
    held = import_data([path], opts(window=20, resample="previous"))
    held_values = held.x[:, :, 0].ravel().astype(np.float64)
    assert np.all(held_values <= 2 * grid.ravel() + 0.01)  # sample-and-hold never looks ahead
    assert np.all(np.min(np.abs(held_values[:, None] - 2 * t[None, :]), axis=1) < 0.01)  # only logged values


def test_data_info_reports_spans_gaps_and_clock_faults(tmp_path):
    times = five_minutes(300)
    times = times[:100] + times[130:]
    times.insert(200, times[199])
    path = log_csv(tmp_path / "log.csv", times, [70.0] * len(times))
    out = tmp_path / "m.npz"
    refused = run_cli("data", "import", path, "--time-column", "timestamp", "--label", "normal", "--normal-class",
                      "normal", "--kind", "temperature", "--window", "24", "--out", out)
    assert_clean_error(refused, "duplicate at line 202", "--on-backwards")
    assert not out.exists()
    ok = run_cli("data", "import", path, "--time-column", "timestamp", "--label", "normal", "--normal-class",
                 "normal", "--kind", "temperature", "--window", "24", "--on-backwards", "drop", "--out", out)
    assert ok.returncode == 0, ok.stderr
    info = run_cli("data", "info", out)
    assert "recordings (time column): 2, 1 split at gaps, 1 clock fault(s)" in info.stdout
    assert "2013-12-02T21:15:00 to 2013-12-03T05:35:00: 100 samples" in info.stdout
    assert "after a gap of 9300 s" in info.stdout and "clock fault: duplicate at line 202" in info.stdout
    assert load(out).times is not None


def labelled_log(tmp_path: Path) -> Path:
    return log_csv(tmp_path / "machine_temperature_system_failure.csv", five_minutes(288), [70.0] * 288)


def at(minutes: float) -> str:
    return (START + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")


def test_interval_labels_from_csv_json_and_nab(tmp_path):
    data = labelled_log(tmp_path)  # one day, 12 windows of 2 h
    (tmp_path / "iv.csv").write_text(f"start,end,label\n{at(240)},{at(480)},overheat\n{at(900)},{at(1000)},stuck\n")
    ds = import_data([data], opts(label=None, labels=str(tmp_path / "iv.csv"), normal_class=""))
    assert ds.classes == ["normal", "overheat", "stuck"] and ds.normal_class == "normal"
    # windows of 120 min: [240, 360) and [360, 480) are overheat; [840, 960) is 60 min inside stuck (half)
    assert list(ds.y) == [0, 0, 1, 1, 0, 0, 0, 2, 0, 0, 0, 0]
    (tmp_path / "iv.json").write_text(json.dumps([{"start": at(240), "end": at(480), "label": "overheat"}]))
    unl = import_data([data], opts(label=None, labels=str(tmp_path / "iv.json"), unlabelled_as="none"))
    assert list(unl.y) == [-1, -1, 1, 1] + [-1] * 8
    nab = {"realKnownCause/machine_temperature_system_failure.csv": [[at(0) + ".000000", at(130) + ".000000"]],
           "realKnownCause/other.csv": [["2000-01-01 00:00:00.000000", "2000-01-02 00:00:00.000000"]]}
    (tmp_path / "combined_windows.json").write_text(json.dumps(nab))
    ds = import_data([data], opts(label=None, labels=str(tmp_path / "combined_windows.json")))
    assert ds.classes == ["normal", "anomaly"] and list(ds.y) == [1] + [0] * 11


def test_bad_interval_files_are_one_line_errors(tmp_path):
    data = labelled_log(tmp_path)
    outside = tmp_path / "outside.csv"
    outside.write_text("start,end,label\n2020-01-01 00:00:00,2020-01-02 00:00:00,fault\n")
    with pytest.raises(InputError, match="line 2 .* lies outside the data") as err:
        import_data([data], opts(label=None, labels=str(outside)))
    assert "time zone" in err.value.hint
    overlap = tmp_path / "overlap.csv"
    overlap.write_text(f"start,end,label\n{at(0)},{at(100)},a\n{at(50)},{at(200)},b\n")
    with pytest.raises(InputError, match="line 2 .* overlaps line 3"):
        import_data([data], opts(label=None, labels=str(overlap)))
    backwards = tmp_path / "backwards.csv"
    backwards.write_text(f"start,end,label\n{at(100)},{at(50)},a\n")
    with pytest.raises(InputError, match="ends .* before it starts"):
        import_data([data], opts(label=None, labels=str(backwards)))
    proc = run_cli("data", "import", data, "--time-column", "timestamp", "--window", "24", "--labels", overlap,
                   "--out", tmp_path / "x.npz")
    assert_clean_error(proc, "overlaps", "disjoint")


@pytest.mark.parametrize("case", ["unreadable time", "mixed zones", "interval outside", "overlapping labels"])
def test_bad_series_input_is_one_line_with_a_hint_on_the_command_line(tmp_path, case):
    times = five_minutes(60, "%Y-%m-%dT%H:%M:%S")
    labels = None
    if case == "unreadable time":
        times[40] = "2013-12-02 21:15:00 o'clock"
    elif case == "mixed zones":
        times[20] += "Z"
    elif case == "interval outside":
        labels = tmp_path / "l.csv"
        labels.write_text("start,end,label\n2020-01-01 00:00:00,2020-01-02 00:00:00,fault\n")
    else:
        labels = tmp_path / "l.csv"
        labels.write_text(f"start,end,label\n{times[0]},{times[30]},a\n{times[20]},{times[50]},b\n")
    args = ["--labels", labels] if labels else ["--label", "normal", "--normal-class", "normal"]
    out = tmp_path / "m.npz"
    proc = run_cli("data", "import", log_csv(tmp_path / "log.csv", times), "--time-column", "timestamp",
                   "--window", "12", *args, "--out", out)
    needle = {"unreadable time": "at line 42 (tried numbers", "mixed zones": "mixed time zones: line 2",
              "interval outside": "lies outside the data", "overlapping labels": "overlaps line 3"}[case]
    assert_clean_error(proc, needle)
    assert not out.exists()


def test_tail_threshold_extrapolates_below_one_window_in_the_span():
    from tinyml.train.alarm_rate import AlarmRule, alarm_count, tail_threshold, threshold_for_rate

    rng = np.random.default_rng(0)
    scores = rng.exponential(1.0, 20000)  # log-exponential tail: the Pareto fit is exact in law
    assert tail_threshold(scores, per_window=0.5) == pytest.approx(np.quantile(scores, 0.5))
    far = tail_threshold(scores[:2000], per_window=1e-6)
    assert far > scores.max()  # beyond anything seen, as a rate of one in a million windows must be
    starts = np.arange(2000) * 1800.0
    thr, info = threshold_for_rate(scores[:2000], starts, np.zeros(2000), hop_s=1800.0, per_day=1.0)
    assert info["alarms_allowed"] == 41 and info["alarms_on_validation"] <= 41
    assert alarm_count(scores[:2000], thr, np.zeros(2000), AlarmRule()) == info["alarms_on_validation"]


def test_tail_threshold_holds_the_rate_with_its_confidence_on_a_week_of_validation():
    from tinyml.train.alarm_rate import CONFIDENCE, tail_threshold

    # Pareto scores (log score exponential, the tail's model): P(score > 1 / p) = p exactly, so a threshold
    # below 1 / p lets more than the asked share of windows through
    rng, p = np.random.default_rng(1), 0.004
    weeks = np.exp(rng.exponential(1.0, (400, 400)))  # 400 validation sets of 400 windows (8 days, 30-minute hops)
    held = np.mean([tail_threshold(w, per_window=p) >= 1 / p for w in weeks])
    estimate = np.mean([tail_threshold(w, per_window=p, confidence=0.5) >= 1 / p for w in weeks])
    assert CONFIDENCE - 0.07 <= held <= CONFIDENCE + 0.05  # the TAIL quantile's own noise takes a few points
    assert estimate < 0.6  # the slope's estimate alone: the asked rate is exceeded about half the time


def test_false_alarm_rate_threshold_needs_an_anomaly_model_on_timestamped_data(tmp_path):
    ds = import_data([log_csv(tmp_path / "log.csv", five_minutes(240))], opts(val=0.2, test=0.2))
    plain = tmp_path / "plain.npz"
    ds.__class__(ds.x, ds.y, ds.classes, ds.channels, ds.fs, ds.split, ds.groups, ds.kind, ds.normal_class,
                 ds.meta).save(plain)
    proc = run_cli("train", plain, "--model", "autoencoder", "--false-alarms-per-day", "0.5", "--out", tmp_path / "r")
    assert_clean_error(proc, "needs window times")
    proc = run_cli("train", plain, "--model", "autoencoder", "--false-alarms-per-day", "-1", "--out", tmp_path / "r")
    assert_clean_error(proc, "false-alarms-per-day")
