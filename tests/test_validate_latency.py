"""Validation reports latency under the name of what the device's counter counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tinyml.device import protocol as p
from tinyml.device.emulator import EmulatedFleet
from tinyml.firmware.boards import load_board
from tinyml.hil import latency_figures

pytestmark = [pytest.mark.qemu]

KEYS = ("instructions_per_inference", "cycles_per_inference", "ticks_per_inference", "latency_us_per_inference")


@pytest.mark.parametrize(("board_name", "unit", "key", "value"), [
    ("qemu-mps2-an386", p.LATENCY_TICKS, "instructions_per_inference", 4000.0),  # SysTick ticks x 40
    ("qemu-riscv32", p.LATENCY_CYCLES, "instructions_per_inference", 100.0),   # mcycle under -icount = instructions
    ("qemu-mps2-an386", p.LATENCY_US, "latency_us_per_inference", 100.0),  # another device on --port: its own unit
    ("qemu-mps2-an386", p.LATENCY_INSTRUCTIONS, "instructions_per_inference", 100.0),
    ("nucleo-f446re", p.LATENCY_CYCLES, "cycles_per_inference", 100.0),
    ("nucleo-f446re", p.LATENCY_TICKS, "ticks_per_inference", 100.0),
    ("rpi-pico", p.LATENCY_US, "latency_us_per_inference", 100.0),
])
def test_latency_is_named_by_the_devices_unit(board_name: str, unit: int, key: str, value: float) -> None:
    figures = latency_figures(load_board(board_name), unit, 100.0)
    assert figures == {k: (value if k == key else None) for k in KEYS}


def test_unknown_unit_names_nothing() -> None:
    assert latency_figures(load_board("qemu-mps2-an386"), 9, 100.0) == dict.fromkeys(KEYS)


def test_validate_port_against_emulated_device_reports_microseconds(shared: Path, tmp_path: Path) -> None:
    model = shared / "models" / "feat_ae_int8.tflite"
    report_path = tmp_path / "report.json"
    with EmulatedFleet(model, rate=0) as fleet:
        proc = run_cli("validate", "--board", "qemu-mps2-an386", "--model", model, "--limit", "4",
                       "--port", fleet.endpoints[0], "--report", report_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "µs" in proc.stdout and "instructions per inference" not in proc.stdout, proc.stdout
    report = json.loads(report_path.read_text())
    assert report["mismatches"] == 0 and report["latency_unit"] == "us"
    assert report["latency_us_per_inference"] == report["latency_mean"] > 0
    assert report["instructions_per_inference"] is None and report["cycles_per_inference"] is None
