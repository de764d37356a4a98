"""The MLPerf Tiny runner's text commands (firmware_templates/common/tinyml_eembc.c) on the host.

A harness feeds each byte to the command parser and to the binary protocol decoder, as a
firmware does, so the tests also show that both protocols share one serial line. The harness
also exposes the `%0.3f` printer and the float32 quantizer, checked here against Python's
`%0.3f` and tinyml's host quantization for many values.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.cbuild import host_compile
from tinyml.device import protocol as p
from tinyml.model.interpreters import quantize_input
from tinyml.paths import template_dir

COMMON = template_dir("common")
HARNESS = Path(__file__).parent / "vectors" / "protocol" / "eembc_harness.c"
BYTES, UINT8, FLOAT32 = 1, 2, 4  # TINYML_EEMBC_* formats
SCALE, ZERO_POINT = 0.5, -3      # the harness model's input quantization


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("eembc") / "eembc_harness"
    host_compile([HARNESS, COMMON / "tinyml_eembc.c", COMMON / "tinyml_proto.c"], exe, includes=[COMMON],
                 sanitize=True)
    return exe


def talk(exe: Path, stream: bytes, formats: int = BYTES) -> list[str]:
    proc = subprocess.run([str(exe), str(formats)], input=stream, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode().split("\r\n")[:-1]


def load(data: bytes, per_line: int = 31) -> bytes:
    """What the runner sends for one input: `db load N%`, then 31 bytes per `db HEX%` line."""
    return f"db load {len(data)}%".encode() + b"".join(
        f"db {data[i:i + per_line].hex()}%".encode() for i in range(0, len(data), per_line))


def results_of(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("m-results-[")]


def test_runner_session(harness: Path) -> None:
    lines = talk(harness, b"name%profile%db load 16%db 0102030405060708%db 090A0b0c0d0e0f10%"
                          b"db print%infer 5 2%results%timestamp%")
    assert lines == [
        "m-init-done", "m-ready",
        "m-name-dut-[tinyml]", "m-ready",
        "m-profile-[ULPMark for tinyML Firmware V0.0.1]", "m-model-[ad01]", "m-ready",
        "m-[Expecting 16 bytes]", "m-ready", "m-ready", "m-load-done", "m-ready",
        "m-buffer-01-02-03-04-05-06-07-08", "m-buffer-09-0a-0b-0c-0d-0e-0f-10", "m-ready",
        "m-warmup-start-2", "m-warmup-done", "m-infer-start-5", "m-lap-us-250", "m-lap-us-500", "m-infer-done",
        # sum(1..16) * 0.125 after 2 warm-up + 5 inferences; input 0 dequantized: (1 + 3) * 0.5
        "m-results-[17.000,7,2.000]", "m-ready",
        "m-results-[17.000,7,2.000]", "m-ready",
        "m-lap-us-750", "m-ready",
    ]


def test_infer_defaults_as_the_reference_firmware(harness: Path) -> None:
    lines = talk(harness, load(bytes([0xFF, 0xF4] + [0] * 14)) + b"infer 1%infer%")  # inputs -1 and -12
    assert lines.count("m-warmup-start-10") == 2 and lines.count("m-infer-start-1") == 2
    assert results_of(lines) == ["m-results-[-1.625,11,1.000]", "m-results-[-1.625,22,1.000]"]


def test_help_answers_like_the_reference_firmware(harness: Path) -> None:
    lines = talk(harness, b"help%")[2:]
    assert lines[:3] == ["ULPMark for tinyML Firmware V0.0.1", "", "help         : Print this information"]
    assert lines[-2:] == ["results      : Return the result fp32 vector", "m-ready"]
    assert any(line.startswith("infer N [W=0]:") for line in lines)


def test_float32_input_is_quantized_on_the_device(harness: Path) -> None:
    x = np.array([0.25, 0.75, -0.25, -0.75, 1.1, 63.9, 1e9, -1e9, -0.0, 2.0, 3.3, -7.6, 0.5, 1.5, 2.5, 100.0],
                 np.float32)
    lines = talk(harness, load(x.astype("<f4").tobytes()) + b"infer 1 0%db print%", FLOAT32 | BYTES)
    assert "m-[Expecting 64 bytes]" in lines and "m-load-done" in lines
    q = quantize_input(x, SCALE, ZERO_POINT)
    assert results_of(lines) == [f"m-results-[{q.astype(np.int64).sum() * 0.125:0.3f},1,0.250]"]
    assert f"m-buffer-{'-'.join(f'{b:02x}' for b in x.astype('<f4').tobytes()[:8])}" in lines  # the bytes sent


def test_int8_input_still_works_when_float32_is_accepted(harness: Path) -> None:
    lines = talk(harness, load(bytes(range(16))) + b"infer 1 0%", FLOAT32 | BYTES)
    assert results_of(lines) == ["m-results-[15.000,1,1.500]"]


def test_uint8_pixels_become_pixel_minus_128(harness: Path) -> None:
    pixels = bytes([0, 1, 127, 128, 129, 255] + [128] * 10)
    lines = talk(harness, load(pixels) + b"infer 1 0%", UINT8)
    assert results_of(lines) == [f"m-results-[{sum(v - 128 for v in pixels) * 0.125:0.3f},1,-62.500]"]


LOAD_ERRORS = [
    (b"db load 99%", "e-[db load 99: this ad01 model takes 16 (int8) bytes]"),
    (b"db load 20%", "e-[db load 20: this ad01 model takes 16 (int8) bytes]"),
    (b"db load x%", "e-[Command 'db load' requires the # of bytes]"),
    (b"db load%", "e-[Command 'db load' requires the # of bytes]"),
    (b"db 0102%", "e-[No db load under way: send db load N first]"),
    (b"db load 16%db 0g%", "e-[Invalid hex digit]"),
    (b"db load 16%db 012%", "e-[Insufficent number of hex digits]"),
    (b"db load 16%db " + b"01" * 17 + b"%", "e-[More bytes than db load announced]"),
]


@pytest.mark.parametrize(("command", "error"), LOAD_ERRORS + [
    (b"bogus%", "e-[Unknown command: bogus]"),
    (b"db%", "e-[Command 'db' requires a subcommand]"),
    (b"infer 0%", "e-[Inference iterations must be >0]"),
    (b"infer 3 x%", "e-[Inference warmup must be >=0]"),
    (b"infer 3 -1%", "e-[Inference warmup must be >=0]"),
    (b"results%", "e-[No results: the last infer did not run on a loaded input]"),
])
def test_bad_commands_get_an_error_and_ready(harness: Path, command: bytes, error: str) -> None:
    lines = talk(harness, command)
    assert lines[-2:] == [error, "m-ready"]


@pytest.mark.parametrize(("command", "error"), LOAD_ERRORS)
def test_a_failed_load_leaves_nothing_to_score(harness: Path, command: bytes, error: str) -> None:
    """After a good input was scored, a failed load must not let infer or results report it again:
    the runner needs m-lap-us- and m-results- lines and stops without them."""
    lines = talk(harness, load(bytes(range(16))) + b"infer 1 0%" + command + b"infer 1 0%results%")
    assert results_of(lines) == ["m-results-[15.000,1,1.500]"]
    tail = lines[lines.index(error):]
    assert tail == [error, "m-ready",
                    "e-[No input loaded: db load N and its bytes first; the last load failed or is incomplete]",
                    "m-ready", "e-[No results: the last infer did not run on a loaded input]", "m-ready"]


def test_an_incomplete_load_leaves_nothing_to_score(harness: Path) -> None:
    lines = talk(harness, load(bytes(range(16))) + b"infer 1 0%db load 16%db 0102%infer 1 0%")
    assert len(results_of(lines)) == 1
    assert lines[-2].startswith("e-[No input loaded")


def test_a_nan_input_is_refused(harness: Path) -> None:
    x = np.zeros(16, np.float32)
    x[5] = np.nan
    lines = talk(harness, load(x.astype("<f4").tobytes()) + b"infer 1 0%", FLOAT32 | BYTES)
    assert "e-[Input value is not a number (NaN)]" in lines and not results_of(lines)


def test_binary_frames_and_commands_share_the_line(harness: Path) -> None:
    frame = p.encode(p.Infer(0x25252525))  # '%' bytes inside a frame must not run a command
    assert b"%" in frame
    long_line = b"x" * 200 + b"%"  # longer than a command may be: ignored
    lines = talk(harness, frame + b"name%" + long_line + frame + b"\x01\x02%" + b"timestamp%")
    assert lines == ["m-init-done", "m-ready", "FRAME type=4", "m-name-dut-[tinyml]", "m-ready",
                     "FRAME type=4", "m-lap-us-250", "m-ready"]


def float_cases() -> np.ndarray:
    """Many float32 values: random bit patterns over the whole range, scores of every size,
    exact ties (odd sixteenths), values next to ties, and the specials."""
    rng = np.random.default_rng(18)
    bits = rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    scores = rng.uniform(0, 200, 4000).astype(np.float32)
    small = (rng.uniform(-1, 1, 2000) * 10.0 ** rng.integers(-8, 3, 2000)).astype(np.float32)
    ties = (np.arange(-800, 800, dtype=np.float64) / 8 + 1 / 16).astype(np.float32)
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    special = np.array([0.0, -0.0, 59.995853, 59.996116, 0.0005, -0.0005, 0.0015, 999.9995, 1e-45, 3.4028235e38,
                        -3.4028235e38, 16777216.0, 16777217.0, np.inf, -np.inf, np.nan], np.float32)
    return np.concatenate([bits, scores, small, ties, near, special]).astype(np.float32)


def test_scores_print_exactly_as_percent_0_3f(harness: Path) -> None:
    values = float_cases()
    stdin = "".join(f"{b:08x}\n" for b in values.view(np.uint32)).encode()
    proc = subprocess.run([str(harness), "f3"], input=stdin, capture_output=True, timeout=60, check=True)
    printed = proc.stdout.decode().split("\n")[:-1]
    expected = [f"{float(v):0.3f}" for v in values]  # what C's "%0.3f" prints
    mismatches = [(float(v), got, want) for v, got, want in zip(values, printed, expected, strict=True) if got != want]
    assert len(printed) == len(values) and not mismatches, mismatches[:5]
    assert f"{float(np.float32(59.995853)):0.3f}" == "59.996"  # the example: rounded, not truncated


@pytest.mark.parametrize(("scale", "zero_point"), [(0.5, -3), (0.0399170, 37), (1 / 255, -128), (3.7e-3, 0)])
def test_float32_quantization_matches_the_host_reference(harness: Path, scale: float, zero_point: int) -> None:
    scale32 = float(np.float32(scale))
    rng = np.random.default_rng(7)
    grid = (np.arange(-300, 300) + 0.5 - zero_point) * scale32  # x / scale + zp lands on (or next to) a tie
    x = np.concatenate([rng.normal(0, 150 * scale32, 3000), grid, np.nextafter(grid, 0), [np.inf, -np.inf, 0.0],
                        rng.uniform(-1e6, 1e6, 200)]).astype(np.float32)
    stdin = "".join(f"{b:08x}\n" for b in x.view(np.uint32)).encode()
    scale_bits = struct.unpack("<I", struct.pack("<f", scale32))[0]
    proc = subprocess.run([str(harness), "quant", f"{scale_bits:08x}", str(zero_point)], input=stdin,
                          capture_output=True, timeout=60, check=True)
    got = np.array([int(v) for v in proc.stdout.split()], np.int64)
    with np.errstate(invalid="ignore"):
        want = quantize_input(x, scale32, zero_point).astype(np.int64)
    assert np.array_equal(got, want), [(float(a), int(b), int(c)) for a, b, c in zip(x, got, want, strict=True) if b != c][:5]


@pytest.mark.cross_compiler
def test_compiles_warning_free_for_cortex_m(tmp_path: Path) -> None:
    host_compile([COMMON / "tinyml_eembc.c"], tmp_path / "eembc.o", obj=True, cc="arm-none-eabi-gcc",
                 extra=["-mcpu=cortex-m4", "-mthumb", "-Os"], silent=True)
