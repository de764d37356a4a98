"""Capture in the firmware itself: run-mode firmware for the emulated Cortex-M4F (QEMU
mps2-an386) keeps a ring of raw windows and streams them as SAMPLES; `tinyml capture`'s code
path reassembles exactly what the sensor hook produced, and each window is the one behind the
RESULT of the same seq."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyml.data.dataset import load
from tinyml.device import capture as cap
from tinyml.device import protocol as p
from tinyml.device.link import open_link
from tinyml.device.qemu import EmulatedBoard
from tinyml.device.windows import WindowAssembler
from tinyml.firmware.boards import load_board
from tinyml.firmware.render import render_project
from tinyml.rundir import int8_model

BOARD = "qemu-mps2-an386"
# A sensor hook (the user's file in a real project) that delivers window k as k*1000 + i, one
# window every 20 ms: exactly representable floats, so the host can check every value.
HOOK = r"""
#include "tinyml_port.h"
#include "tinyml_run.h"

int tinyml_sensor_read(float *samples, unsigned window, unsigned channels)
{
    static uint32_t k, last;
    if (port_millis() - last < 20u)
        return 1;
    last = port_millis();
    for (unsigned i = 0; i < window * channels; i++)
        samples[i] = (float)(k * 1000u + i);
    k++;
    return 0;
}
"""


def expected(k: int) -> np.ndarray:
    return (k * 1000 + np.arange(256 * 3, dtype=np.float64)).reshape(256, 3).astype(np.float32)


@pytest.fixture(scope="module")
def run_mode_elf(trained_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fw") / "fw"
    render_project(load_board(BOARD), int8_model(trained_run.run_dir), out)
    (out / "src" / "tinyml_sensor.c").write_text(HOOK)
    build = subprocess.run(["make", "-s", "MODE=run"], cwd=out, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    return out / "build" / "firmware.elf"


def test_firmware_streams_and_keeps_raw_windows(run_mode_elf: Path, tmp_path: Path) -> None:
    out = tmp_path / "fw.npz"
    with EmulatedBoard(load_board(BOARD), run_mode_elf) as emu, \
            open_link(emu.url, timeout=5, connect_timeout=10) as link:
        req = cap.CaptureRequest("hook", out, windows=5)
        ds, got = cap.run_capture(lambda g, e: cap.collect_protocol(link, req, g, e, lambda _: None), req)
        # what the sensor hook produced, value for value, at the training data's rate
        ks = [int(w[0, 0]) // 1000 for w in got.windows]
        assert ks == list(range(ks[0], ks[0] + 5))
        for k, w in zip(ks, got.windows, strict=True):
            np.testing.assert_array_equal(w, expected(k))
        assert ds.fs == 2560.0 and ds.x.shape == (5, 256, 3)
        prov = load(out).meta["provenance"]
        assert prov["sensor"] == ["hook"] * 5 and prov["window"] == ks  # window k is the k-th read: seq k
        # the stream stopped after 5 (CAPTURE count); capture's closing STOP is acknowledged too
        while not isinstance(m := link.recv(5), p.Ack):
            assert m is not None and not isinstance(m, p.Samples)
        assert (m.for_type, m.value) == (p.Capture.TYPE, 0)
        # the ring answers mode 2 with the newest windows
        results = {}
        ack = link.request(p.Capture(p.CAPTURE_RECENT, 3), p.Ack,
                           match=lambda m: isinstance(m, p.Ack) and m.for_type == p.Capture.TYPE)
        assert ack.value == 3
        asm, recent = WindowAssembler(), []
        while len(recent) < 3:
            m = link.recv(5)
            assert m is not None
            if isinstance(m, p.Result):
                results[m.seq] = m
            elif isinstance(m, p.Samples):
                raw = asm.feed(m)
                if raw is not None:
                    recent.append(raw)
        ids = [w.window for w in recent]
        assert ids == list(range(ids[0], ids[0] + 3)) and ids[-1] >= ks[-1]  # the newest reads
        for w in recent:
            np.testing.assert_array_equal(w.values, expected(w.window))
        # all windows seen so far: 4 in the ring at most, oldest first
        ack = link.request(p.Capture(p.CAPTURE_RECENT, 0), p.Ack,
                           match=lambda m: isinstance(m, p.Ack) and m.for_type == p.Capture.TYPE)
        assert ack.value == 4
        err = link.request(p.Capture(7, 0), p.Error, match=lambda m: isinstance(m, p.Error))
        assert err.code == p.ERR_BAD_LENGTH and "unknown capture mode" in err.message


def test_validation_firmware_refuses_capture(trained_run, tmp_path: Path) -> None:
    out = tmp_path / "fw"
    render_project(load_board(BOARD), int8_model(trained_run.run_dir), out)
    build = subprocess.run(["make", "-s"], cwd=out, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    with EmulatedBoard(load_board(BOARD), out / "build" / "firmware.elf") as emu, \
            open_link(emu.url, timeout=5, connect_timeout=10) as link:
        err = link.request(p.Capture(p.CAPTURE_STREAM, 0), p.Error)
        assert err.code == p.ERR_UNSUPPORTED and "build MODE=run" in err.message
