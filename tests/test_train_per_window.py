"""The cnn1d's per_window preprocessing: its properties, and the firmware's C twin
(tinyml_run.c rendered from a trained run) giving the same int8 model inputs as Python."""

from __future__ import annotations

import ctypes
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import record_preprocess
from tinyml.data.features import quantize_features
from tinyml.errors import InputError
from tinyml.firmware.boards import load_board
from tinyml.firmware.render import render_project
from tinyml.model.interpreters import io_quantization
from tinyml.preprocess import MIN_STD, Preprocess, per_window_inputs
from tinyml.rundir import int8_model


def test_shape_channels_are_standardised_within_each_window_and_levels_are_log_std():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, (5, 64, 3)) * np.array([0.01, 1.0, 100.0])  # four decades of level
    out = per_window_inputs(x.astype(np.float32), np.zeros(3), np.ones(3))
    assert out.shape == (5, 64, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., :3].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out[..., :3].std(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(out[..., 3:], np.broadcast_to(np.log(x.std(axis=1))[:, None], (5, 64, 3)),
                               rtol=1e-5)


@pytest.mark.parametrize(("arithmetic", "gain", "atol"), [("float64", 8.0, 1e-5), ("integer", 0.5, 0.02)])
def test_a_louder_window_has_the_same_shape_and_a_shifted_level(arithmetic: str, gain: float, atol: float):
    x = np.random.default_rng(1).normal(0, 1, (4, 32, 2)).astype(np.float32)
    pre = Preprocess.fit(x, "per_window", ["a", "b"], 100.0, arithmetic=arithmetic)
    quiet, loud = pre.apply(x), pre.apply(x * np.float32(gain))  # (integer: inside the training's sample range)
    np.testing.assert_allclose(loud[..., :2], quiet[..., :2], atol=atol)
    np.testing.assert_allclose(loud[..., 2:] - quiet[..., 2:], np.broadcast_to(np.log(gain) / pre.std, (4, 32, 2)),
                               rtol=1e-4, atol=atol)


def test_a_flat_channel_gives_finite_inputs():
    x = np.zeros((2, 16, 1), np.float32)
    x[1] = 3.0
    out = per_window_inputs(x, np.zeros(1), np.ones(1))
    assert np.isfinite(out).all() and (out[..., 0] == 0).all()
    np.testing.assert_allclose(out[..., 1], np.float32(np.log(MIN_STD)))


def test_an_unknown_mode_in_preprocess_json_is_a_clean_error(tmp_path: Path):
    (tmp_path / "preprocess.json").write_text(json.dumps({"mode": "wavelet", "window": 4, "channels": ["x"],
                                                          "fs": 1.0, "mean": [0.0], "std": [1.0]}))
    with pytest.raises(InputError, match="unknown mode 'wavelet'"):
        Preprocess.from_json(json.loads((tmp_path / "preprocess.json").read_text()))
    with pytest.raises(InputError, match="unknown preprocessing mode"):
        Preprocess.fit(np.zeros((2, 4, 1)), "wavelet", ["x"], 1.0)


def _c_preprocess(project: Path, tmp: Path) -> ctypes.CDLL:
    """The project's run-mode preprocessing compiled for the host with the firmware's FP flags."""
    lib = tmp / "librun.so"
    src = project / "src"
    proc = subprocess.run(["gcc", "-std=gnu11", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", "-shared",
                           "-fPIC", f"-I{src}", f"-I{project / 'model'}", *_run_sources(project), "-o", str(lib), "-lm"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(lib))


def _run_sources(project: Path) -> list[str]:
    """The run-mode preprocessing's C files (with the integer features when the run uses them)."""
    src = project / "src"
    return [str(p) for p in (src / "tinyml_run.c", src / "tinyml_sensor.c", src / "tinyml_features_int.c")
            if p.is_file()]


@dataclass(frozen=True)
class RunModeCase:
    project: Path           # firmware project rendered from the trained cnn1d run
    windows: np.ndarray     # raw windows [N, T, C]
    expected: np.ndarray    # Python's int8 model inputs [N, T * 2C], rounded as the C rounds


@pytest.fixture(scope="module", params=["integer", "float64"])
def run_mode_case(request, trained_run, shared, tmp_path_factory) -> RunModeCase:
    """Real fan windows, synthetic ones at 1, 1e-3 and 1e3 times their level, and a flat one; for
    the trained run (integer per_window) and a float64 copy of it (as runs trained before)."""
    import shutil

    from tinyml.data.dataset import load
    from tinyml.data.importer import ImportOptions, import_data

    base = tmp_path_factory.mktemp("per_window")
    run_dir = trained_run.run_dir
    if request.param == "float64":
        run_dir = base / "float_run"
        shutil.copytree(trained_run.run_dir, run_dir)
        train = load(trained_run.data)
        Preprocess.fit(train.x[train.split == 0], "per_window", train.channels, train.fs,
                       arithmetic="float64").save(run_dir)
        record_preprocess(run_dir)  # a deliberate swap: record it, as train and quantize would
    project = render_project(load_board("qemu-mps2-an386"), int8_model(run_dir), base / "fw")
    pre = Preprocess.from_run(run_dir)
    assert pre.arithmetic == request.param
    fan = import_data([shared / "datasets/fan-imbalance/accelerometer.csv"],
                      ImportOptions(columns=["x", "y", "z"], label_column="Sensor Configuration",
                                    group_column="Rotation Speed Percentage", fs=50.0, window=pre.window))
    synthetic = load(trained_run.data).x[::8]
    flat = np.full((1, pre.window, 3), 0.5, np.float32)
    windows = np.concatenate([fan.x[::6], synthetic, synthetic * np.float32(1e-3), synthetic * np.float32(1e3),
                              flat]).astype(np.float32)
    q = io_quantization((run_dir / "model_int8.tflite").read_bytes())
    width = int(np.prod(q.in_shape))
    if pre.integer:
        expected = pre.int8_inputs(windows, q.in_scale, q.in_zp)
    else:
        expected = quantize_features(pre.apply(windows).reshape(len(windows), -1), np.zeros(width), np.ones(width),
                                     q.in_scale, q.in_zp)
    assert len(np.unique(expected)) > 100  # the comparison spans the int8 range
    return RunModeCase(project, windows, expected)


def test_firmware_preprocessing_on_the_host_matches_python_bit_for_bit(run_mode_case, tmp_path: Path):
    lib = _c_preprocess(run_mode_case.project, tmp_path)
    got = np.zeros_like(run_mode_case.expected)
    for i, window in enumerate(run_mode_case.windows):
        w = np.ascontiguousarray(window)
        lib.tinyml_preprocess(w.ctypes.data_as(ctypes.c_void_p), got[i].ctypes.data_as(ctypes.c_void_p))
    assert np.array_equal(got, run_mode_case.expected), f"{np.count_nonzero(got != run_mode_case.expected)} differ"


def test_firmware_preprocessing_on_cortex_m4_matches_python_bit_for_bit(run_mode_case, tmp_path: Path):
    """On the firmware's own target: integers, or (float64 runs) doubles in software and picolibc's log."""
    pick = np.r_[0:4, -8:0]  # fan windows, the loudest and quietest synthetic ones, the flat one
    got, instructions = m4_preprocess(run_mode_case.project, run_mode_case.windows[pick], tmp_path)
    want = run_mode_case.expected[pick]
    assert got.shape == want.shape
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} int8 inputs differ"
    assert instructions > 10 * run_mode_case.windows[0].size  # it ran the window, not a stub


M4_MAIN = r"""
#include <stdint.h>
#include <stdio.h>

#include "tinyml_config.h"
#include "tinyml_run.h"
#include "windows.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static int8_t input[TINYML_INPUT_BYTES];

int main(void)
{
    for (unsigned w = 0; w < N_WINDOWS; w++) {
        tinyml_preprocess(windows[w], input);
        printf("input ");
        for (unsigned i = 0; i < TINYML_INPUT_BYTES; i++)
            printf("%02x", (unsigned)(uint8_t)input[i]);
        printf("\n");
    }
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 5u;
    uint32_t start = SYST_CVR;
    tinyml_preprocess(windows[0], input);
    uint32_t end = SYST_CVR;
    printf("ticks %lu\n", (unsigned long)((start - end) & 0x00FFFFFFu));
    return 0;
}
"""


def m4_preprocess(project: Path, windows: np.ndarray, tmp: Path) -> tuple[np.ndarray, int]:
    """The rendered run-mode C on a Cortex-M4F (QEMU mps2-an386, arm-none-eabi-gcc -O2
    -ffp-contract=off, picolibc): int8 inputs per window and instructions for one window."""
    bench = _data_features_benchmark()
    rows = ",\n".join("{" + ", ".join(float(v).hex() + "f" if v else "0.0f" for v in w.ravel()) + "}"
                      for w in windows)
    (tmp / "windows.h").write_text(f"#define N_WINDOWS {len(windows)}u\nstatic const float windows"
                                   f"[{len(windows)}][{windows[0].size}] = {{\n{rows}\n}};\n")
    (tmp / "main.c").write_text(M4_MAIN)
    src, elf = project / "src", tmp / "preprocess.elf"
    proc = subprocess.run(["arm-none-eabi-gcc", *bench.M4F, "-std=gnu11", "-O2", "-ffp-contract=off",
                           f"-I{src}", f"-I{project / 'model'}", f"-I{tmp}", *bench.PICOLIBC, str(tmp / "main.c"),
                           *_run_sources(project), "-lm", "-o", str(elf)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([*bench.QEMU, "-kernel", str(elf)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = (run.stdout + run.stderr).splitlines()
    got = np.array([np.frombuffer(bytes.fromhex(ln.split()[1]), np.int8) for ln in lines if ln.startswith("input")])
    ticks = int(next(ln.split()[1] for ln in lines if ln.startswith("ticks")))
    return got, ticks * bench.INSTRUCTIONS_PER_TICK


def _data_features_benchmark():
    """benchmarks/data_features.py: its M4F flags, picolibc link options and QEMU command."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "data_features.py"
    if "data_features_bench" not in sys.modules:
        spec = importlib.util.spec_from_file_location("data_features_bench", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["data_features_bench"] = module
        spec.loader.exec_module(module)
    return sys.modules["data_features_bench"]

