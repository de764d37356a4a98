"""Run-mode firmware with integer preprocessing on the four emulated boards: it links (also on
the lx106, whose libgcc has neither soft double nor 64-bit division), boots, reads windows from
a sensor hook and sends RESULTs whose whole output equals the TFLM host reference for the int8
inputs Python computes from the same windows."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tinyml.device import protocol as p
from tinyml.firmware.boards import load_board
from tinyml.firmware.build import ELF_NAME
from tinyml.firmware.render import render_project
from tinyml.hil import emulated_link, host_reference
from tinyml.preprocess import Preprocess
from tinyml.rundir import int8_model

EMULATED = ["qemu-mps2-an386", "qemu-mps3-an547", "qemu-riscv32", "qemu-xtensa-lx106"]


def sensor_source(windows: np.ndarray) -> str:
    """A sensor hook replaying ``windows`` [N, T, C] in turn from a table (no float arithmetic:
    the lx106 has no soft-float multiply)."""
    n, t, c = windows.shape
    rows = ",\n".join("{" + ", ".join(float(v).hex() + "f" if v else "0.0f" for v in w.ravel()) + "}"
                      for w in windows.astype(np.float32))
    return f"""#include <string.h>

#include "tinyml_run.h"

static const float replay[{n}][{t * c}] = {{
{rows}
}};
static unsigned next;

int tinyml_sensor_read(float *samples, unsigned window, unsigned channels)
{{
    memcpy(samples, replay[next % {n}u], sizeof replay[0]);
    (void)window;
    (void)channels;
    next++;
    return 0;
}}
"""


def run_mode_outputs(board_name: str, run_dir: Path, windows: np.ndarray, out: Path) -> list[p.Result]:
    board = load_board(board_name)
    render_project(board, int8_model(run_dir), out)
    (out / "src" / "tinyml_sensor.c").write_text(sensor_source(windows))
    build = subprocess.run(["make", "-s", "-j2", "MODE=run"], cwd=out, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    results: list[p.Result] = []
    with emulated_link(board, out / ELF_NAME, 5.0) as link:
        deadline = time.monotonic() + 60.0
        while len(results) < len(windows) and time.monotonic() < deadline:
            msg = link.recv(5.0)
            if isinstance(msg, p.Result):
                results.append(msg)
    return results


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A temperature autoencoder on the default features, integer preprocessing (the default)."""
    from tinyml.data.synth import TemperatureOptions, synth_temperature
    from tinyml.quantize import quantize_run
    from tinyml.train.fit import TrainOptions, train

    base = tmp_path_factory.mktemp("int_feature_run")
    ds = synth_temperature(TemperatureOptions(per_class=30, seed=4))
    data = ds.save(base / "temperature.npz")
    train(ds, "autoencoder", base / "run", TrainOptions(epochs=4, quiet=True), dataset_path=data)
    quantize_run(base / "run", tolerance=100.0)
    return base / "run", data


@pytest.mark.parametrize("board_name", EMULATED)
@pytest.mark.parametrize("which", ["per_window", "features"])
def test_run_mode_links_runs_and_matches_the_host(board_name: str, which: str, trained_run, feature_run,
                                                  tmp_path: Path) -> None:
    from tinyml.data.dataset import load

    run_dir, data = (trained_run.run_dir, trained_run.data) if which == "per_window" else feature_run
    pre = Preprocess.from_run(run_dir)
    assert pre.integer and pre.mode == which
    windows = load(data).x[[0, 5]].astype(np.float32)
    results = run_mode_outputs(board_name, run_dir, windows, tmp_path / "fw")
    assert len(results) == len(windows), "the run-mode firmware sent no RESULT for each window"
    model = int8_model(run_dir)
    reference = host_reference(model, pre.int8_inputs(windows, model.in_scale, model.in_zp))
    for result, ref in zip(results, reference, strict=True):
        n = len(result.output)
        assert list(result.output) == ref[:n].tolist()
