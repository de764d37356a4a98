"""The MLPerf Tiny runner's text commands (firmware_templates/common/tinyml_eembc.c) on the host.

A harness feeds each byte to the command parser and to the binary protocol decoder, as a
firmware does, so the tests also show that both protocols share one serial line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tinyml.device import protocol as p
from tinyml.paths import template_dir

COMMON = template_dir("common")
HARNESS = Path(__file__).parent / "vectors" / "protocol" / "eembc_harness.c"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("eembc") / "eembc_harness"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", "-I", str(COMMON), str(HARNESS), str(COMMON / "tinyml_eembc.c"),
                    str(COMMON / "tinyml_proto.c"), "-o", str(exe)], check=True, capture_output=True, text=True)
    return exe


def talk(exe: Path, stream: bytes) -> list[str]:
    proc = subprocess.run([str(exe)], input=stream, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode().split("\r\n")[:-1]


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
        "m-results-[17.000,7]", "m-ready",  # sum(1..16) * 0.125, after 2 warm-up + 5 inferences
        "m-results-[17.000,7]", "m-ready",
        "m-lap-us-750", "m-ready",
    ]


def test_default_warmup_and_negative_results(harness: Path) -> None:
    lines = talk(harness, b"db load 2%db fff4%infer 1%")  # inputs -1 and -12
    assert lines[lines.index("m-warmup-start-10") + 1] == "m-warmup-done"
    assert "m-results-[-1.625,11]" in lines


@pytest.mark.parametrize(("command", "error"), [
    (b"bogus%", "e-[Unknown command: bogus]"),
    (b"db load 99%", "e-[db load needs a byte count from 1 to the input size]"),
    (b"db load x%", "e-[db load needs a byte count from 1 to the input size]"),
    (b"db load 2%db 0g%", "e-[Invalid hex: not a hex digit]"),
    (b"db load 2%db 012%", "e-[Invalid hex: odd number of digits]"),
    (b"db load 1%db 0102%", "e-[More bytes than db load announced]"),
    (b"infer 0%", "e-[Inference iterations must be >0]"),
    (b"infer 3 x%", "e-[Warmup iterations must be a number]"),
])
def test_bad_commands_get_an_error_and_ready(harness: Path, command: bytes, error: str) -> None:
    lines = talk(harness, command)
    assert lines[-2:] == [error, "m-ready"]


def test_binary_frames_and_commands_share_the_line(harness: Path) -> None:
    frame = p.encode(p.Infer(0x25252525))  # '%' bytes inside a frame must not run a command
    assert b"%" in frame
    long_line = b"x" * 200 + b"%"  # longer than a command may be: ignored
    lines = talk(harness, frame + b"name%" + long_line + frame + b"\x01\x02%" + b"results%")
    assert lines == ["m-init-done", "m-ready", "FRAME type=4", "m-name-dut-[tinyml]", "m-ready",
                     "FRAME type=4", "m-results-[0.000,0]", "m-ready"]


def test_compiles_warning_free_for_cortex_m(tmp_path: Path) -> None:
    proc = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                           "-mcpu=cortex-m4", "-mthumb", "-Os", "-c", str(COMMON / "tinyml_eembc.c"),
                           "-o", str(tmp_path / "eembc.o")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
