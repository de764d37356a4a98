"""Data capture: SAMPLES windows reassembled, datasets appended atomically with provenance, and
`tinyml capture` against real emulated devices (and scripted ones for broken streams and CSV)."""

from __future__ import annotations

import hashlib
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.data.capture import BLOCK, WindowOrigin, append_windows, block_split
from tinyml.data.dataset import load
from tinyml.data.split import TEST, TRAIN, VAL
from tinyml.data.synth import VibrationOptions, synth_vibration
from tinyml.device import protocol as p
from tinyml.device.emulated_model import DeviceModel
from tinyml.device.emulator import EmulatedFleet
from tinyml.device.endpoints import listen_tcp, socket_url
from tinyml.device.link import open_link
from tinyml.device.windows import CutWindow, WindowAssembler, window_chunks
from tinyml.errors import DeviceError, InputError


def chunks(window: int, values: np.ndarray, fs: float = 100.0, boot_id: int = 7) -> list[p.Samples]:
    return window_chunks(boot_id=boot_id, window=window, timestamp_ms=window * 10, fs=fs, sensor="test",
                         values=values)


# ---- reassembly --------------------------------------------------------------------------------

def test_windows_survive_chunking_and_reassembly() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(256, 3)).astype(np.float32)  # 768 values: 7 chunks of at most 112
    parts = chunks(4, values)
    assert len(parts) == 7 and all(len(c.data) <= p.MAX_SAMPLE_BYTES for c in parts)
    asm = WindowAssembler()
    got = [asm.feed(p.decode_frame(p.encode(c)[1:-1])) for c in parts]
    assert got[:-1] == [None] * 6
    assert got[-1].window == 4 and got[-1].fs == 100.0 and got[-1].sensor == "test"
    np.testing.assert_array_equal(got[-1].values, values)
    asm.close()  # nothing open


def test_a_cut_window_is_reported_and_the_next_one_still_arrives() -> None:
    a, b = np.ones((128, 3), np.float32), np.full((128, 3), 2.0, np.float32)
    asm = WindowAssembler("dev")
    first = chunks(1, a)
    asm.feed(first[0])
    with pytest.raises(CutWindow, match="stopped mid-window: window 1 got 112 of 384 values"):
        asm.feed(chunks(2, b)[0])  # the next window starts before window 1 ended
    with pytest.raises(CutWindow, match="started mid-window"):  # window 1 is dropped, window 2 lost its head
        asm.feed(chunks(2, b)[1])
    whole = [asm.feed(c) for c in chunks(3, b)]
    np.testing.assert_array_equal(whole[-1].values, b)
    asm.feed(chunks(4, a)[0])
    with pytest.raises(CutWindow, match="no more chunks"):
        asm.close()


def test_a_gap_inside_a_window_and_foreign_formats_are_refused() -> None:
    parts = chunks(1, np.zeros((128, 3), np.float32))
    asm = WindowAssembler()
    asm.feed(parts[0])
    with pytest.raises(CutWindow, match="chunk at value 224 followed value 112"):
        asm.feed(parts[2])
    bad = p.Samples(1, 1, 0, 100.0, 4, 1, 3, 0, "x", bytes(16))
    with pytest.raises(DeviceError, match="format 3"):
        WindowAssembler().feed(bad)
    with pytest.raises(DeviceError, match="malformed"):
        WindowAssembler().feed(p.Samples(1, 1, 0, 100.0, 4, 1, 0, 0, "x", bytes(6)))


# ---- appending to a dataset ---------------------------------------------------------------------

def origins(n: int, fs: float = 2560.0, device: str = "dev") -> list[WindowOrigin]:
    return [WindowOrigin(device, 5, i, 1000.0 + i, "synth-vibration", fs, "protocol") for i in range(n)]


def test_appending_keeps_provenance_aligned_and_splits_in_blocks(tmp_path: Path) -> None:
    synth = synth_vibration(VibrationOptions(per_class=6, windows_per_recording=2, val=0.2, test=0.2))
    path = synth.save(tmp_path / "d.npz")
    x = np.zeros((70, 256, 3), np.float32)
    ds = append_windows(path, x, origins(70), label="imbalance", session="s1")
    assert ds.n == synth.n + 70 and ds.classes == synth.classes  # an existing class is reused
    prov = load(path).meta["provenance"]
    assert all(len(col) == ds.n for col in prov.values())
    assert prov["device"][:synth.n] == [None] * synth.n and prov["window"][-1] == 69
    assert prov["fs"][-1] == 2560.0 and prov["sensor"][-1] == "synth-vibration"
    new_split = load(path).split[synth.n:]
    assert [block_split(i) for i in (0, 5 * BLOCK, 6 * BLOCK, 7 * BLOCK)] == [TRAIN, VAL, TEST, TRAIN]
    assert set(new_split.tolist()) == {TRAIN, VAL, TEST}
    ds2 = append_windows(path, x[:3], origins(3), label="new_class", session="s2")
    assert ds2.classes[-1] == "new_class" and ds2.n == ds.n + 3
    assert [c["session"] for c in ds2.meta["captures"]] == ["s1", "s2"]


@pytest.mark.parametrize(("shape", "fs", "channels", "needle"), [
    ((2, 256, 3), 100.0, None, "refusing to mix sampling rates: .* holds 2560 Hz windows, these are 100 Hz"),
    ((2, 128, 3), 2560.0, None, "refusing to mix window lengths"),
    ((2, 256, 1), 2560.0, None, "refusing to mix channel layouts"),
    ((2, 256, 3), 2560.0, ["a", "b", "c"], "refusing to mix channel layouts: .* holds channels x, y, z"),
])
def test_mixed_rates_and_layouts_are_refused_and_the_file_is_unchanged(tmp_path: Path, shape, fs, channels,
                                                                       needle) -> None:
    path = tmp_path / "d.npz"
    append_windows(path, np.zeros((2, 256, 3)), origins(2), label="a", session="s")
    before = path.read_bytes()
    with pytest.raises(InputError, match=needle):
        append_windows(path, np.zeros(shape), origins(2, fs), label="a", session="t", channels=channels)
    assert path.read_bytes() == before
    with pytest.raises(InputError, match="refusing to mix sampling rates in one file"):
        append_windows(tmp_path / "e.npz", np.zeros((2, 256, 3)), [*origins(1), *origins(1, 100.0)], label="a",
                       session="s")


# ---- tinyml capture against emulated devices ----------------------------------------------------

@pytest.fixture(scope="module")
def vib_device_model(trained_run) -> DeviceModel:
    return DeviceModel(trained_run.run_dir)


def test_capture_two_conditions_then_train_on_the_file(tmp_path: Path, vib_device_model: DeviceModel) -> None:
    out = tmp_path / "captured.npz"
    with EmulatedFleet(vib_device_model, count=1, tcp_port=0, rate=20, seed=2) as fleet:
        port = fleet.endpoints[0]
        proc = run_cli("capture", "--port", port, "--label", "healthy", "--windows", "24", "--out", out)
        assert proc.returncode == 0, proc.stderr
        assert "24/24 window(s) of 'healthy' from emu-000" in proc.stdout  # plain lines when not a terminal
        assert "\r" not in proc.stdout
        fleet.set_condition(0, "imbalance")
        proc = run_cli("capture", "--port", port, "--label", "imbalance", "--windows", "24", "--out", out)
        assert proc.returncode == 0, proc.stderr
    assert "captured 24 window(s) of 256 x 3 at 2560 Hz from emu-000 as 'imbalance'" in proc.stdout
    ds = load(out)
    assert ds.n == 48 and ds.classes == ["healthy", "imbalance"] and ds.fs == 2560.0
    prov = ds.meta["provenance"]
    assert set(prov["device"]) == {"emu-000"} and set(prov["sensor"]) == {"synth-vibration"}
    assert len(set(prov["boot_id"])) == 1 and len(set(prov["window"])) == 48  # distinct windows of one boot
    # imbalance is a louder 1x rotation in the radial axes: the captured physics shows it
    assert ds.x[ds.y == 1][..., 0].std() > 2 * ds.x[ds.y == 0][..., 0].std()
    info = run_cli("data", "info", out)
    assert info.returncode == 0 and "healthy: 24" in info.stdout and "2560 Hz" in info.stdout
    train = run_cli("train", out, "--model", "cnn1d", "--epochs", "2", "--out", tmp_path / "run")
    assert train.returncode == 0, train.stderr
    assert (tmp_path / "run" / "model.json").is_file()


def test_capture_errors_are_one_line(tmp_path: Path, shared: Path, vib_device_model: DeviceModel) -> None:
    out = tmp_path / "c.npz"
    assert_clean_error(run_cli("capture", "--port", "/dev/ttyNOPE9", "--label", "a", "--windows", "2",
                               "--out", out), "not found")
    assert_clean_error(run_cli("capture", "--port", "socket://127.0.0.1:9", "--label", "a", "--windows", "2",
                               "--out", out), "nothing is listening")
    assert_clean_error(run_cli("capture", "--port", "socket://127.0.0.1:9", "--label", "a", "--out", out),
                       "exactly one of --seconds and --windows")
    with EmulatedFleet(shared / "models" / "feat_ae_int8.tflite", count=1, tcp_port=0, rate=5) as fleet:
        assert_clean_error(run_cli("capture", "--port", fleet.endpoints[0], "--label", "a", "--windows", "2",
                                   "--out", out), "cannot stream samples", "no sensor")
    # a file of another rate: refused before anything is captured, and left as it was
    other = tmp_path / "other.npz"
    append_windows(other, np.zeros((1, 256, 3)), origins(1, 100.0), label="a", session="s")
    before = other.read_bytes()
    with EmulatedFleet(vib_device_model, count=1, tcp_port=0, rate=20) as fleet:
        assert_clean_error(run_cli("capture", "--port", fleet.endpoints[0], "--label", "a", "--windows", "3",
                                   "--out", other), "refusing to mix sampling rates", "100 Hz", "2560 Hz")
    assert other.read_bytes() == before
    assert not out.exists()


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_leaves_no_half_written_dataset(tmp_path: Path, vib_device_model: DeviceModel) -> None:
    """RLIMIT_FSIZE stands in for a full disk: writes past it fail like ENOSPC does."""
    out = tmp_path / "c.npz"
    with EmulatedFleet(vib_device_model, count=1, tcp_port=0, rate=20) as fleet:
        assert run_cli("capture", "--port", fleet.endpoints[0], "--label", "a", "--windows", "1",
                       "--out", out).returncode == 0
        before = hashlib.sha256(out.read_bytes()).hexdigest()
        proc = subprocess.run([sys.executable, "-m", "tinyml", "capture", "--port", fleet.endpoints[0], "--label",
                               "b", "--windows", "20", "--out", str(out)], capture_output=True, text=True,
                              timeout=120, preexec_fn=_limit_file_size(out.stat().st_size + 4096))
    assert_clean_error(proc, "cannot write", "file too large")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["c.npz"]


# ---- scripted devices: broken streams and CSV lines ---------------------------------------------

class ScriptedLine:
    """A TCP device that runs ``script(conn)`` for its first client (HELLO and CAPTURE handled by it)."""

    def __init__(self, script: Callable[[socket.socket], None]):
        self.server = listen_tcp(0)
        self.url = socket_url(self.server.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, args=(script,), daemon=True)
        self.thread.start()

    def _serve(self, script: Callable[[socket.socket], None]) -> None:
        conn, _ = self.server.accept()
        with conn:
            try:
                script(conn)
                time.sleep(15)  # then silence, until the test closes it
            except OSError:
                pass

    def close(self) -> None:
        self.server.close()


def protocol_script(windows: list[tuple[float, np.ndarray]], cut_last: bool) -> Callable[[socket.socket], None]:
    def script(conn: socket.socket) -> None:
        decoder = p.Decoder()
        while True:  # answer HELLO_REQ, then CAPTURE
            msgs = [e for e in decoder.feed(conn.recv(4096)) if not isinstance(e, (p.Text, p.BadFrame))]
            for m in msgs:
                if isinstance(m, p.HelloReq):
                    conn.sendall(p.encode(p.Hello(1, "scripted", "0", "scripted-1", bytes(8), 0, 0, 0, 9, 2)))
                elif isinstance(m, p.Capture):
                    conn.sendall(p.encode(p.Ack(p.Capture.TYPE, 0)))
                    for i, (fs, values) in enumerate(windows):
                        frames = window_chunks(boot_id=9, window=i, timestamp_ms=i, fs=fs, sensor="s", values=values)
                        if cut_last and i == len(windows) - 1:
                            frames = frames[:1]
                        conn.sendall(b"".join(p.encode(f) for f in frames))
                    return
    return script


@pytest.mark.parametrize(("fs_list", "cut_last", "needle"), [
    ([100.0] * 4, True, "stopped mid-window: window 3 got 112 of 384 values"),
    ([100.0, 100.0, 100.0, 50.0], False, "changed its stream from 100 Hz"),
])
def test_a_broken_stream_saves_the_complete_windows_only(tmp_path: Path, fs_list, cut_last, needle) -> None:
    rng = np.random.default_rng(1)
    windows = [(fs, rng.normal(size=(128, 3)).astype(np.float32)) for fs in fs_list]
    line = ScriptedLine(protocol_script(windows, cut_last))
    try:
        out = tmp_path / "c.npz"
        proc = run_cli("capture", "--port", line.url, "--label", "a", "--windows", "10", "--out", out,
                       "--timeout", "2")
    finally:
        line.close()
    assert_clean_error(proc, needle, "3 complete window(s) before it were saved")
    ds = load(out)
    assert ds.n == 3 and ds.fs == 100.0
    np.testing.assert_array_equal(ds.x, np.stack([w for _, w in windows[:3]]))


def csv_script(lines: list[str], pause_every: int = 0, pause: float = 0.0) -> Callable[[socket.socket], None]:
    def script(conn: socket.socket) -> None:
        for i, line in enumerate(lines):
            conn.sendall(line.encode() + b"\r\n")
            if pause_every and i % pause_every == pause_every - 1:
                time.sleep(pause)
    return script


def test_csv_lines_become_windows_with_the_given_rate(tmp_path: Path) -> None:
    rows = [[i * 0.5, -i, 1.0] for i in range(100)]
    lines = ["partial garbage from connecting mid-line", "ax,ay,az", *(",".join(map(str, r)) for r in rows[:50]),
             "debug: sensor ok", *(f"{a} {b}\t{c}" for a, b, c in rows[50:])]
    line = ScriptedLine(csv_script(lines))
    try:
        out = tmp_path / "csv.npz"
        proc = run_cli("capture", "--port", line.url, "--csv", "--fs", "100", "--window", "25", "--label", "idle",
                       "--windows", "4", "--out", out, "--channels", "ax,ay,az")
    finally:
        line.close()
    assert proc.returncode == 0, proc.stderr
    assert "2 non-sample line(s) skipped" in proc.stdout
    ds = load(out)
    assert ds.x.shape == (4, 25, 3) and ds.fs == 100.0 and ds.channels == ["ax", "ay", "az"]
    np.testing.assert_array_equal(ds.x.reshape(-1, 3), np.array(rows, np.float32))
    assert set(ds.meta["provenance"]["source"]) == {"csv"}


def test_csv_rate_is_measured_and_a_stream_that_stops_is_an_error(tmp_path: Path) -> None:
    lines = ["junk", *(f"{i},{i % 7}" for i in range(20 * 10))]
    line = ScriptedLine(csv_script(lines, pause_every=10, pause=0.1))  # about 100 lines per second
    try:
        out = tmp_path / "csv.npz"
        proc = run_cli("capture", "--port", line.url, "--csv", "--window", "40", "--label", "a", "--windows", "6",
                       "--out", out, "--timeout", "2")
    finally:
        line.close()
    # 200 lines make 5 windows; the 6th never completes: the stream stopped mid-window
    assert_clean_error(proc, "stopped between windows", "5 complete window(s) before it were saved")
    ds = load(out)
    assert ds.n == 5 and ds.x.shape[2] == 2
    assert 10 < ds.fs < 1000  # measured from arrival times; the machine is noisy, so only roughly


def test_emulated_device_answers_capture_requests_itself(vib_device_model: DeviceModel) -> None:
    """CAPTURE mode 2 sends the ring of recent windows, each the window behind the RESULT of that seq."""
    with EmulatedFleet(vib_device_model, count=1, tcp_port=0, rate=20) as fleet, \
            open_link(fleet.endpoints[0], timeout=3) as link:
        results = []
        while len(results) < 5:
            m = link.recv(3)
            if isinstance(m, p.Result):
                results.append(m)
        ack = link.request(p.Capture(p.CAPTURE_RECENT, 3), p.Ack)
        assert ack.value == 3
        asm, got = WindowAssembler(), []
        results += [m for m in link.unsolicited if isinstance(m, p.Result)]
        while len(got) < 3:
            m = link.recv(3)
            assert m is not None
            if isinstance(m, p.Samples):
                raw = asm.feed(m)
                if raw is not None:
                    got.append(raw)
            elif isinstance(m, p.Result):
                results.append(m)
        assert [w.window for w in got] == list(range(got[0].window, got[0].window + 3))
        assert {w.boot_id for w in got} == {results[0].boot_id}
        # each window is the one the device computed its RESULT of that seq from
        by_seq = {r.seq: r for r in results}
        for w in got:
            if w.window in by_seq:
                again = vib_device_model.infer(vib_device_model._quantize(w.values[None])[0].tobytes())
                assert again.output[:p.MAX_OUTPUT] == by_seq[w.window].output
        assert any(w.window in by_seq for w in got)
        assert link.request(p.Capture(9, 0), p.Error).code == p.ERR_BAD_LENGTH
