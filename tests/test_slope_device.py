"""The slope guard on a device: a run trained with --slope-guard validated on the emulated boards, the firmware's C
(tinyml_slope.c in the run loop's state, folded in decide()) giving every window the label and score Python's
integers give it (hil.decide, slope_guard.Tables), across gaps (restarts), a second stream and CUSUM crossings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import raise_threshold, run_cli
from tests.test_validate import EMULATED
from tinyml.firmware.boards import load_board
from tinyml.firmware.build import ELF_NAME
from tinyml.hil import DeviceSession, build_firmware, decide, emulated_link, prepare_inputs, run_validation
from tinyml.rundir import int8_model

pytestmark = [pytest.mark.qemu, pytest.mark.cross_compiler]

IMPORT = ["--time-column", "timestamp", "--label", "normal", "--normal-class", "normal", "--kind", "temperature",
          "--window", "24", "--hop", "6", "--split", "time"]


@pytest.fixture(scope="module")
def slope_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two machines' 6-day logs with events and gaps; a temperature-series autoencoder with a slope guard quick to
    fire (k 0.5, h 2), its threshold raised above every reconstruction error, so the slope guard alone decides."""
    from tinyml.data.synth_series import SeriesOptions, synth_series, write_series

    base = tmp_path_factory.mktemp("slope_run")
    logs = []
    for seed in (3, 4):
        times, values, _ = synth_series(SeriesOptions(days=6.0, quiet_days=2.0, events_per_kind=1, gaps=2, seed=seed))
        logs.append(write_series(base / f"machine{seed}.csv", times, values))
    data, run = base / "series.npz", base / "run"
    for argv in (["data", "import", *logs, *IMPORT, "--out", data],
                 ["train", data, "--model", "autoencoder", "--features", "temperature-series", "--epochs", "2",
                  "--slope-guard", "--slope-k", "0.5", "--slope-h", "2", "--quiet", "--out", run],
                 ["quantize", run, "--tolerance", "100"]):
        proc = run_cli(*argv)
        assert proc.returncode == 0, proc.stderr
    raise_threshold(run)
    return run, data


@pytest.mark.parametrize("board_name", EMULATED)
def test_the_device_labels_and_scores_every_window_as_python(board_name: str, slope_run, tmp_path: Path) -> None:
    """On the four emulated cores (the lx106 without 64-bit division or multiply instructions)."""
    from tinyml.firmware.render import _decision_constants
    from tinyml.train.guard import guarded_sum

    run, data = slope_run
    model = int8_model(run)
    tables = model.slope()
    tests = prepare_inputs(model, data, None, None)
    over = tables.over(tests.slope)
    assert 0 < np.count_nonzero(over) < len(over) - 50  # the CUSUM crosses h, and falls back
    fresh = np.flatnonzero(np.r_[True, tests.series.slots[1:] != (tests.series.slots[:-1] + 1) % 48])
    assert fresh.size >= 4 and tests.series.starts.sum() == 2  # gaps restart it; two streams
    build_firmware(load_board(board_name), model, tmp_path / "fw")
    with emulated_link(load_board(board_name), tmp_path / "fw" / ELF_NAME, 1.0) as link:
        outputs, results = run_validation(DeviceSession(link, 1.0), model, tests)
    labels = np.array([r.label for r in results])
    assert np.array_equal(labels, (over > 0).astype(np.int64))  # the slope guard alone decides
    assert np.array_equal(labels, decide(model, tests.x, outputs, tests.slope))  # validate's host labels
    c = _decision_constants(model)
    divisor = np.float32(float(2**32) * model.output_bytes / (model.in_scale * model.in_scale))
    raised = np.array([np.float32(guarded_sum(0, int(min(v, 2**32 - 1)), c["threshold_sum"], c["slope_step_sum"]))
                       / divisor for v in over[over > 0]], np.float32)
    assert np.array_equal(np.array([r.score for r in results], np.float32)[over > 0], raised)


def test_validate_reports_the_device_agreeing_with_the_host(slope_run, tmp_path: Path) -> None:
    run, data = slope_run
    report_path = tmp_path / "report.json"
    proc = run_cli("validate", "--board", "qemu-mps2-an386", "--model", run, "--data", data, "--split", "all",
                   "--firmware", tmp_path / "fw", "--report", report_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert report["mismatches"] == 0 and report["device_computes_features"]
    assert report["device_labels_agree"] == 1.0 and 0 < report["accuracy"] < 1  # some windows labelled anomalous


def test_replay_labels_every_window_as_the_host(slope_run, tmp_path: Path) -> None:
    """`tinyml replay` to run-mode firmware (the replay sensor, TIME before each window, SERIES at each stream):
    the device's CUSUM steps with its run loop; its labels are the host's (hil.decide over the same CUSUM)."""
    import subprocess

    from tinyml.device.qemu import EmulatedBoard

    run, data = slope_run
    out = tmp_path / "fw"
    assert run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", run, "--out", out, "--sensor",
                   "replay").returncode == 0
    build = subprocess.run(["make", "-s", "MODE=run"], cwd=out, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    with EmulatedBoard(load_board("qemu-mps2-an386"), out / "build" / "firmware.elf") as emu:
        proc = run_cli("replay", "--port", emu.url, "--model", run, "--data", data, "--split", "all", "--json",
                       timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["identical"] == report["windows"] > 400
    assert report["device_labels"] == report["host_labels"] and 0 < sum(report["host_labels"]) < report["windows"]


def test_the_emulator_carries_the_cusum_as_the_firmware(slope_run) -> None:
    """An emulated device of the run in run mode: slots from boot, then TIME (a fresh stream) and windows every
    30 emulated minutes; each RESULT's label is Python's CUSUM over the windows it read, in their slots."""
    from tinyml.device import protocol as p
    from tinyml.device.emulated_model import DeviceModel
    from tinyml.device.emulator import EmulatedDevice, Faults
    from tinyml.train.slope_guard import samples

    run, _ = slope_run
    model = DeviceModel(run)
    device = EmulatedDevice(0, model, 0.0, 115200, Faults(), 0, 0.0)
    frames, windows = [], []
    for k, now in enumerate([0.0, 1.0, 2.0, *(10.0 + 1800.0 * np.arange(1, 40))]):
        if k == 3:
            device.receive(p.encode(p.Time(1_700_000_000 + 3 * 3600)), 10.0)
        frames.append(device._next_result_frame(float(now)))
        windows.append(device.ring[-1][2])  # the raw window it read (CAPTURE's ring)
    results = [e for f in frames for e in p.Decoder().feed(f) if isinstance(e, p.Result)]
    windows = np.stack(windows)
    assert len(windows) == len(results) == 42
    fresh = np.zeros(len(windows), bool)
    fresh[3] = True  # the first TIME starts the state afresh
    level = model.slope.run(samples(model._pre, windows), np.array(device.slots_used), fresh)
    labels = (model.slope.over(level) > 0).astype(int)
    assert [r.label for r in results] == labels.tolist() and 0 < labels.sum() < len(labels)
