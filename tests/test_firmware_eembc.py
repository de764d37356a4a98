"""MLPerf Tiny mode (`make EEMBC=...`) of the bare-metal firmware on qemu-mps2-an386, driven with
the exact command sequences the MLPerf Tiny runner (mlcommons/tiny, benchmark/runner) sends.

What the runner does, and these tests replay: it writes `name%` and `profile%`, then for each
input `db load N%` and `db HEX%` lines of 31 bytes, each answered up to a line containing
"m-ready", then `infer 1 0%` (accuracy) or `infer N W%` (performance). It ignores every answer
to `db`; from `infer` it takes the `m-lap-us-N` lines (first = start, second = end) and the
`m-results-[...]` line, whose floats are the scores. The ad01 benchmark sends each dataset file
(float32 log-mel frames) as overlapping 2,560-byte windows with a 512-byte stride.
Scores are compared with `%0.3f` of the host reference: TFLM's output for the input quantized
on the host, scored as the MLPerf Tiny reference firmware does (float32, in order).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyml.device import protocol as p
from tinyml.device.link import Link, SocketTransport, parse_tcp
from tinyml.device.qemu import CONNECT_TIMEOUT_S, EmulatedBoard
from tinyml.firmware.boards import load_board
from tinyml.firmware.build import ELF_NAME
from tinyml.firmware.render import render_project
from tinyml.hil import host_reference
from tinyml.model.interpreters import quantize_input
from tinyml.rundir import Int8Model, int8_model

BOARD = "qemu-mps2-an386"
MAX_BYTES = 31          # the runner's bytes per `db HEX%` line (DUT._max_bytes without a power board)
AD_SEGMENT, AD_STRIDE = 2560, 512  # ad01's y_labels.csv: bytes_to_send, stride
RESULTS = re.compile(r"^m-results-\[([^]]+)\]$")  # the runner's own patterns
LAP = re.compile(r"^m-lap-us-([0-9]+)$")


def build(shared: Path, out: Path, model_file: str, eembc: str) -> tuple[Int8Model, Path]:
    model = int8_model(shared / "models" / model_file)
    render_project(load_board(BOARD), model, out)
    subprocess.run(["make", "-j2", f"EEMBC={eembc}"], cwd=out, check=True, capture_output=True, timeout=300)
    return model, out / ELF_NAME


@pytest.fixture(scope="module")
def toycar(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Int8Model, Path]:
    return build(shared, tmp_path_factory.mktemp("eembc") / "ad01", "toycar_ad_int8.tflite", "1")


@pytest.fixture(scope="module", params=["1", "kws01", "vww01"])
def classifier(request: pytest.FixtureRequest, shared: Path,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Int8Model, Path, str]:
    model, elf = build(shared, tmp_path_factory.mktemp("eembc") / request.param, "vib_cnn_int8.tflite",
                       request.param)
    return model, elf, request.param


class Runner:
    """The serial side of the MLPerf Tiny runner: text commands ending in '%', answers read
    byte by byte into lines up to one containing "m-ready"."""

    def __init__(self, emu: EmulatedBoard):
        host, port = parse_tcp(emu.url) or ("", 0)
        self.transport = SocketTransport(host, port, CONNECT_TIMEOUT_S)
        self.pending = b""

    def line(self, timeout: float = 60.0) -> str:
        while b"\n" not in self.pending:
            chunk = self.transport.read(timeout)
            assert chunk, f"no line within {timeout} s; got {self.pending!r}"
            self.pending += chunk
        raw, self.pending = self.pending.split(b"\n", 1)
        # a clean text stream: every byte decodes, no control bytes but the line end
        assert all(0x20 <= b < 0x7F for b in raw.rstrip(b"\r")), raw
        return raw.decode().strip("\r\0")

    def until_ready(self) -> list[str]:
        lines = []
        while "m-ready" not in (line := self.line()):
            if line:
                lines.append(line)
        return lines

    def command(self, text: str) -> list[str]:
        self.transport.write(text.encode() + b"%")
        return self.until_ready()

    def load(self, data: bytes) -> list[str]:
        """`download`: what the runner sends for one input, with every answer."""
        answers = self.command(f"db load {len(data)}")
        for i in range(0, len(data), MAX_BYTES):
            answers += self.command("db " + data[i:i + MAX_BYTES].hex())
        return answers

    def infer(self, iterations: int, warmups: int) -> tuple[list[float] | None, int | None, list[str]]:
        """Scores and elapsed microseconds as the runner extracts them (None when missing)."""
        lines = self.command(f"infer {iterations} {warmups}")
        scores = [m.group(1) for m in map(RESULTS.match, lines) if m]
        laps = [int(m.group(1)) for m in map(LAP.match, lines) if m]
        elapsed = laps[1] - laps[0] if len(laps) == 2 else None
        return ([float(v) for v in scores[0].split(",")] if scores else None), elapsed, lines


def boot(emu: EmulatedBoard) -> Runner:
    runner = Runner(emu)
    assert runner.until_ready() == ["m-init-done"]  # and nothing before it: no binary HELLO
    return runner


def reference_score(x: np.ndarray, out_q: np.ndarray, model: Int8Model) -> np.float32:
    """The MLPerf Tiny reference firmware's ad01 score: mean of (dequantized output - input)^2,
    in float32, summed in order."""
    y = (out_q.astype(np.float32) - np.float32(model.out_zp)) * np.float32(model.out_scale)
    total = np.float32(0.0)
    for d2 in (y - x.astype(np.float32)) ** 2:
        total = np.float32(total + d2)
    return np.float32(total / np.float32(x.size))


def ad01_file(seed: int, frames: int = 9) -> np.ndarray:
    """A stand-in ad01 dataset file: frames x 128 float32 log-mel values in the model's range."""
    return np.random.default_rng(seed).normal(-25.0, 12.0, (frames, 128)).astype(np.float32)


def segments(data: bytes) -> list[bytes]:
    return [data[i:i + AD_SEGMENT] for i in range(0, len(data) - AD_SEGMENT + 1, AD_STRIDE)]


def test_ad01_accuracy_run_scores_float32_windows_like_the_host_reference(toycar: tuple[Int8Model, Path]) -> None:
    model, elf = toycar
    with EmulatedBoard(load_board(BOARD), elf) as emu:
        runner = boot(emu)
        assert runner.command("name") == ["m-name-dut-[tinyml]"]
        assert runner.command("profile") == ["m-profile-[ULPMark for tinyML Firmware V0.0.1]", "m-model-[ad01]"]
        got, windows = [], []
        for seed in (1, 2):
            for segment in segments(ad01_file(seed).astype("<f4").tobytes()):
                answers = runner.load(segment)
                assert answers[0] == f"m-[Expecting {AD_SEGMENT} bytes]"
                assert answers[-1] == "m-load-done" and not [a for a in answers if a.startswith("e-")]
                scores, elapsed, _ = runner.infer(1, 0)
                assert scores is not None and len(scores) == 1 and elapsed is not None and elapsed > 0
                got.append(scores[0])
                windows.append(np.frombuffer(segment, "<f4"))
        x = np.stack(windows)
        out = host_reference(model, quantize_input(x, model.in_scale, model.in_zp))
        want = [float(f"{reference_score(xi, oi, model):0.3f}") for xi, oi in zip(x, out, strict=True)]
        assert len(got) == 10 and got == want
        assert len(set(got)) == len(got)  # every window got its own score


def test_ad01_int8_input_is_kept(toycar: tuple[Int8Model, Path], shared: Path) -> None:
    model, elf = toycar
    x = np.frombuffer((shared / "models" / "toycar_ad_int8.input.bin").read_bytes(), np.int8)[None]
    out = host_reference(model, x)
    x_float = (x[0].astype(np.float32) - np.float32(model.in_zp)) * np.float32(model.in_scale)
    with EmulatedBoard(load_board(BOARD), elf) as emu:
        runner = boot(emu)
        assert runner.load(x.tobytes())[-1] == "m-load-done"
        scores, _, _ = runner.infer(1, 0)
    assert scores == [float(f"{reference_score(x_float, out[0], model):0.3f}")]


def test_failed_loads_leave_the_runner_nothing_to_score(toycar: tuple[Int8Model, Path]) -> None:
    """After a scored window, loads that fail must not let the next infer report anything the
    runner could take for a result: no m-results (it then stops) and no m-lap-us."""
    model, elf = toycar
    good = segments(ad01_file(3).astype("<f4").tobytes())[0]
    with EmulatedBoard(load_board(BOARD), elf) as emu:
        runner = boot(emu)
        runner.load(good)
        assert runner.infer(1, 0)[0] is not None
        # the case: a size the model does not take, then the runner's db lines anyway
        answers = runner.load(bytes(AD_SEGMENT + 4))
        assert answers[0] == "e-[db load 2564: this ad01 model takes 640 (int8) or 2560 (float32) bytes]"
        assert all(a.startswith("e-[No db load under way") for a in answers[1:])
        scores, elapsed, lines = runner.infer(1, 0)
        assert scores is None and elapsed is None and lines[0].startswith("e-[No input loaded")
        # a garbled line in the middle of a load
        runner.command(f"db load {AD_SEGMENT}")
        assert runner.command("db " + good[:MAX_BYTES].hex()) == []
        assert runner.command("db 0x") == ["e-[Invalid hex digit]"]
        assert runner.infer(1, 0)[0] is None
        # an incomplete load
        runner.command(f"db load {AD_SEGMENT}")
        runner.command("db " + good[:MAX_BYTES].hex())
        assert runner.infer(1, 0)[0] is None
        assert runner.command("results") == ["e-[No results: the last infer did not run on a loaded input]"]
        # and a good load works again
        runner.load(good)
        assert runner.infer(1, 0)[0] is not None


def test_timestamps_have_microsecond_resolution(toycar: tuple[Int8Model, Path]) -> None:
    """m-lap-us- comes from SysTick, not from a millisecond clock times 1000: timestamps are not
    multiples of 1000, and one inference's elapsed time matches its latency in SysTick ticks.
    (The time between two commands is not checked: while the firmware idles in WFI, QEMU's
    virtual clock follows the host's, which is noisy.)"""
    model, elf = toycar
    x = np.zeros((1, model.input_bytes), np.int8)
    with EmulatedBoard(load_board(BOARD), elf) as emu:
        runner = boot(emu)
        stamps = [int(LAP.match(runner.command("timestamp")[0]).group(1)) for _ in range(4)]  # type: ignore[union-attr]
        assert stamps == sorted(stamps) and any(t % 1000 for t in stamps)
        runner.load(x.tobytes())
        _, elapsed, _ = runner.infer(1, 0)
        _, elapsed_1500, _ = runner.infer(1500, 10)  # the runner's ad01 performance step
        assert elapsed is not None and elapsed_1500 == pytest.approx(1500 * elapsed, rel=0.01)
        link = Link(runner.transport, emu.url, 5.0)  # the same input, timed by the binary protocol
        result = link.request(p.Infer(1), p.Result, timeout=10.0)
        link.send(p.Exit(0))
        assert emu.wait(10.0) == 0
    clock_hz = load_board(BOARD).hardware["clock_hz"]
    assert elapsed is not None and elapsed == pytest.approx(result.latency * 1e6 / clock_hz, rel=0.02)


def test_classifier_formats_and_scores(classifier: tuple[Int8Model, Path, str]) -> None:
    """kws01 sends int8 features; vww01 and ic01 (EEMBC=1 for a classifier) send uint8 pixels,
    which become pixel - 128. Every output prints as "%0.3f" of the dequantized float32."""
    model, elf, eembc = classifier
    benchmark = {"1": "ic01"}.get(eembc, eembc)
    rng = np.random.default_rng(11)
    data = [rng.integers(0, 256, model.input_bytes, dtype=np.uint8).tobytes() for _ in range(3)]
    if benchmark == "kws01":
        x = np.stack([np.frombuffer(d, np.int8) for d in data])
    else:
        x = np.stack([(np.frombuffer(d, np.uint8).astype(np.int16) - 128).astype(np.int8) for d in data])
    out = host_reference(model, x)
    want = [[float(f"{v:0.3f}") for v in (o.astype(np.float32) - np.float32(model.out_zp)) * np.float32(model.out_scale)]
            for o in out]
    with EmulatedBoard(load_board(BOARD), elf) as emu:
        runner = boot(emu)
        assert runner.command("profile")[1] == f"m-model-[{benchmark}]"
        got = []
        for d in data:
            assert runner.load(d)[-1] == "m-load-done"
            got.append(runner.infer(1, 0)[0])
        assert runner.command(f"db load {4 * model.input_bytes}")[0].startswith("e-[db load")  # no float32 here
    assert got == want


def test_help_and_binary_protocol_after_the_host_speaks_it(toycar: tuple[Int8Model, Path]) -> None:
    model, elf = toycar
    with EmulatedBoard(load_board(BOARD), elf) as emu:
        runner = boot(emu)
        help_lines = runner.command("help")
        assert help_lines[0] == "ULPMark for tinyML Firmware V0.0.1"
        assert help_lines[-1] == "results      : Return the result fp32 vector"
        assert runner.command("bogus") == ["e-[Unknown command: bogus]"]
        link = Link(runner.transport, emu.url, 5.0)
        hello = link.request(p.HelloReq(), p.Hello, timeout=5.0)
        assert hello.model_hash == model.hash8
        link.send(p.Exit(3))
        assert emu.wait(10.0) == 3


def test_unknown_benchmark_is_refused_by_make(shared: Path, tmp_path: Path) -> None:
    render_project(load_board(BOARD), int8_model(shared / "models" / "vib_cnn_int8.tflite"), tmp_path / "fw")
    proc = subprocess.run(["make", "EEMBC=sww01"], cwd=tmp_path / "fw", capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "EEMBC=sww01 is not a benchmark" in proc.stderr


def test_the_runner_finds_the_emulated_board_by_usb_id(toycar: tuple[Int8Model, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """tinyml.device.mlperf_runner: the pty it bridges is listed with the reference DUT's VID/PID,
    as the runner's DeviceManager.scan looks for it, and answers the runner's precheck `name%`."""
    import threading

    import serial
    from serial.tools import list_ports

    from tinyml.device import mlperf_runner

    monkeypatch.setattr(list_ports, "comports", list_ports.comports)  # restored afterwards
    try:
        import usb.core
        monkeypatch.setattr(usb.core, "find", usb.core.find)
    except ImportError:  # the wrapper puts stand-ins into sys.modules: take them out afterwards
        monkeypatch.setitem(sys.modules, "usb", None)
        monkeypatch.setitem(sys.modules, "usb.core", None)
    _, elf = toycar
    stop = threading.Event()
    with EmulatedBoard(load_board(BOARD), elf) as emu:
        host, port = parse_tcp(emu.url) or ("", 0)
        transport = SocketTransport(host, port, CONNECT_TIMEOUT_S)
        assert mlperf_runner.wait_for_boot(transport) == b"m-init-done\r\nm-ready\r\n"
        path = mlperf_runner.bridge(transport, stop)
        mlperf_runner.list_as_usb(path, *mlperf_runner.REFERENCE_DUT)
        found = [p.device for p in list_ports.comports(True) if (p.vid, p.pid) == (0x0483, 0x374B)]
        assert found == [path]
        assert list(sys.modules["usb.core"].find(find_all=True)) == []
        with serial.Serial(path, 921600, timeout=1) as tty:  # what precheck_device_name does
            tty.write(b"name%")
            answer = b""
            while b"m-ready" not in answer and (chunk := tty.read(64)):
                answer += chunk
        stop.set()
        transport.close()
    assert answer == b"m-name-dut-[tinyml]\r\nm-ready\r\n"


def test_runner_wrapper_needs_the_runner_directory(tmp_path: Path) -> None:
    from tinyml.device.mlperf_runner import run_runner
    from tinyml.errors import InputError

    with pytest.raises(InputError, match="no main.py"):
        run_runner(tmp_path, [])
