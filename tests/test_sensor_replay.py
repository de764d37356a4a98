"""The replay sensor end to end: recorded vibration windows streamed to run-mode firmware on two
emulated cores (Cortex-M4F and RV32) over REPLAY frames; every device output byte must equal the
host pipeline's (preprocess.json + TFLM) for the same samples."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.device import protocol as p
from tinyml.device.link import open_link
from tinyml.device.qemu import EmulatedBoard
from tinyml.device.replay import replay_window
from tinyml.firmware.boards import load_board

CORES = {"qemu-mps2-an386": "qemu-system-arm", "qemu-riscv32": "qemu-system-riscv32"}


def _firmware(board: str, run_dir: Path, out: Path) -> Path:
    proc = run_cli("firmware", "new", "--board", board, "--model", run_dir, "--out", out, "--sensor", "replay")
    assert proc.returncode == 0, proc.stderr
    assert "run mode reads replay on host" in proc.stdout
    build = subprocess.run(["make", "-s", "MODE=run"], cwd=out, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return out / "build" / "firmware.elf"


@pytest.mark.qemu
@pytest.mark.cross_compiler
@pytest.mark.parametrize("board", sorted(CORES))
def test_replayed_windows_give_the_host_pipelines_outputs(board: str, trained_run, tmp_path: Path) -> None:
    if shutil.which(CORES[board]) is None:
        pytest.skip(f"{CORES[board]} not installed")
    elf = _firmware(board, trained_run.run_dir, tmp_path / "fw")
    with EmulatedBoard(load_board(board), elf) as emu:
        proc = run_cli("replay", "--port", emu.url, "--model", trained_run.run_dir, "--data", trained_run.data,
                       "--limit", "6", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["windows"] == 6 and report["identical"] == 6 and report["mismatched"] == []
    assert report["device_labels"] == report["host_labels"]
    assert report["sent_values"] == 6 * 256 * 3


def test_replay_chunks_out_of_order_are_refused_and_resent_chunks_are_not_stored_twice(trained_run,
                                                                                       tmp_path: Path) -> None:
    elf = _firmware("qemu-mps2-an386", trained_run.run_dir, tmp_path / "fw")
    window = np.zeros((256, 3), np.float32)
    with EmulatedBoard(load_board("qemu-mps2-an386"), elf) as emu, \
            open_link(emu.url, 115200, timeout=5.0, connect_timeout=10) as link:
        assert isinstance(link.recv(10), p.Hello)
        first = p.Replay.of(0, [0.0] * 100)
        assert link.request(first, p.Ack).value == 100
        assert link.request(first, p.Ack).value == 100     # the same chunk again: acknowledged, not stored twice
        gap = link.request(p.Replay.of(300, [0.0] * 10), p.Error, match=lambda m: True)
        assert gap.code == p.ERR_BAD_LENGTH and "does not continue" in gap.message
        # a window from the start runs normally, and so does the next one
        for _ in range(2):
            result = replay_window(link, window)
            assert isinstance(result, p.Result)


def test_replay_sends_to_a_firmware_without_the_replay_sensor_fail_clearly(trained_run, tmp_path: Path) -> None:
    out = tmp_path / "fw"
    assert run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", trained_run.run_dir,
                   "--out", out).returncode == 0
    assert subprocess.run(["make", "-s"], cwd=out, capture_output=True).returncode == 0
    with EmulatedBoard(load_board("qemu-mps2-an386"), out / "build" / "firmware.elf") as emu:
        proc = run_cli("replay", "--port", emu.url, "--model", trained_run.run_dir, "--data", trained_run.data,
                       "--limit", "1", timeout=120)
    assert_clean_error(proc, "error 4", "no replay sensor")



HARNESS = r"""
#include <stdio.h>
#include <string.h>
#include "tinyml_bus.h"
#include "tinyml_port.h"
#include "tinyml_run.h"
int tinyml_bus_init(void) { return TINYML_BUS_OK; }
uint32_t port_millis(void) { return 0; }
unsigned tinyml_run_frames_due(void) { return 4; }
int main(void)
{
    const float sent[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float got[8] = {0};
    /* the host's window arrives before the run loop's first read, which starts the sampler */
    if (tinyml_replay_push(0, (const uint8_t *)sent, 8) != 8)
        return 2;
    for (int i = 0; i < 3; i++)
        if (tinyml_sensor_read(got, 4, 2) == 0)
            return memcmp(got, sent, sizeof sent) != 0 ? 3 : 0;
    return 1; /* never complete: starting the sampler dropped the window */
}
"""


def test_a_window_pushed_before_the_sampler_starts_is_kept(tmp_path: Path) -> None:
    """The host may send a window right after HELLO, before the run loop's first read starts the sampler (a
    race a slow emulated board under load met): starting must not drop a window already acknowledged."""
    from tests.cbuild import host_compile
    from tinyml.firmware.sensors import load_sensor, plan_sensor, sensor_config_header, sensors_dir
    from tinyml.paths import template_dir

    plan = plan_sensor(load_sensor("replay"), load_board("qemu-mps2-an386"),
                       {"mode": "raw", "window": 4, "channels": ["x", "y"], "fs": 100.0}, {})
    (tmp_path / "tinyml_sensor_config.h").write_text(sensor_config_header(plan))
    (tmp_path / "tinyml_config.h").write_text("#define TINYML_WINDOW_VALUES 8u\n#define TINYML_DUE_VALUES 8u\n")
    (tmp_path / "harness.c").write_text(HARNESS)
    exe = tmp_path / "harness"
    host_compile([sensors_dir() / "tinyml_sensor.c", sensors_dir() / "replay.c", tmp_path / "harness.c"], exe,
                 flags=("-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1"), sanitize=True,
                 includes=[tmp_path, sensors_dir(), template_dir("common")])
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}: 1 = the window was dropped, 3 = other values"
