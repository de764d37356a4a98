"""The slope guard (tinyml/train/slope_guard.py): its integers against the float definition, the CUSUM and its
restarts, train --slope-guard, detect, the device paths' host side, and malformed or stale entries refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cbuild import host_compile
from tests.conftest import assert_clean_error, run_cli
from tinyml.data.features_int import to_samples
from tinyml.data.features_series import DAY, stream_slots
from tinyml.errors import InputError
from tinyml.train.slope_guard import Settings, SlopeGuard, restarts

SHIFT = 8  # samples of 1/256 deg C


def ramp_guard(*, k: float, h: float) -> SlopeGuard:
    """A guard whose every slot reads slope 0 with spread 1 (deg C/h): z is the window's slope."""
    return SlopeGuard(tau_h=0.5, window=24, fs=1 / 300, hop=6, median=np.zeros(48), spread=np.ones(48),
                      settings=Settings(k=k, h=h, f_min=100.0))


def levels(g: SlopeGuard, windows: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The excess (S - h) / h of one device's windows [N, T] (deg C) in order, from their start times."""
    t = g.tables(SHIFT)
    q = to_samples(windows.astype(np.float32)[:, :, None], [SHIFT])[:, :, 0]
    return t.excess(t.run(q, stream_slots(starts, t.slots), np.zeros(len(q), bool)))


def slopes(g: SlopeGuard, windows: np.ndarray) -> np.ndarray:
    t = g.tables(SHIFT)
    return t.slopes(to_samples(windows.astype(np.float32)[:, :, None], [SHIFT])[:, :, 0]) / 2.0 ** (t.slope_bits + SHIFT)


def test_the_cusum_accumulates_the_slope_and_restarts_where_the_slots_jump():
    g = ramp_guard(k=1.5, h=4.0)
    t_h = g.t_h
    windows = np.stack([20 + 3.0 * t_h] * 6)  # a straight rise of 3 deg C/h: z = 3 per window, S grows by 1.5
    starts = 1.7e9 + np.arange(6) * 1800.0
    assert slopes(g, windows) == pytest.approx(np.full(6, 3.0), abs=1e-3)
    one = levels(g, windows, starts)
    assert np.count_nonzero(one) == 4 and one[2] == pytest.approx((4.5 - 4) / 4, abs=1e-3)  # S 1.5, 3, 4.5, ...
    assert one[5] == pytest.approx((9 - 4) / 4, abs=1e-3)
    gap = starts + np.array([0, 0, 0, 1, 1, 1]) * 1800.0  # a slot skipped after the third window: S starts afresh
    two = levels(g, windows, gap)
    assert np.count_nonzero(two[:3]) == 1 and not two[3:5].any() and two[5] > 0
    fresh = g.tables(SHIFT).run(to_samples(windows.astype(np.float32)[:, :, None], [SHIFT])[:, :, 0],
                                stream_slots(starts, 48), np.array([0, 0, 0, 1, 0, 0], bool))
    assert fresh[2] > fresh[3] and fresh[3] == fresh[0]  # a new stream (SERIES reset) restarts it too
    flat = levels(g, np.stack([20 + 1.4 * t_h] * 6), starts)  # z below k: never accumulates
    assert not flat.any()


def test_the_slack_judges_a_slope_against_the_usual_one_within_the_clocks_error():
    """A clock an hour off reads the 10:00 slope at 11:00: with an hour of slack that is no departure."""
    t_h = ramp_guard(k=1.5, h=4.0).t_h
    windows = np.stack([20 + 3.0 * t_h] * 6)  # 3 deg C/h, the usual slope at slot 20 (10:00) only
    starts = 1.7e9 - 1.7e9 % DAY + 11 * 3600.0 + np.arange(6) * 1800.0  # from 11:00: slots 22-27
    excess = {}
    for slack in (0.0, 1.0, 2.5):
        g = ramp_guard(k=1.5, h=4.0)
        g = SlopeGuard(**{**g.__dict__, "median": np.where(np.arange(48) == 20, 3.0, 0.0),
                          "settings": Settings(k=1.5, h=4.0, slack_h=slack)})
        excess[slack] = levels(g, windows, starts)
    assert np.count_nonzero(excess[0.0]) == 4  # its own slot's median: z = 3 window after window, as a drift
    assert np.count_nonzero(excess[1.0]) == 3  # slot 22 reaches back to 20 (z 0); slots 23 on do not
    assert not excess[2.5].any()  # 5 slots either way: z 0 up to slot 25, then S 1.5, 3: under h


def test_a_run_from_before_the_slack_scores_as_before():
    g = ramp_guard(k=1.5, h=4.0)
    info = {"window": 24, "fs": 1 / 300, "slope_guard": g.to_json()}
    assert info["slope_guard"]["slack_h"] == 1.0 and SlopeGuard.from_info(info).settings.slack_h == 1.0
    del info["slope_guard"]["slack_h"]
    assert SlopeGuard.from_info(info).settings.slack_h == 0.0


def test_a_switch_fit_takes_the_lags_transient_out_of_the_slope():
    """A window whose load switches on inside it: the plain fit reads a steep slope, the switch fit the drive's."""
    g = ramp_guard(k=1.5, h=4.0)
    t = g.t_h
    switch = t[10]
    w = 20 + 0.2 * t + np.where(t > switch, 10 * (1 - np.exp(-(t - switch) / g.tau_h)), 0.0)
    assert slopes(g, w[None])[0] == pytest.approx(0.2, abs=0.01)  # samples of 1/256 deg C
    t8 = g.tables(SHIFT)
    q = to_samples(w.astype(np.float32)[None, :, None], [SHIFT])[0, :, 0]
    assert (q - q[0]) @ t8.slope / 2.0 ** (t8.slope_bits + SHIFT) > 2.0  # the plain fit's row


def synth_windows(seed: int, days: float = 24.0) -> tuple[np.ndarray, np.ndarray]:
    """Windows of 24 samples every 30 minutes of a synthetic machine log with events, and their start times."""
    from tinyml.data.synth_series import SeriesOptions, synth_series

    times, values, _ = synth_series(SeriesOptions(days=days, quiet_days=days - 6, events_per_kind=2, seed=seed))
    idx = np.arange(0, len(values) - 24, 6)
    idx = idx[times[idx + 23] - times[idx] == 23 * 300]  # no window across a gap
    return np.stack([values[i:i + 24] for i in idx]).astype(np.float32), times[idx]


def test_the_integers_are_the_float_definition_within_a_millionth_of_a_degree_an_hour():
    """On a synthetic log's windows (switches, events, weather) the integer slope is the float64 least-squares
    fit's on the same samples within 1e-6 deg C/h (F decisions alike), z within 1e-4 and S within 1e-3."""
    from tinyml.train.slope_guard import fits

    x, starts = synth_windows(3)
    g = SlopeGuard.fit(x[:600], starts[:600], fs=1 / 300, hop=6, sample_shift=9, settings=Settings())
    t = g.tables(9)
    q = to_samples(x[:, :, None], [9])[:, :, 0]
    b, ss, best_b, best_ss = fits(q / 512.0, g.t_h, g.tau_h)
    f = (ss - best_ss) / np.maximum(best_ss, 1e-12) * 19
    assert 0.05 < np.mean(f > 100) < 0.95  # both fits are taken
    want = np.where(f > 100, best_b, b)
    assert np.abs(t.slopes(q) / 2.0 ** (t.slope_bits + 9) - want).max() < 1e-6
    sl = stream_slots(starts, 48)
    j = 2  # an hour of slack
    top = np.max([g.median[(sl + d) % 48] for d in range(-j, j + 1)], axis=0)
    z = (want - top) / g.spread[sl]
    assert np.abs(t.z(q, sl) / 65536.0 - z).max() < 1e-4
    level, s = [], 0.0
    restart = restarts(sl, np.zeros(len(sl), bool), 48)
    for i, zi in enumerate(z):
        s = max(0.0, (0.0 if restart[i] else s) + zi - 0.75)
        level.append(s)
    assert restart.sum() > 3 and np.max(level) > 8  # gaps restart it, and it crosses h
    assert np.abs(t.run(q, sl, np.zeros(len(sl), bool)) / 65536.0 - np.array(level)).max() < 1e-3


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    from tinyml.data.synth_series import SeriesOptions, synth_series, write_intervals, write_series

    tmp = tmp_path_factory.mktemp("slope")
    times, values, events = synth_series(SeriesOptions(days=22.0, quiet_days=14.0, events_per_kind=1, seed=4))
    cut = int(np.searchsorted(times, times[0] + 14 * DAY))
    write_series(tmp / "history.csv", times[:cut], values[:cut])
    test = write_series(tmp / "test.csv", times[cut:], values[cut:])
    data = tmp / "h.npz"
    ok = run_cli("data", "import", tmp / "history.csv", "--time-column", "timestamp", "--label", "normal",
                 "--normal-class", "normal", "--kind", "temperature", "--window", "24", "--hop", "6", "--split",
                 "time", "--out", data)
    assert ok.returncode == 0, ok.stderr
    run = tmp / "run"
    ok = run_cli("train", data, "--model", "autoencoder", "--features", "temperature-series", "--epochs", "3",
                 "--false-alarms-per-day", "0.5", "--slope-guard", "--quiet", "--out", run)
    assert ok.returncode == 0, ok.stderr
    assert "slope guard: thermal lag" in ok.stdout and "48 slots a day (`tinyml detect` and the device's" in ok.stdout
    ok = run_cli("quantize", run)
    assert ok.returncode == 0, ok.stderr
    return tmp, data, run, test, write_intervals(tmp / "labels.csv", events), events


def run_with(run, dest, info: dict):
    """A copy of the run's files with ``info`` as its model.json."""
    dest.mkdir()
    for f in run.iterdir():
        if f.is_file():
            (dest / f.name).write_bytes(f.read_bytes())
    (dest / "model.json").write_text(json.dumps(info))
    return dest


def test_train_stores_the_slope_guard_and_detect_applies_it(series, tmp_path):
    from tinyml.train.detect import DetectOptions, alarm_events, score_series

    tmp, _, run, test, labels, events = series
    info = json.loads((run / "model.json").read_text())
    g = info["slope_guard"]
    assert (g["window"], g["hop"], g["k"], g["h"], g["f_min"], g["slack_h"]) == (24, 6, 0.75, 8.0, 100.0, 1.0)
    assert len(g["median"]) == len(g["spread"]) == 48 and min(g["spread"]) > 0  # 30-minute slots
    assert 10 / 60 <= g["tau_h"] <= 3.0 and info["options"]["slope_guard"] is True

    o = DetectOptions()
    s = score_series(run, test, o)
    threshold = s.summary["threshold"]
    raised = s.scores > s.guarded
    assert raised.any() and np.all(s.scores[raised] > threshold) and np.all(s.scores >= s.guarded)
    drift = next(e for e in events if e.kind == "drift")
    ends = s.ends[raised]
    assert np.any((ends > drift.start) & (ends <= drift.end + 86400))  # the CUSUM rises during the drift
    det = run_cli("detect", run, test, "--labels", labels, "--out", tmp_path / "events.csv")
    assert det.returncode == 0, det.stderr
    assert f"{s.summary['slope_guard_windows']} by the slope guard alone ->" in det.stdout

    # the same run without the field scores as the guarded score alone, and its alarms differ
    info.pop("slope_guard")
    plain = run_with(run, tmp_path / "plain", info)
    p = score_series(plain, test, o)
    assert np.array_equal(p.scores, s.guarded) and "by the slope guard" not in run_cli(
        "detect", plain, test, "--out", tmp_path / "plain.csv").stdout
    with_it = alarm_events(s.scores, threshold, s.ends, s.which, o)
    without = alarm_events(p.scores, threshold, p.ends, p.which, o)
    assert [e.start for e in with_it] != [e.start for e in without]
    assert_clean_error(run_cli("detect", run, test, "--hop", "3", "--out", tmp_path / "e.csv"),
                       "slope guard judges windows of hop 6")
    scored = run_cli("predict", run, series[1], "--out", tmp_path / "scores.csv")
    assert scored.returncode == 0 and "without the run's slope guard" in scored.stdout, scored.stderr


@pytest.mark.parametrize("change, why", [
    (lambda g: g.update(median=g["median"][:-1]), "malformed"),
    (lambda g: g.update(spread=[0.0] * len(g["spread"])), "malformed"),
    (lambda g: g.pop("tau_h"), "malformed"),
    (lambda g: g.update(h=-1), "malformed"),
    (lambda g: g.update(window=12), "stale"),
])
def test_a_malformed_or_stale_slope_guard_is_refused(series, tmp_path, change, why):
    _, _, run, test, _, _ = series
    info = json.loads((run / "model.json").read_text())
    change(info["slope_guard"])
    bad = run_with(run, tmp_path / "bad", info)
    assert_clean_error(run_cli("detect", bad, test, "--out", tmp_path / "e.csv"), why, "re-run `tinyml train`")
    assert not (tmp_path / "e.csv").exists()
    assert_clean_error(run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", bad, "--out",
                               tmp_path / "fw"), why, "re-run `tinyml train`")  # the device paths refuse it alike
    assert not (tmp_path / "fw").exists()


def test_a_slope_guard_on_features_that_are_not_integer_daily_cycle_ones_is_refused(series):
    """(The run's fingerprints refuse an edited preprocess.json first; the check stands for a run made otherwise.)"""
    from dataclasses import replace

    from tinyml.preprocess import Preprocess
    from tinyml.train.slope_guard import run_tables

    run = series[2]
    info, pre = json.loads((run / "model.json").read_text()), Preprocess.from_run(run)
    assert run_tables(info, pre) is not None
    with pytest.raises(InputError, match="not integer daily_cycle ones"):
        run_tables(info, replace(pre, arithmetic="float64"))


def test_the_device_paths_fold_the_slope_guard_as_detect_does(series, tmp_path):
    """validate/replay's host labels (hil.decide over the CUSUM of the windows in data order) and the emulator's
    run loop carry the same integers as detect; firmware renders the tables; the int8 model detects too."""
    from tinyml.device.emulated_model import DeviceModel
    from tinyml.firmware.render import _decision_constants
    from tinyml.hil import decide, prepare_inputs
    from tinyml.rundir import int8_model
    from tinyml.train.slope_guard import SlopeState, samples

    tmp, data, run, test, _, _ = series
    model = int8_model(run)
    tables = model.slope()
    inputs = prepare_inputs(model, data, "test", None)
    assert inputs.slope is not None and inputs.slope.shape == (inputs.x.shape[0],)
    x = inputs.windows.reshape(-1, 24, 1)
    state, carried = SlopeState(tables), []
    for i, w in enumerate(x):  # one window at a time, as the emulator and the C carry it
        if inputs.series.starts[i]:
            state.reset()
        carried.append(state.step(samples(model.preprocess(), w[None])[0], int(inputs.series.slots[i])))
    assert np.array_equal(carried, inputs.slope)
    outputs = np.full((inputs.x.shape[0], model.output_bytes), model.out_zp, np.int8)
    high = np.zeros(inputs.x.shape[0], np.int64)
    high[::7] = tables.h + 1  # S just above h: anomalous whatever the reconstruction error
    assert np.array_equal(decide(model, inputs.x, outputs, high)[high > 0], np.ones(np.count_nonzero(high), np.int64))
    assert DeviceModel(run).slope is not None
    fw = run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", run, "--out", tmp_path / "fw")
    assert fw.returncode == 0, fw.stderr
    config = next((tmp_path / "fw").rglob("tinyml_features_int_config.h")).read_text()
    assert "#define TINYML_IFEAT_SLOPE 1" in config and f"INT64_C({tables.h})" in config
    c = _decision_constants(model)
    assert c["slope_step_sum"] == max(1, c["threshold_sum"] // tables.h) and f"TINYML_SLOPE_STEP_SUM " \
        f"{c['slope_step_sum']}ull" in next((tmp_path / "fw").rglob("tinyml_config.h")).read_text()
    s8 = run_cli("detect", run / "model_int8.tflite", test, "--out", tmp_path / "e8.csv")
    assert s8.returncode == 0 and "by the slope guard alone" in s8.stdout, s8.stderr
    out = tmp_path / "c"  # the preprocessing exported for a user's own project carries it too, and compiles
    assert run_cli("codegen", run / "model_int8.tflite", "--out", out, "--preprocess", run).returncode == 0
    assert (out / "tinyml_slope.c").exists() and "TINYML_IFEAT_SLOPE" in (out / "tinyml_features_int_config.h").read_text()
    for src in ("tinyml_run.c", "tinyml_features_int.c", "tinyml_series.c", "tinyml_slope.c"):
        host_compile([out / src], tmp_path / f"{src}.o", obj=True, includes=[out])


def test_a_slot_of_the_day_without_training_windows_is_refused():
    t_h = np.arange(24) * 300 / 3600
    windows = np.stack([20 + 0.1 * t_h] * 40)
    starts = 1.7e9 + np.arange(40) * 1800.0  # 20 hours: 8 of 48 slots never seen
    with pytest.raises(InputError, match="8 of the 48 slots of the day have no training window"):
        SlopeGuard.fit(windows, starts, fs=1 / 300, hop=6, sample_shift=8, settings=Settings())


def test_bad_slope_options_are_refused(series, tmp_path):
    _, data, _, _, _, _ = series
    for args, why in ((["--slope-k", "2"], "add --slope-guard"), (["--slope-guard", "--slope-h", "0"], "--slope-h 0"),
                      (["--slope-guard", "--slope-k", "nan"], "--slope-k nan"),
                      (["--slope-guard", "--slope-slack", "-1"], "--slope-slack -1")):
        assert_clean_error(run_cli("train", data, "--model", "autoencoder", *args, "--out", tmp_path / "r"), why)
    assert_clean_error(run_cli("train", data, "--model", "mlp", "--slope-guard", "--out", tmp_path / "r"),
                       "a classifier has none")
    assert not (tmp_path / "r").exists()
