"""The MLPerf Tiny runner's text commands in the bare-metal firmware (`make EEMBC=1`) on qemu-mps2-an386,
sharing the serial line with the binary device protocol."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyml.device import protocol as p
from tinyml.device.link import Link, open_link
from tinyml.device.qemu import CONNECT_TIMEOUT_S, EmulatedBoard
from tinyml.firmware.boards import load_board
from tinyml.firmware.build import ELF_NAME
from tinyml.firmware.render import render_project
from tinyml.hil import host_reference
from tinyml.rundir import Int8Model, int8_model

BOARD = "qemu-mps2-an386"
HEX_PER_LINE = 32  # bytes per `db HEX%` line: 64 hex digits stay within the runner's 80-character commands


@pytest.fixture(scope="module")
def eembc_firmware(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Int8Model, Path]:
    model = int8_model(shared / "models" / "vib_cnn_int8.tflite")
    out = tmp_path_factory.mktemp("eembc") / "fw"
    render_project(load_board(BOARD), model, out)
    subprocess.run(["make", "-j2", "EEMBC=1"], cwd=out, check=True, capture_output=True, timeout=300)
    return model, out / ELF_NAME


def until_ready(link: Link) -> list[str]:
    """The text lines up to and without the next `m-ready`."""
    lines: list[str] = []
    while True:
        event = link.recv_event(10.0)
        assert event is not None, f"no m-ready; got {lines}"
        if isinstance(event, p.Text):
            line = event.line.strip()
            if line == "m-ready":
                return lines
            lines.append(line)


def command(link: Link, text: str) -> list[str]:
    """Send one runner command; the lines it printed before its `m-ready`."""
    link.write_raw(text.encode() + b"%")
    return until_ready(link)


def test_runner_commands_load_infer_and_report_tflm_outputs(eembc_firmware: tuple[Int8Model, Path]) -> None:
    model, elf = eembc_firmware
    x = np.random.default_rng(7).integers(-128, 128, (1, model.input_bytes), dtype=np.int8)
    expect = model.out_scale * (host_reference(model, x)[0].astype(np.float64) - model.out_zp)
    with EmulatedBoard(load_board(BOARD), elf) as emu, open_link(emu.url, 115200, 5.0, CONNECT_TIMEOUT_S) as link:
        assert isinstance(link.recv(5.0), p.Hello)  # the binary HELLO at boot, then the runner's banner
        assert until_ready(link) == ["m-init-done"]
        assert command(link, "name") == ["m-name-dut-[tinyml]"]
        assert command(link, f"db load {model.input_bytes}") == [f"m-[Expecting {model.input_bytes} bytes]"]
        data = x[0].tobytes()
        loaded = [line for off in range(0, len(data), HEX_PER_LINE)
                  for line in command(link, "db " + data[off:off + HEX_PER_LINE].hex())]
        assert loaded == ["m-load-done"]
        lines = command(link, "infer 1 0")
        assert lines[0] == "m-warmup-start-0" and "m-infer-done" in lines
        results = [line for line in lines if line.startswith("m-results-[")]
        assert results == command(link, "results")
        values = [float(v) for v in results[0][len("m-results-["):-1].split(",")]
        assert values == pytest.approx(expect, abs=0.0006)  # the device prints 3 decimals
        # the binary protocol still works on the same line, and ends the emulator
        hello = link.request(p.HelloReq(), p.Hello, timeout=5.0)
        assert hello.model_hash == model.hash8
        link.send(p.Exit(3))
        assert emu.wait(10.0) == 3


def test_bad_runner_command_is_answered_not_fatal(eembc_firmware: tuple[Int8Model, Path]) -> None:
    model, elf = eembc_firmware
    with EmulatedBoard(load_board(BOARD), elf) as emu, open_link(emu.url, 115200, 5.0, CONNECT_TIMEOUT_S) as link:
        assert isinstance(link.recv(5.0), p.Hello)
        assert until_ready(link) == ["m-init-done"]
        assert command(link, "db load 99999") == ["e-[db load needs a byte count from 1 to the input size]"]
        assert command(link, "bogus") == ["e-[Unknown command: bogus]"]
        assert command(link, "name") == ["m-name-dut-[tinyml]"]
        link.send(p.Exit(0))
        assert emu.wait(10.0) == 0
