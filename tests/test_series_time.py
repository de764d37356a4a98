"""TIME (0x15): a run-mode device places each window of a daily_cycle run in the day from the host's clock,
as Python's stream_slots places the data's windows. Real firmware on QEMU (the replay sensor), host gcc,
the emulator and a real gateway."""

from __future__ import annotations

import ctypes
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cbuild import host_compile
from tests.conftest import assert_clean_error, run_cli
from tests.test_validate import EMULATED
from tests.test_validate_series import series_run  # noqa: F401 - the module's stateful run fixture
from tinyml.data.dataset import load
from tinyml.data.features_series import DAY_MS, SeriesState, Stream, slot_ending, stream_slots, window_span_ms
from tinyml.device import protocol as p
from tinyml.gateway.clock import DeviceClock, DevicesConfig
from tinyml.hil import host_reference
from tinyml.paths import template_dir
from tinyml.rundir import int8_model

SRC = template_dir("common")
HOP = 6  # the series run's windows: 24 samples every 6 (2 hours every 30 minutes)
MIDNIGHT = 1764633600  # 2025-12-02 00:00:00 in the data's clock
SLOT_HARNESS = r"""
#include "tinyml_series.h"
void slots_ending(uint32_t slots, uint32_t span_ms, const uint32_t *end_ms, uint32_t n, uint32_t *out)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = tinyml_series_slot_ending(slots, end_ms[i], span_ms);
}
"""


def test_the_c_slot_of_a_window_is_pythons(tmp_path: Path) -> None:
    """tinyml_series_slot_ending (gcc) = slot_ending = stream_slots of the start, for whole-second starts,
    ms-resolution ends, half-slot boundaries, windows longer than a day, the day's last ms and the most slots the
    config holds (the C divides in 32 bits: the Xtensa lx106's libgcc has no 64-bit division)."""
    (tmp_path / "h.c").write_text(SLOT_HARNESS)
    lib = ctypes.CDLL(str(host_compile([tmp_path / "h.c", SRC / "tinyml_series.c"], tmp_path / "libslot.so",
                                       includes=[SRC], shared=True, extra=["-O2"])))
    rng = np.random.default_rng(3)
    for slots, span_ms in ((48, 6_900_000), (24, 0), (7, 86_400_000 + 5), (43200, 999), (65535, 1), (1, 12)):
        ends = np.concatenate([rng.integers(0, DAY_MS, 3000), [0, DAY_MS - 1],
                               (np.arange(2 * slots) * DAY_MS // (2 * slots) + span_ms) % DAY_MS]).astype(np.uint32)
        out = np.zeros(ends.size, np.uint32)
        lib.slots_ending(ctypes.c_uint32(slots), ctypes.c_uint32(span_ms), ends.ctypes.data_as(ctypes.c_void_p),
                         ctypes.c_uint32(ends.size), out.ctypes.data_as(ctypes.c_void_p))
        python = [slot_ending(int(e), span_ms, slots) for e in ends]
        assert out.tolist() == python
        whole = ends[ends % 1000 == span_ms % 1000]  # starts on whole seconds, as the data's times
        starts = ((whole.astype(np.int64) - span_ms) % DAY_MS) // 1000
        assert [slot_ending(int(e), span_ms, slots) for e in whole] == stream_slots(starts, slots).tolist()


RUN_HARNESS = r"""
#include <string.h>
#include "tinyml_run.h"
static const int *script;
static unsigned step, count, *asked, *due;
static float value;
int tinyml_sensor_read(float *samples, unsigned window, unsigned channels)
{
    if (step == count)
        return 1; /* the script is over: nothing more comes */
    int rc = script[step];
    due[step] = tinyml_run_frames_due();
    asked[step++] = window;
    for (unsigned k = 0; rc != 1 && k < window * channels; k++, value++)  /* a lost read loses its samples */
        if (rc == 0)
            samples[k] = value;
    return rc;
}
/* run the loop over the sensor's answers (a read may ask several times); each window read (values window x
 * channels) in `out`, the frames due at each answer in `dues` */
unsigned read_windows(const int *rcs, unsigned n, unsigned *sizes, unsigned *dues, float *out, unsigned values,
                      int restart_at)
{
    unsigned got = 0;
    script = rcs, count = n, asked = sizes, due = dues, step = 0, value = 0;
    for (unsigned i = 0; step < n; i++) {
        if ((int)i == restart_at)
            tinyml_run_restart();
        if (tinyml_run_read_window() == 0)
            memcpy(out + values * got++, tinyml_run_window(), values * sizeof(float));
    }
    return got;
}
"""


def _run_loop(project: Path, tmp: Path, values: int, rcs: list[int], restart_at: int = -1,
              dues: list[int] | None = None):
    """The project's own tinyml_run.c (gcc) over a sensor answering ``rcs`` (0 done, 1 not yet, -1 lost) with
    consecutive values, ``restart_at`` the run loop's pass that restarts first: the frames each read asked for
    and the windows (``values`` each) delivered; ``dues`` gets tinyml_run_frames_due() at each read."""
    (tmp / "h.c").write_text(RUN_HARNESS)
    src = project / "src"
    sources = [tmp / "h.c", *(src / n for n in ("tinyml_run.c", "tinyml_features_int.c", "tinyml_series.c",
                                                "tinyml_features.c") if (src / n).exists())]
    lib = ctypes.CDLL(str(host_compile(sources, tmp / "librun.so", includes=[src, project / "model"], shared=True,
                                       libs=["-lm"])))
    n = len(rcs)
    sizes, due, out = np.zeros(n, np.uint32), np.zeros(n, np.uint32), np.zeros((n, values), np.float32)
    got = lib.read_windows(np.array(rcs, np.int32).ctypes.data_as(ctypes.c_void_p), ctypes.c_uint32(n),
                           sizes.ctypes.data_as(ctypes.c_void_p), due.ctypes.data_as(ctypes.c_void_p),
                           out.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint32(values), ctypes.c_int(restart_at))
    if dues is not None:
        dues.extend(due.tolist())
    return sizes.tolist(), out[:got]


def test_the_run_loop_slides_and_reads_whole_after_a_loss_or_restart(series_run, tmp_path: Path) -> None:  # noqa: F811
    """The stateful run's tinyml_run.c (host gcc): the first window whole, then six new samples a window (the
    last 18 kept); a lost read (-1) or tinyml_run_restart() makes the next window whole again."""
    fw = tmp_path / "fw"
    assert run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", series_run[0], "--out", fw).returncode == 0
    rcs = [1, 0, 0, 1, 0, -1, 0, 0, 0, 0]
    sizes, windows = _run_loop(fw, tmp_path, 24, rcs, restart_at=8)
    assert sizes == [24, 24, 6, 6, 6, 6, 24, 6, 24, 6]
    starts = [0, 6, 12, 42, 48, 72, 78]  # the sensor's values in order; the lost read's 36..41 in no window
    assert np.array_equal(windows, [np.arange(s, s + 24) for s in starts])


def test_a_stateless_run_loop_reads_windows_back_to_back(trained_run, tmp_path: Path) -> None:
    """A run without state (the vibration cnn1d, 256 x 3): every read asks for a whole window, none overlaps."""
    fw = tmp_path / "fw"
    assert run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", trained_run.run_dir,
                   "--out", fw).returncode == 0
    sizes, windows = _run_loop(fw, tmp_path, 768, [0, 0, 1, -1, 0], restart_at=4)
    assert sizes == [256] * 5
    assert np.array_equal(windows, [np.arange(s, s + 768) for s in (0, 768, 3 * 768)])


def _stream(run_data: tuple[Path, Path], n: int):
    """The first ``n`` windows of the first machine in time order, their start times and the model."""
    run, data = run_data
    ds = load(data)
    first = np.flatnonzero(ds.groups == ds.groups[np.lexsort((ds.times, ds.groups))[0]])
    order = first[np.argsort(ds.times[first])][:n]
    return int8_model(run), ds.x[order], ds.times[order]


def _reference(model, windows: np.ndarray, starts: np.ndarray) -> np.ndarray:
    pre = model.preprocess()
    in_order = Stream(np.asarray(starts, np.float64), sequence=np.arange(len(starts)))  # as read, one stream
    x = pre.int8_inputs(windows, model.in_scale, model.in_zp, stream=in_order)
    return host_reference(model, x)


def _plan(model, windows, times):
    """Two windows before any TIME (slots from boot); TIME at 13:07:09 and three windows read at once (one slot,
    mid-slot); then TIME before each later window, with the window's own time (its gaps included)."""
    pre = model.preprocess()
    span_s = window_span_ms(pre.window, pre.fs) // 1000
    t1 = MIDNIGHT + 13 * 3600 + 7 * 60 + 9
    starts = np.concatenate([[t1 - span_s] * 3, times[5:]])
    sends = [None, None, t1, None, None] + [int(t) + span_s for t in times[5:]]
    return sends, starts, span_s


def _replay_firmware(run: Path, board: str, out: Path) -> Path:
    """Run-mode firmware of the stateful run whose sensor is the host (REPLAY frames)."""
    assert run_cli("firmware", "new", "--board", board, "--model", run, "--out", out, "--sensor", "replay").returncode == 0
    build = subprocess.run(["make", "-s", "MODE=run"], cwd=out, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return out / "build" / "firmware.elf"


def _slide(link, windows: np.ndarray, i: int) -> tuple[int, ...]:
    """Window ``i`` as a sliding device reads it: the hop's new samples when it continues the window before,
    else SERIES (the next window is read whole, the state kept) and the whole window; its output."""
    from tinyml.device.replay import continues, replay_window

    if continues(windows, i, HOP):
        return replay_window(link, windows[i][-HOP:], timeout=60.0).output
    if i:
        link.request(p.Series(0, 0), p.Ack, 30.0, match=lambda m: m.for_type == p.Series.TYPE)
    return replay_window(link, windows[i], timeout=60.0).output


def _contiguous(run_data: tuple[Path, Path], n: int):
    """``n`` windows of the first machine that follow each other by one hop, the series they were cut from
    (the first window, then each window's last hop) and their start times."""
    model, windows, times = _stream(run_data, 10_000)
    steps = np.diff(times) == HOP * 300.0
    k = int(np.flatnonzero(np.convolve(steps, np.ones(n - 1, int), "valid") == n - 1)[0])
    windows, times = windows[k:k + n], times[k:k + n]
    series = np.concatenate([windows[0], *(w[-HOP:] for w in windows[1:])])
    return model, series, windows, times


@pytest.mark.qemu
@pytest.mark.cross_compiler
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-riscv32"])
def test_run_mode_firmware_slides_its_window_by_the_training_hop(series_run, board: str, tmp_path: Path) -> None:  # noqa: F811
    """A series fed to run-mode firmware as a sensor delivers it (the first window, then six samples at a time,
    TIME before each window): every output byte is TFLM's over Python's inputs for the windows cut every hop
    (the training dataset's, which detect cuts), so the state steps once a hop; Python over the same series cut
    back to back (what a device reading windows without overlap computes) gives other bytes."""
    from tinyml.device.link import open_link
    from tinyml.device.qemu import EmulatedBoard
    from tinyml.device.replay import replay_window
    from tinyml.firmware.boards import load_board

    elf = _replay_firmware(series_run[0], board, tmp_path / "fw")
    model, series, windows, times = _contiguous(series_run, 33)
    every_hop = np.stack([series[s:s + 24] for s in range(0, len(series) - 23, HOP)])
    assert np.array_equal(every_hop, windows)  # the dataset's windows are this series cut every hop
    span_s = window_span_ms(24, 1 / 300) // 1000
    outputs = []
    with EmulatedBoard(load_board(board), elf) as emu, \
            open_link(emu.url, 115200, timeout=5.0, connect_timeout=10) as link:
        assert isinstance(link.recv(10), p.Hello)
        for i, start in enumerate(times):
            link.request(p.Time(int(start) + span_s), p.Ack, 30.0, match=lambda m: m.for_type == p.Time.TYPE)
            chunk = series[:24] if i == 0 else series[24 + (i - 1) * HOP:24 + i * HOP]
            outputs.append(replay_window(link, chunk, timeout=60.0).output)
        refused = link.request(p.Replay.of(0, [0.0] * 24), p.Error, match=lambda m: True)  # only a hop is due
        assert refused.code == p.ERR_BAD_LENGTH
    got = np.array(outputs, np.int8)
    want = _reference(model, windows, times)
    assert np.array_equal(got, want[:, :got.shape[1]])
    back_to_back = _reference(model, series[:len(series) // 24 * 24].reshape(-1, 24, 1), times[::4])
    assert not np.array_equal(got[::4], back_to_back[:, :got.shape[1]])


@pytest.fixture(scope="module")
def replay_elf(series_run, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return _replay_firmware(series_run[0], "qemu-mps2-an386", tmp_path_factory.mktemp("series_replay") / "fw")


@pytest.mark.qemu
@pytest.mark.cross_compiler
@pytest.mark.parametrize("board", EMULATED)
def test_run_mode_firmware_takes_its_slots_from_time(series_run, board: str, tmp_path: Path) -> None:  # noqa: F811
    """Run-mode firmware with the replay sensor on the four emulated cores: after TIME, every window's output is
    TFLM's over Python's inputs with slots from the windows' times (a fresh state at the first TIME); the ACK
    gives the slot; slots counted from boot instead would give other outputs."""
    from tinyml.device.link import open_link
    from tinyml.device.qemu import EmulatedBoard
    from tinyml.firmware.boards import load_board

    elf = _replay_firmware(series_run[0], board, tmp_path / "fw")
    model, windows, times = _stream(series_run, 40)
    sends, starts, span_s = _plan(model, windows, times)
    slots = 48  # a day of 30-minute hops
    outputs, acks = [], []
    with EmulatedBoard(load_board(board), elf) as emu, \
            open_link(emu.url, 115200, timeout=5.0, connect_timeout=10) as link:
        assert isinstance(link.recv(10), p.Hello)
        for i, seconds in enumerate(sends):
            if seconds is not None:
                acks.append((seconds, link.request(p.Time(seconds), p.Ack, 30.0,
                                                   match=lambda m: m.for_type == p.Time.TYPE).value))
            outputs.append(_slide(link, windows, i))
    got = np.array(outputs[2:], np.int8)
    want = _reference(model, windows[2:], starts)
    assert np.array_equal(got, want[:, :got.shape[1]])
    assert all(v == slot_ending(s % 86400 * 1000, span_s * 1000, slots) for s, v in acks)
    assert acks[0][1] == stream_slots(np.array([starts[0]]), slots)[0] == 22  # 11:02:09 is in slot 22
    counted = _reference(model, windows, np.arange(len(windows)) * 1800.0)[2:]  # as before TIME existed
    assert not np.array_equal(got, counted[:, :got.shape[1]])


@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_replay_of_a_stateful_run_places_its_windows_in_time(series_run, replay_elf: Path) -> None:  # noqa: F811
    """`tinyml replay` of the stateful run: both machines' test windows in data order, each stream started by
    SERIES and each window placed by TIME; every output byte as the host pipeline's, twice on one device."""
    import json

    from tinyml.device.qemu import EmulatedBoard
    from tinyml.firmware.boards import load_board

    run, data = series_run
    with EmulatedBoard(load_board("qemu-mps2-an386"), replay_elf) as emu:
        for _ in range(2):  # the second pass starts its streams afresh too
            proc = run_cli("replay", "--port", emu.url, "--model", run, "--data", data, "--split", "test", "--json",
                           timeout=600)
            assert proc.returncode == 0, proc.stderr
            report = json.loads(proc.stdout)
            assert report["windows"] > 40 and report["identical"] == report["windows"], report["mismatched"]
            assert report["sent_values"] < report["windows"] * 24 // 2  # mostly the hop's new samples


def test_the_emulator_places_windows_as_the_firmware(series_run) -> None:  # noqa: F811
    """An emulated device of the stateful run: slots from boot until TIME, then from its clock (TIME mid-day,
    windows every 30 emulated minutes across midnight); every RESULT is TFLM's over Python's inputs for the
    windows it read, placed at those times, the state fresh from the first TIME."""
    from tinyml.device.emulated_model import DeviceModel
    from tinyml.device.emulator import EmulatedDevice, Faults

    run, _ = series_run
    model = DeviceModel(run)
    entry, span_ms = model.series
    device = EmulatedDevice(0, model, 0.0, 115200, Faults(), 0, 0.0)
    for k in range(2):
        device._next_result_frame(float(k))
    assert device.slots_used == [0, 1]
    t1 = MIDNIGHT + 20 * 3600 + 11 * 60 + 17
    ack = p.Decoder().feed(device.receive(p.encode(p.Time(t1)), 10.0))
    assert ack == [p.Ack(p.Time.TYPE, slot_ending((t1 % 86400) * 1000, span_ms, 48))]
    reads = 10.0 + 1800.0 * np.arange(1, 13)  # each window's last sample, on the device's clock
    frames = [device._next_result_frame(float(now)) for now in reads]
    starts = t1 + (reads - 10.0) - span_ms / 1000
    assert device.slots_used[2:] == stream_slots(starts, 48).tolist()
    assert len(set(device.slots_used[2:])) == 12  # twelve slots, across midnight
    events = [e for f in frames for e in p.Decoder().feed(f) if isinstance(e, p.Result)]
    windows = np.stack([values for _, _, values in list(device.ring)[2:]])
    assert np.array_equal(windows[1:, :24 - HOP], windows[:-1, HOP:])  # slid by the hop, as the firmware
    want = _reference(model.model, windows, starts)
    assert np.array_equal(np.array([e.output for e in events], np.int8), want[:, :len(events[0].output)])


def test_a_stateless_run_acknowledges_time_without_a_slot(shared: Path) -> None:
    from tinyml.device.emulated_model import DeviceModel
    from tinyml.device.emulator import EmulatedDevice, Faults

    device = EmulatedDevice(0, DeviceModel(shared / "models" / "feat_ae_int8.tflite"), 0.0, 115200, Faults(), 0, 0.0)
    assert p.Decoder().feed(device.receive(p.encode(p.Time(MIDNIGHT)), 0.0)) == [p.Ack(p.Time.TYPE, p.NO_SLOT)]


def test_the_series_state_steps_as_series_values() -> None:
    """SeriesState carried on through Stream(state=...) window by window = one series_values over all."""
    from tinyml.data.features import validate_spec
    from tinyml.data.features_series import series_values

    e = validate_spec([{"name": "daily_cycle", "slots": 12}])[0]
    rng = np.random.default_rng(0)
    m, slots = rng.integers(-2**23, 2**23, (80, 2)), rng.integers(0, 12, 80)
    state = SeriesState(e, 2)
    stepwise = np.concatenate([series_values(m[i:i + 1], slots[i:i + 1], np.zeros(1), e, state) for i in range(80)])
    assert np.array_equal(stepwise, series_values(m, slots, np.zeros(80), e))


def test_the_line_sends_time_on_hello_and_every_hour() -> None:
    """A gateway line queues TIME (the configured zone's wall clock) when its device identifies, again when it
    says HELLO after a reboot, and once an hour while it talks; nothing before it identifies."""
    from tinyml.gateway.clock import TIME_EVERY_S
    from tinyml.gateway.ingest import LineState

    clock = DeviceClock(DevicesConfig(time_zone="+05:30"))
    line = LineState("socket://127.0.0.1:1", clock=clock)
    hello = p.Hello(1, "b", "fw", "dev-1", b"\x01" * 8, 1, 2, 3, 7, 2)
    beat = p.encode(p.Heartbeat(7, 1000, 0, 0))
    t0 = 1_700_000_000.25
    line.feed(beat, t0)
    assert not line.take_outgoing()
    line.feed(p.encode(hello), t0)
    assert p.Decoder().feed(line.take_outgoing()) == [p.Time(int(t0) + 19800)]
    line.feed(beat, t0 + TIME_EVERY_S - 1)
    assert not line.take_outgoing()
    line.feed(beat, t0 + TIME_EVERY_S)
    assert p.Decoder().feed(line.take_outgoing()) == [p.Time(int(t0 + TIME_EVERY_S) + 19800)]
    line.feed(p.encode(hello), t0 + TIME_EVERY_S + 5)  # rebooted: told at once
    assert p.Decoder().feed(line.take_outgoing()) == [p.Time(int(t0 + TIME_EVERY_S + 5) + 19800)]
    berlin = DeviceClock(DevicesConfig(time_zone="Europe/Berlin"))
    assert berlin.seconds(1_751_328_000.0) == 1_751_328_000 + 7200  # summer time
    assert berlin.seconds(1_767_225_600.0) == 1_767_225_600 + 3600


@pytest.mark.parametrize("value", ["Europe/Berln", "+25:00", "../../etc/passwd", "", "CEST"])
def test_a_bad_time_zone_is_refused_with_a_hint(tmp_path: Path, value: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'ports = ["socket://127.0.0.1:9"]\n\n[devices]\ntime_zone = "{value}"\n')
    proc = run_cli("gateway", "run", "--config", config, "--db", tmp_path / "gw.db")
    assert_clean_error(proc, "[devices] time_zone at", "gateway.toml:4", "IANA name")
    assert not (tmp_path / "gw.db").exists()


def test_a_gateway_gives_an_emulated_device_the_time_of_day(series_run, tmp_path: Path) -> None:  # noqa: F811
    """A real gateway (its own process) against an emulated device of the stateful run: TIME arrives when the
    device identifies, in the configured zone; the device's windows then take their slots from it."""
    from tests.test_gateway_e2e import GatewayProcess, count, wait_until
    from tinyml.device.emulator import EmulatedFleet

    run, _ = series_run
    config = tmp_path / "gateway.toml"
    config.write_text('[devices]\ntime_zone = "-03:00"\n')
    clock = DeviceClock(DevicesConfig(time_zone="-03:00"))
    with EmulatedFleet(run, count=1, tcp_port=0, rate=5, seed=1) as fleet:
        device = fleet.devices[0]
        before = clock.seconds(time.time())
        gw = GatewayProcess(tmp_path, [fleet.endpoints[0]], "--config", str(config))
        try:
            wait_until(lambda: device.clock is not None, 30, "TIME")
            after = clock.seconds(time.time())
            placed = len(device.slots_used)  # windows read from here on are placed by the clock
            wait_until(lambda: len(device.slots_used) >= placed + 3, 30, "windows after TIME")
            wait_until(lambda: count(gw.db, "SELECT count(*) FROM results WHERE device='emu-000'") > 3, 30, "results")
        finally:
            assert gw.stop() == 0
    day_ms = device.clock.day_ms
    assert (before % 86400) * 1000 <= day_ms <= (after % 86400) * 1000 or after % 86400 < before % 86400
    _, span_ms = fleet.model.series
    within = {slot_ending((day_ms + k * 1000) % DAY_MS, span_ms, 48) for k in range(120)}
    assert set(device.slots_used[placed:placed + 3]) <= within  # read within two minutes of the TIME
    assert "Traceback" not in gw.text()
