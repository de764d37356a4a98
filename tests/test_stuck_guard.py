"""The stuck guard (tinyml/train/stuck_guard.py): repeats counted on the device's integer samples, its bound from
training, refusals of bad options and stale model.json, and the same count in C (tinyml_features_int.c) as in
Python; then ``detect`` on a log with a frozen probe, and on the emulated boards the firmware's decide() folding
it as hil.decide does."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, raise_threshold, run_cli
from tests.intfeat_c import IntFeaturesLib
from tinyml.errors import InputError
from tinyml.train.stuck_guard import StuckGuard, repeats

IMPORT = ["--time-column", "timestamp", "--label", "normal", "--normal-class", "normal", "--kind", "temperature",
          "--window", "24", "--hop", "6", "--split", "time"]


def test_repeats_count_the_longest_run_of_equal_neighbours_on_any_channel() -> None:
    q = np.array([[[1, 0], [1, 5], [1, 5], [2, 5], [2, 5], [3, 5]],
                  [[1, 0], [2, 0], [3, 0], [4, 1], [5, 1], [6, 2]]])
    assert repeats(q).tolist() == [4, 2]
    assert repeats(q[:, :, 0]).tolist() == [2, 0]
    assert repeats(np.arange(6)[None]).tolist() == [0]


def test_the_bound_is_the_most_repeats_in_training_times_the_ratio() -> None:
    q = np.zeros((3, 24, 1), np.int64)
    q[:, :, 0] = np.arange(24)
    q[1, 5:10, 0] = 7  # 4 repeats
    g = StuckGuard.fit(q, 1.5)
    assert (g.seen, g.bound, g.window) == (4, 6, 24)
    assert g.over(np.array([6, 7, 10])).tolist() == [0, 1, 4]
    assert g.excess(np.array([5, 9])).tolist() == [0.0, 0.5]
    assert g.step_sum(600) == 100 and g.step_sum(3) == 1  # any excess lies above the threshold
    assert StuckGuard.fit(np.arange(24)[None, :, None], 1.0).bound == 1  # never a repeat: the first one fires


def test_a_guard_that_could_never_fire_is_refused() -> None:
    q = np.zeros((1, 24, 1), np.int64)
    q[0, 12:, 0] = np.arange(12)  # 11 repeats at the start
    with pytest.raises(InputError, match="could never fire"):
        StuckGuard.fit(q, 2.0)
    with pytest.raises(InputError, match="is no ratio"):
        StuckGuard.fit(q, 0.5)


@pytest.mark.parametrize("change, message", [
    ({"bound": 9}, "malformed"), ({"ratio": "x"}, "malformed"), ({"window": 48, "bound": 6}, "stale"),
    ({"seen": None}, "malformed")])
def test_a_malformed_or_stale_model_json_guard_is_refused(change: dict, message: str) -> None:
    good = {"ratio": 1.5, "window": 24, "seen": 4, "bound": 6}
    assert StuckGuard.from_info({"window": 24, "stuck_guard": good}).bound == 6
    with pytest.raises(InputError, match=message):
        StuckGuard.from_info({"window": 24, "stuck_guard": good | change})


@pytest.fixture(scope="module")
def stuck_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A temperature-series autoencoder with a stuck guard, trained on two machines' 6-day logs (events, gaps); and
    a third machine's log with a probe frozen for hours."""
    from tinyml.data.synth_series import SeriesOptions, synth_series, write_series

    base = tmp_path_factory.mktemp("stuck_run")
    logs = []
    for seed in (3, 4, 5):
        times, values, _ = synth_series(SeriesOptions(days=6.0, quiet_days=2.0, events_per_kind=1, gaps=2, seed=seed))
        logs.append(write_series(base / f"machine{seed}.csv", times, values))
    data, run = base / "series.npz", base / "run"
    for argv in (["data", "import", *logs[:2], *IMPORT, "--out", data],
                 ["train", data, "--model", "autoencoder", "--features", "temperature-series", "--epochs", "2",
                  "--stuck-guard", "1.5", "--quiet", "--out", run],
                 ["quantize", run, "--tolerance", "100"]):
        proc = run_cli(*argv)
        assert proc.returncode == 0, proc.stderr
    return run, data, logs[2]


def test_train_records_the_guard_and_refuses_it_where_it_cannot_count(stuck_run, tmp_path: Path) -> None:
    run, data, _ = stuck_run
    g = json.loads((run / "model.json").read_text())["stuck_guard"]
    assert g["ratio"] == 1.5 and g["window"] == 24 and g["seen"] >= 1 and g["bound"] == int(g["seen"] * 1.5)
    base = [data, "--model", "autoencoder", "--epochs", "1", "--quiet"]
    assert_clean_error(run_cli("train", *base, "--features", "temperature", "--arithmetic", "float64",
                               "--stuck-guard", "1.5", "--out", tmp_path / "a"), "--stuck-guard", "integer")
    assert_clean_error(run_cli("train", *base, "--stuck-guard", "0.5", "--out", tmp_path / "b"), "no ratio")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_metrics_and_the_quantize_report_score_with_it(stuck_run) -> None:
    """train's metrics.json and quantize's float report fold the same stuck excess into the same scores."""
    run, _, _ = stuck_run
    metrics = json.loads((run / "metrics.json").read_text())
    report = json.loads((run / "quantization.json").read_text())["float"]
    for key in ("threshold", "accuracy", "auc", "score_histogram"):
        assert report.get(key) == metrics.get(key), key


def test_detect_flags_every_window_past_the_bound(stuck_run) -> None:
    """The third machine's frozen probe: every window repeating more than the bound scores above the threshold,
    with the excess the guard gives, in both runtimes."""
    from tinyml.rundir import open_model, read_model_info
    from tinyml.train.detect import DetectOptions, detect, score_series
    from tinyml.train.stuck_guard import samples

    run, _, log = stuck_run
    g = StuckGuard.from_info(read_model_info(run))
    pre = open_model(run).preprocess()
    for model in (run, run / "model_int8.tflite"):
        s = score_series(model, log, DetectOptions())
        r = repeats(samples(pre, s.windows))
        over = r > g.bound
        assert 3 <= np.count_nonzero(over) < len(r) // 2  # the frozen hours, not the rest
        threshold = s.summary["threshold"]
        assert np.all(s.guarded[over] >= threshold * (1 + (r[over] - g.bound) / g.bound) - 1e-12)
        assert np.all(s.scores[over] > threshold)
        assert np.array_equal(s.guarded[~over], s.errors[~over])  # no input guard: the rest scores unchanged
        assert np.array_equal(s.faults, over)  # the device labels them sensor faults ...
        events, summary = detect(model, log, DetectOptions())
        assert summary["sensor_fault_windows"] == np.count_nonzero(over)
        first = float(s.ends[np.argmax(over)])  # ... and the first of them raises the alarm at once
        assert [e.opened_by for e in events if e.start == first] == ["sensor_fault"]


def test_c_counts_the_repeats_and_the_excess_as_python(stuck_run, tmp_path: Path) -> None:
    """tinyml_features_int.c, built on the host: ``tinyml_ifeat_repeats`` and, after each window's features,
    ``tinyml_ifeat_stuck_over``, on the log's windows and on frozen ones of every length."""
    from tinyml.data.features_int import to_samples
    from tinyml.rundir import int8_model

    run, data, _ = stuck_run
    model = int8_model(run)
    pre, g = model.preprocess(), model.stuck()
    with np.load(data) as z:
        x = z["x"][:120].astype(np.float32)
    frozen = np.repeat(x[:1], 23, axis=0)
    for k in range(23):
        frozen[k, 23 - k:, 0] = frozen[k, 23 - k, 0]  # the last k samples repeat the one before
    x = np.concatenate([x, frozen])
    lib = IntFeaturesLib(tmp_path, mode="features", window=pre.window, channels=pre.channels, fs=pre.fs,
                         sample_shift=pre.sample_shift, mean=pre.mean, std=pre.std, in_scale=model.in_scale,
                         zero_point=model.in_zp, spec=pre.feature_spec, stuck=g)
    q = to_samples(x, pre.sample_shift)
    lib.lib.tinyml_ifeat_repeats.restype = ctypes.c_uint32
    lib.lib.tinyml_ifeat_stuck_over.restype = ctypes.c_uint32
    c_repeats = [lib.lib.tinyml_ifeat_repeats(np.ascontiguousarray(w, np.int16).ctypes.data_as(ctypes.c_void_p),
                                              pre.window, len(pre.channels)) for w in q]
    assert c_repeats == repeats(q).tolist() and max(c_repeats) == 22
    values = np.zeros(4096, np.int64)
    over = []
    for w in x:
        lib.lib.tinyml_ifeat_window_values(np.ascontiguousarray(w).ctypes.data_as(ctypes.c_void_p),
                                           values.ctypes.data_as(ctypes.c_void_p))
        over.append(lib.lib.tinyml_ifeat_stuck_over())
    assert over == g.over(repeats(q)).tolist() and sum(v > 0 for v in over) >= 22 - g.bound


@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_the_device_folds_the_guard_as_python(stuck_run, tmp_path: Path) -> None:
    """Validate on the emulated Cortex-M4 with the threshold raised above every reconstruction error: the device's
    labels are the stuck guard's alone, and validate's host labels (hil.decide) the same."""
    from tinyml.device import protocol
    from tinyml.firmware.boards import load_board
    from tinyml.firmware.build import ELF_NAME
    from tinyml.hil import (
        DeviceSession,
        as_classes,
        build_firmware,
        decide,
        emulated_link,
        prepare_inputs,
        run_validation,
    )
    from tinyml.rundir import int8_model
    from tinyml.train.stuck_guard import samples

    run, data, log = stuck_run
    high = tmp_path / "run"
    high.mkdir()
    for f in run.iterdir():
        if f.is_file():
            (high / f.name).write_bytes(f.read_bytes())
    raise_threshold(high)
    frozen = tmp_path / "frozen.npz"
    assert run_cli("data", "import", log, *IMPORT, "--out", frozen).returncode == 0
    model = int8_model(high)
    tests = prepare_inputs(model, frozen, None, None)
    pre = model.preprocess()
    over = model.stuck().over(repeats(samples(pre, tests.windows.reshape(-1, pre.window, len(pre.channels)))))
    assert 3 <= np.count_nonzero(over) < len(over) // 2
    board = load_board("qemu-mps2-an386")
    build_firmware(board, model, tmp_path / "fw")
    with emulated_link(board, tmp_path / "fw" / ELF_NAME, 1.0) as link:
        outputs, results = run_validation(DeviceSession(link, 1.0), model, tests)
    labels = np.array([r.label for r in results])
    assert np.array_equal(labels, np.where(over > 0, protocol.LABEL_SENSOR_FAULT, 0))  # a sensor fault's own label
    assert np.array_equal(labels, decide(model, tests.x, outputs, tests.slope, tests.windows))
    assert np.array_equal(as_classes(model, labels), (over > 0).astype(np.int64))  # an anomaly, for accuracy


def test_the_emulated_device_folds_the_guard_on_the_window_it_read(stuck_run) -> None:
    from tinyml.device.emulated_model import DeviceModel
    from tinyml.device.protocol import LABEL_SENSOR_FAULT

    run, _, _ = stuck_run
    model = DeviceModel(run)
    window = model.normal_windows[0].copy()
    x = model._quantize(window[None])[0].tobytes()
    plain = model.infer(x)
    window[:] = window[0]  # frozen from its first sample on
    frozen = model.infer(x, window)
    assert frozen.label == LABEL_SENSOR_FAULT and frozen.score > model.info.threshold >= 0
    assert frozen.output == plain.output and plain.label != LABEL_SENSOR_FAULT
