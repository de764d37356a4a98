"""Each emulated board's latency counter and its instructions_per_tick, checked against a loop of
known length run on the board's own port code under QEMU."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tinyml.firmware.boards import load_board
from tinyml.firmware.render import render_project
from tinyml.rundir import int8_model

ITERATIONS = 1_000_000  # two instructions each: decrement, branch
LOOPS = {
    "cortex-m": 'mov r0, %0\\n1: subs r0, r0, #1\\n bne 1b" ::"r"(N) : "r0", "cc"',
    "riscv": 'mv t0, %0\\n1: addi t0, t0, -1\\n bnez t0, 1b" ::"r"(N) : "t0"',
    "xtensa": 'mov a8, %0\\n1: addi a8, a8, -1\\n bnez a8, 1b" ::"r"(N) : "a8"',
}
CALIBRATION_C = """#include "tinyml_app.h"
#include "tinyml_port.h"
#define N %(n)du

int tinyml_main(void)
{
    port_init();
    uint32_t start = port_latency_counter();
    __asm volatile("%(loop)s);
    uint32_t ticks = port_latency_counter() - start;
    char text[12];
    int n = 0;
    do {
        text[10 - n++] = (char)('0' + ticks %% 10u);
        ticks /= 10u;
    } while (ticks);
    text[11] = '\\n';
    port_write((const uint8_t *)text + 11 - n, (size_t)n + 1u);
    return 0;
}
"""


@pytest.mark.parametrize("board_name", ["qemu-mps2-an386", "qemu-mps3-an547", "qemu-riscv32", "qemu-xtensa-lx106"])
def test_instructions_per_tick(board_name: str, shared: Path, tmp_path: Path) -> None:
    board = load_board(board_name)
    out = render_project(board, int8_model(shared / "models" / "feat_ae_int8.tflite"), tmp_path / "fw")
    for name in ("tinyml_app.c", "tinyml_run.c", "tinyml_sensor.c"):
        (out / "src" / name).unlink()
    (out / "src" / "calibrate.c").write_text(CALIBRATION_C % {"n": ITERATIONS, "loop": LOOPS[board.family]})
    build = subprocess.run(["make", "-s"], cwd=out, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run(board.emulator_argv(out / "build" / "firmware.elf", "stdio"), stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    ticks = int(run.stdout.strip())
    instructions = ticks * board.instructions_per_tick
    assert abs(instructions - 2 * ITERATIONS) <= 0.001 * 2 * ITERATIONS + board.instructions_per_tick, ticks
