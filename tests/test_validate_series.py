"""`validate` of a run whose features keep state across windows (`temperature-series`, daily_cycle):
windows in data order, the device's state placed by SERIES, every output byte compared with TFLM over
Python's inputs; a device whose state goes wrong is caught, not passed. Real firmware, QEMU, TFLM."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, raise_threshold, run_cli
from tests.test_validate import EMULATED, CorruptingProxy, qemu_pids
from tinyml.device.qemu import EmulatedBoard
from tinyml.firmware.boards import load_board
from tinyml.firmware.build import ELF_NAME
from tinyml.hil import (
    DeviceSession,
    SeriesPlaces,
    ValidationInputs,
    build_firmware,
    emulated_link,
    host_reference,
    prepare_inputs,
    run_validation,
    validate,
)
from tinyml.rundir import int8_model

pytestmark = [pytest.mark.qemu, pytest.mark.cross_compiler]

IMPORT = ["--time-column", "timestamp", "--label", "normal", "--normal-class", "normal", "--kind", "temperature",
          "--window", "24", "--hop", "6", "--split", "time"]  # 2-hour windows every 30 minutes: 48 slots a day


def write_logs(folder: Path, days: float = 5.0) -> list[Path]:
    """Two machines' 5-minute logs, each with gaps (two groups, slots jumping after each gap)."""
    from tinyml.data.synth_series import SeriesOptions, synth_series, write_series

    paths = []
    for seed in (1, 2):
        times, values, _ = synth_series(SeriesOptions(days=days, events_per_kind=0, gaps=2, seed=seed))
        paths.append(write_series(folder / f"machine{seed}.csv", times, values))
    return paths


@pytest.fixture(scope="module")
def series_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small temperature-series autoencoder (2 epochs: plumbing, not accuracy) and its dataset."""
    return train_series(tmp_path_factory.mktemp("series_run"), IMPORT)


def train_series(base: Path, imports: list[str], days: float = 5.0) -> tuple[Path, Path]:
    """The two machines' logs imported with ``imports``, a temperature-series autoencoder trained on them and
    quantized: the run and its dataset."""
    data, run = base / "series.npz", base / "run"
    proc = run_cli("data", "import", *write_logs(base, days), *imports, "--out", data)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("train", data, "--model", "autoencoder", "--features", "temperature-series", "--epochs", "2",
                   "--quiet", "--out", run)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("quantize", run, "--tolerance", "100")
    assert proc.returncode == 0, proc.stderr
    return run, data


@pytest.fixture(scope="module")
def m4_elf(series_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("series_fw") / "fw"
    build_firmware(load_board("qemu-mps2-an386"), int8_model(series_run[0]), out)
    return out / ELF_NAME


def test_inputs_are_windows_in_data_order_with_their_places(series_run) -> None:
    """All windows by group then time; a stream starts at each group, a gap sets the slot; --limit keeps the
    first windows in that order; the inputs are Python's over exactly the windows sent."""
    from tinyml.data.dataset import load

    run, data = series_run
    model = int8_model(run)
    tests = prepare_inputs(model, data, None, None)
    ds = load(data)
    order = np.lexsort((ds.times, ds.groups))
    assert np.array_equal(tests.windows, ds.x[order].reshape(ds.n, -1))
    places = tests.series
    assert places is not None and places.per_day == 48
    assert places.starts.sum() == 2 and places.starts[0]
    summary = places.summary()
    assert summary["streams"] == 2 and summary["gaps"] >= 4  # two gaps a machine, and the split boundaries
    step = np.diff(ds.times[order])
    jumps = [i + 1 for i in np.flatnonzero(step != 1800.0) if not places.starts[i + 1]]
    assert jumps and all(places.frame(i) == places.frame(i) and not places.frame(i).reset for i in jumps)
    first = prepare_inputs(model, data, None, 30)
    assert np.array_equal(first.windows, tests.windows[:30]) and "first 30 of" in first.source
    assert np.array_equal(first.x, tests.x[:30])  # fresh state at the first window either way
    later = prepare_inputs(model, data, "test", None)  # the test split alone: its own streams, state fresh
    pre = model.preprocess()
    test = ds.subset("test")
    o = np.lexsort((test.times, test.groups))
    assert np.array_equal(later.x, pre.int8_inputs(test.x[o], model.in_scale, model.in_zp,
                                                   stream=test.take(o).stream()))


@pytest.mark.parametrize("board_name", EMULATED)
def test_stateful_run_validates_with_zero_mismatches(board_name: str, series_run, tmp_path: Path) -> None:
    """Every window of both machines (gaps, a second stream) through the device's C state: 0 mismatches."""
    run, data = series_run
    report_path = tmp_path / "report.json"
    proc = run_cli("validate", "--board", board_name, "--model", run, "--data", data, "--split", "all",
                   "--firmware", tmp_path / "fw", "--report", report_path)
    assert proc.returncode == 0, proc.stderr
    assert "state across windows kept by the device: 2 stream(s) begun" in proc.stdout
    report = json.loads(report_path.read_text())
    assert report["mismatches"] == 0 and report["inputs"] > 300 and report["device_computes_features"]
    assert report["series"]["streams"] == 2 and report["series"]["gaps"] >= 4
    assert report["device_labels_agree"] == 1.0
    assert not qemu_pids(str(tmp_path))


def _outputs(session: DeviceSession, model, tests: ValidationInputs) -> np.ndarray:
    return run_validation(session, model, tests)[0]


def test_a_device_whose_state_goes_wrong_is_caught(series_run, m4_elf: Path) -> None:
    """On one booted device: the windows as they must go (0 mismatches); again without SERIES (the state
    of the first pass is not reset, the device's slot count runs through the gaps); two windows swapped;
    the gaps ignored; then right again (the reset really forgets). Each wrong state shows as mismatches,
    also in windows after the fault."""
    run, data = series_run
    model = int8_model(run)
    tests = prepare_inputs(model, data, None, 160)
    assert tests.series is not None and tests.series.summary()["gaps"] >= 1
    reference = host_reference(model, tests.x)
    swapped = tests.windows.copy()
    swapped[[10, 11]] = swapped[[11, 10]]
    first = tests.series
    counting = SeriesPlaces((first.slots[0] + np.arange(first.slots.size)) % first.per_day, first.starts,
                            first.per_day)
    with emulated_link(load_board("qemu-mps2-an386"), m4_elf, 1.0) as link:
        session = DeviceSession(link, 1.0)
        right = _outputs(session, model, tests)
        no_reset = _outputs(session, model, replace(tests, series=None))
        out_of_order = _outputs(session, model, replace(tests, windows=swapped))
        no_gaps = _outputs(session, model, replace(tests, series=counting))
        again = _outputs(session, model, tests)
    assert np.array_equal(right, reference) and np.array_equal(again, reference)
    for wrong in (no_reset, out_of_order, no_gaps):
        bad = np.flatnonzero((wrong != reference).any(axis=1))
        assert bad.size > 0
    bad_order = np.flatnonzero((out_of_order != reference).any(axis=1))
    assert bad_order.min() >= 10 and bad_order.max() > 11  # the state carries the swap on
    gap = int(np.flatnonzero([first.frame(i) is not None and not first.frame(i).reset
                              for i in range(first.slots.size)])[0])
    bad_gaps = np.flatnonzero((no_gaps != reference).any(axis=1))
    assert bad_gaps.min() >= gap  # right up to the first gap, wrong after it


def test_a_garbled_line_does_not_step_the_state_twice(series_run, m4_elf: Path) -> None:
    """Garbled frames both ways: lost RESULTs make the host resend INFER, which the device answers without
    preprocessing the window again (that would step its state twice); lost SERIES ACKs resend SERIES."""
    run, data = series_run
    model = int8_model(run)
    tests = prepare_inputs(model, data, None, 120)
    board = load_board("qemu-mps2-an386")
    with EmulatedBoard(board, m4_elf) as emu:
        proxy = CorruptingProxy(emu.port, every_down=401, every_up=97)
        report = validate(board, model, tests, port=f"socket://127.0.0.1:{proxy.port}", timeout=0.3)
    assert proxy.flipped["down"] > 0 and proxy.flipped["up"] > 0
    assert report.bad_frames > 0 and report.retries > report.device_rx_errors  # some RESULTs lost on the way up
    assert report.mismatches == 0, report.first_mismatches


def test_stateful_validate_bad_inputs(series_run, tmp_path: Path) -> None:
    """Windows without times cannot be placed."""
    from tinyml.data.dataset import load

    run, data = series_run
    ds = load(data)
    ds.times = None
    untimed = ds.save(tmp_path / "untimed.npz")
    assert_clean_error(run_cli("validate", "--board", "qemu-mps2-an386", "--model", run, "--data", untimed),
                       "needs each window's time")
    assert not (tmp_path / "fw").exists()


def test_replay_of_a_stateful_run_to_a_validation_build_fails_clearly(series_run, m4_elf: Path) -> None:
    """replay places each window with TIME, which only run-mode firmware takes: the validation build (which
    answers replay's HELLO_REQ and SERIES as any tinyml firmware does) refuses it with ERROR 4."""
    run, data = series_run
    with EmulatedBoard(load_board("qemu-mps2-an386"), m4_elf) as emu:
        proc = run_cli("replay", "--port", emu.url, "--model", run, "--data", data)
    assert_clean_error(proc, "answered TIME with error 4", "validation takes SERIES")


def test_tinyml_run_of_a_temperature_series_project_validates_on_the_device(tmp_path: Path) -> None:
    """The pipeline's validate stage takes the same path: a project with temperature-series features runs
    through validate (the test split's windows in data order) instead of being refused."""
    write_logs(tmp_path, days=4.0)
    (tmp_path / "tinyml.toml").write_text("\n".join([
        '[project]', 'name = "series"', 'out = "out"',
        '[data]', 'import = ["machine1.csv", "machine2.csv"]', 'time_column = "timestamp"', 'label = "normal"',
        'normal_class = "normal"', 'kind = "temperature"', 'window = 24', 'hop = 6', 'split = "time"',
        '[train]', 'model = "autoencoder"', 'features = "temperature-series"', 'epochs = 2',
        '[quantize]', 'tolerance = 100.0',
        '[firmware]', 'board = "qemu-mps2-an386"',
        '[validate]', 'limit = 20', '']))
    proc = run_cli("run", "--project", tmp_path / "tinyml.toml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert report["mismatches"] == 0 and report["inputs"] == 20 and report["series"]["streams"] >= 1
    assert "first 20 of" in report["data"] and "data order" in report["data"]


def test_the_device_refuses_a_slot_outside_the_day_and_stateless_firmware_refuses_series(
        series_run, m4_elf: Path, shared: Path, tmp_path: Path) -> None:
    """SERIES errors as docs/protocol.md gives them: ERROR 3 for a slot past the day (48 slots), ERROR 4
    from firmware whose preprocessing keeps no state; the slot inside the day is ACKed."""
    from tinyml.device import protocol as p
    from tinyml.errors import DeviceError

    board = load_board("qemu-mps2-an386")
    with emulated_link(board, m4_elf, 1.0) as link:
        session = DeviceSession(link, 1.0)
        session.hello()
        session.place(p.Series(1, 47))
        with pytest.raises(DeviceError, match="SERIES with error 3: slot outside the day"):
            session.place(p.Series(0, 48))
    bare = shared / "models" / "feat_ae_int8.tflite"  # model inputs go in: no state on the device
    build_firmware(board, int8_model(bare), tmp_path / "fw")
    with emulated_link(board, tmp_path / "fw" / ELF_NAME, 1.0) as link:
        session = DeviceSession(link, 1.0)
        session.hello()
        with pytest.raises(DeviceError, match="SERIES with error 4"):
            session.place(p.Series(1, 0))


def test_a_guarded_stateful_run_labels_on_the_device_as_on_the_host(tmp_path: Path) -> None:
    """--guard-margin 0 on a temperature-series run, its threshold raised above every reconstruction error: the
    input guard alone decides, over the daily_cycle state the device carries; every window of both machines
    gives the host's label (tinyml/train/guard.py in hil.decide, tinyml_guard.h in the firmware's decide())."""
    from tinyml.hil import decide
    from tinyml.train.guard import excess_int8

    data, run = tmp_path / "series.npz", tmp_path / "run"
    proc = run_cli("data", "import", *write_logs(tmp_path), *IMPORT, "--out", data)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("train", data, "--model", "autoencoder", "--features", "temperature-series", "--epochs", "2",
                   "--guard-margin", "0", "--quiet", "--out", run)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("quantize", run, "--tolerance", "100")
    assert proc.returncode == 0, proc.stderr
    raise_threshold(run)
    model = int8_model(run)
    tests = prepare_inputs(model, data, None, None)
    outside = excess_int8(tests.x, *model.guard().bounds_int8(model.in_scale, model.in_zp)) > 0
    assert outside.any() and not outside.all()  # windows on both sides of the envelope are sent
    assert np.array_equal(decide(model, tests.x, np.full_like(tests.x, model.out_zp)), outside)
    report_path = tmp_path / "report.json"
    proc = run_cli("validate", "--board", "qemu-mps2-an386", "--model", run, "--data", data, "--split", "all",
                   "--firmware", tmp_path / "fw", "--report", report_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert report["mismatches"] == 0 and report["inputs"] == len(outside)
    assert report["device_labels_agree"] == 1.0
