"""A stateful run whose training hop is longer than its window (`data import --window 12 --hop 36`: 1-hour windows
every 3 hours, 8 slots a day): its run-mode device reads a window, discards the next 24 samples the sensor delivers
and reads the next window, so its windows start a hop apart and its state steps as Python's does. The run loop under
host gcc, run-mode firmware on QEMU with the replay sensor, `tinyml replay` and the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.test_series_time import MIDNIGHT, _reference, _replay_firmware, _run_loop, _stream
from tests.test_validate_series import train_series
from tinyml.data.features_series import DAY, run_hop, stream_slots, window_span_ms
from tinyml.device import protocol as p
from tinyml.rundir import int8_model

WINDOW, HOP, SLOTS = 12, 36, 8
DAYS = 8.0  # of 5-minute samples a machine: about 60 windows each
IMPORT = ["--time-column", "timestamp", "--label", "normal", "--normal-class", "normal", "--kind", "temperature",
          "--window", str(WINDOW), "--hop", str(HOP), "--split", "time"]


@pytest.fixture(scope="module")
def long_hop_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small temperature-series autoencoder on windows cut every 36 samples (2 epochs: plumbing, not accuracy)."""
    run, data = train_series(tmp_path_factory.mktemp("long_hop_run"), IMPORT, DAYS)
    pre = int8_model(run).preprocess()
    assert (pre.window, run_hop(pre.feature_spec, pre.window, pre.fs)) == (WINDOW, HOP)
    return run, data


def test_the_run_loop_discards_the_samples_between_windows(long_hop_run, tmp_path: Path) -> None:
    """tinyml_run.c (host gcc): a window, then the 24 samples after it read (a window's worth at a time) and
    discarded, then the next window; frames due say so (36, 24, 12); a read lost while discarding or
    tinyml_run_restart() makes the next window read at once."""
    fw = tmp_path / "fw"
    assert run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", long_hop_run[0],
                   "--out", fw).returncode == 0
    rcs = [1, 0, 0, 1, 0, 0, 0, -1, 0, 0, 0, 0, 0]
    dues: list[int] = []
    sizes, windows = _run_loop(fw, tmp_path, WINDOW, rcs, restart_at=6, dues=dues)
    assert sizes == [WINDOW] * len(rcs)
    assert dues == [12, 12, 36, 24, 24, 12, 36, 24, 12, 12, 36, 24, 12]
    # 12..35 and 96..119 discarded; 48..59 discarded and 60..71 lost (the window after read at once); the restart
    # before the pass that reads 84..95 leaves nothing to discard
    starts = [0, 36, 72, 84, 120]
    assert np.array_equal(windows, [np.arange(s, s + WINDOW) for s in starts])


def _contiguous(run_data: tuple[Path, Path], n: int):
    """``n`` windows of the first machine a hop apart, the series they were cut from (the samples between them
    included: the machine's log) and their start times."""
    from tinyml.data.synth_series import SeriesOptions, synth_series

    model, windows, times = _stream(run_data, 10_000)
    steps = np.diff(times) == HOP * 300.0
    k = int(np.flatnonzero(np.convolve(steps, np.ones(n - 1, int), "valid") == n - 1)[0])
    windows, times = windows[k:k + n], times[k:k + n]
    log_times, values, _ = synth_series(SeriesOptions(days=DAYS, events_per_kind=0, gaps=2, seed=1))  # machine1
    first = int(np.flatnonzero(log_times == times[0])[0])
    series = values[first:first + (n - 1) * HOP + WINDOW].astype(np.float32)[:, None]
    return model, series, windows, times


@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_run_mode_firmware_reads_a_window_every_training_hop(long_hop_run, tmp_path: Path) -> None:
    """A machine's log fed to run-mode firmware (mps2-an386) as a sensor delivers it: the first window, then 36
    samples at a time (TIME before each window). Every output byte is TFLM's over Python's inputs for the windows
    cut every hop (the training dataset's), so the state steps once a hop; Python over the same series cut back to
    back (what the device read before it discarded the samples between windows) gives other bytes."""
    from tinyml.device.link import open_link
    from tinyml.device.qemu import EmulatedBoard
    from tinyml.device.replay import replay_window
    from tinyml.firmware.boards import load_board

    elf = _replay_firmware(long_hop_run[0], "qemu-mps2-an386", tmp_path / "fw")
    model, series, windows, times = _contiguous(long_hop_run, 12)
    every_hop = np.stack([series[s:s + WINDOW] for s in range(0, len(series) - WINDOW + 1, HOP)])
    assert np.array_equal(every_hop, windows)  # the dataset's windows are this log cut every hop
    span_s = window_span_ms(WINDOW, 1 / 300) // 1000
    outputs = []
    with EmulatedBoard(load_board("qemu-mps2-an386"), elf) as emu, \
            open_link(emu.url, 115200, timeout=5.0, connect_timeout=10) as link:
        assert isinstance(link.recv(10), p.Hello)
        for i, start in enumerate(times):
            link.request(p.Time(int(start) + span_s), p.Ack, 30.0, match=lambda m: m.for_type == p.Time.TYPE)
            chunk = series[:WINDOW] if i == 0 else series[WINDOW + (i - 1) * HOP:WINDOW + i * HOP]
            outputs.append(replay_window(link, chunk, timeout=60.0).output)
        refused = link.request(p.Replay.of(0, [0.0] * (HOP + 1)), p.Error, match=lambda m: True)  # a hop is due
        assert refused.code == p.ERR_BAD_LENGTH
    got = np.array(outputs, np.int8)
    want = _reference(model, windows, times)
    assert np.array_equal(got, want[:, :got.shape[1]])
    cut = len(series) // WINDOW * WINDOW
    back_to_back = _reference(model, series[:cut].reshape(-1, WINDOW, 1), times[0] + np.arange(cut // WINDOW) * 3600.0)
    assert not np.array_equal(got, back_to_back[::HOP // WINDOW, :got.shape[1]])


@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_replay_of_a_long_hop_run_sends_what_a_sensor_delivers(long_hop_run, tmp_path: Path) -> None:
    """`tinyml replay` of the run: both machines' test windows in data order; a window in the slot after the last
    one's goes with the 24 samples before it, any other whole after SERIES; every output byte as the host
    pipeline's."""
    from tinyml.device.qemu import EmulatedBoard
    from tinyml.firmware.boards import load_board
    from tinyml.hil import prepare_inputs

    run, data = long_hop_run
    elf = _replay_firmware(run, "qemu-mps2-an386", tmp_path / "fw")
    placed = prepare_inputs(int8_model(run), data, "test", None).series.summary()
    with EmulatedBoard(load_board("qemu-mps2-an386"), elf) as emu:
        proc = run_cli("replay", "--port", emu.url, "--model", run, "--data", data, "--split", "test", "--json",
                       timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    n = report["windows"]
    assert n > 10 and report["identical"] == n, report["mismatched"]
    continued = n - placed["streams"] - placed["gaps"]
    assert continued > n // 2
    assert report["sent_values"] == n * WINDOW + continued * (HOP - WINDOW)


def test_the_emulator_reads_a_window_every_hop(long_hop_run) -> None:
    """An emulated device of the run: slots counted from boot, then from its clock after TIME (windows every 3
    emulated hours across midnight); its windows share no samples; every RESULT is TFLM's over Python's inputs for
    the windows it read, at those times, the state fresh from the first TIME."""
    from tinyml.device.emulated_model import DeviceModel
    from tinyml.device.emulator import EmulatedDevice, Faults

    model = DeviceModel(long_hop_run[0])
    assert model.hop == HOP
    _, span_ms = model.series
    device = EmulatedDevice(0, model, 0.0, 115200, Faults(), 0, 0.0)
    early = [device._next_result_frame(float(k)) for k in range(3)]
    assert device.slots_used == [0, 1, 2]
    t1 = MIDNIGHT + 17 * 3600 + 40 * 60 + 3
    device.receive(p.encode(p.Time(t1)), 10.0)
    reads = 10.0 + HOP * 300.0 * np.arange(1, 9)  # each window's last sample, on the device's clock
    late = [device._next_result_frame(float(now)) for now in reads]
    starts = t1 + (reads - 10.0) - span_ms / 1000
    assert device.slots_used[3:] == stream_slots(starts, SLOTS).tolist()
    assert len(set(device.slots_used[3:])) == SLOTS  # a whole day of slots, across midnight
    windows = np.stack([values for _, _, values in device.ring])
    assert not any(np.array_equal(b[:WINDOW - h], a[h:]) for a, b in zip(windows[:-1], windows[1:], strict=True)
                   for h in range(1, WINDOW))  # no window continues the last one: nothing is kept
    for frames, want in ((early, _reference(model.model, windows[:3], np.arange(3) * DAY / SLOTS)),
                         (late, _reference(model.model, windows[3:], starts))):
        got = [e.output for f in frames for e in p.Decoder().feed(f) if isinstance(e, p.Result)]
        assert np.array_equal(np.array(got, np.int8), want[:, :len(got[0])])
