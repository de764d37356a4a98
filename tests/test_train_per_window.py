"""The cnn1d's per_window preprocessing: its properties, and the firmware's C twin
(tinyml_run.c rendered from a trained run) giving the same int8 model inputs as Python."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyml.data.features import quantize_features
from tinyml.errors import InputError
from tinyml.firmware.boards import load_board
from tinyml.firmware.render import render_project, resolve_model
from tinyml.model.interpreters import io_quantization
from tinyml.preprocess import MIN_STD, Preprocess, per_window_inputs


def test_shape_channels_are_standardised_within_each_window_and_levels_are_log_std():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, (5, 64, 3)) * np.array([0.01, 1.0, 100.0])  # four decades of level
    out = per_window_inputs(x.astype(np.float32), np.zeros(3), np.ones(3))
    assert out.shape == (5, 64, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., :3].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out[..., :3].std(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(out[..., 3:], np.broadcast_to(np.log(x.std(axis=1))[:, None], (5, 64, 3)),
                               rtol=1e-5)


def test_a_louder_window_has_the_same_shape_and_a_shifted_level():
    x = np.random.default_rng(1).normal(0, 1, (4, 32, 2)).astype(np.float32)
    pre = Preprocess.fit(x, "per_window", ["a", "b"], 100.0)
    quiet, loud = pre.apply(x), pre.apply(x * np.float32(8.0))
    np.testing.assert_allclose(loud[..., :2], quiet[..., :2], atol=1e-5)
    np.testing.assert_allclose(loud[..., 2:] - quiet[..., 2:], np.broadcast_to(np.log(8.0) / pre.std, (4, 32, 2)),
                               rtol=1e-4)


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
        Preprocess.from_run(tmp_path)
    with pytest.raises(InputError, match="unknown preprocessing mode"):
        Preprocess.fit(np.zeros((2, 4, 1)), "wavelet", ["x"], 1.0)


def _c_preprocess(project: Path, tmp: Path) -> ctypes.CDLL:
    """The project's run-mode preprocessing compiled for the host with the firmware's FP flags."""
    lib = tmp / "librun.so"
    src = project / "src"
    proc = subprocess.run(["gcc", "-std=gnu11", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", "-shared",
                           "-fPIC", f"-I{src}", f"-I{project / 'model'}", str(src / "tinyml_run.c"),
                           str(src / "tinyml_sensor.c"), "-o", str(lib), "-lm"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(lib))


def test_firmware_preprocessing_matches_python_bit_for_bit(trained_run, shared, tmp_path: Path):
    from tinyml.data.importer import ImportOptions, import_data

    project = render_project(load_board("qemu-mps2-an386"), resolve_model(trained_run.run_dir), tmp_path / "fw")
    lib = _c_preprocess(project, tmp_path)
    pre = Preprocess.from_run(trained_run.run_dir)
    fan = import_data([shared / "datasets/fan-imbalance/accelerometer.csv"],
                      ImportOptions(columns=["x", "y", "z"], label_column="Sensor Configuration",
                                    group_column="Rotation Speed Percentage", fs=50.0, window=pre.window))
    from tinyml.data.dataset import load

    synthetic = load(trained_run.data).x[::8]
    flat = np.full((1, pre.window, 3), 0.5, np.float32)
    windows = np.concatenate([fan.x[::6], synthetic, synthetic * np.float32(1e-3), synthetic * np.float32(1e3),
                              flat]).astype(np.float32)
    q = io_quantization((trained_run.run_dir / "model_int8.tflite").read_bytes())
    width = int(np.prod(q.in_shape))
    expected = quantize_features(pre.apply(windows).reshape(len(windows), -1), np.zeros(width), np.ones(width),
                                 q.in_scale, q.in_zp)
    got = np.zeros_like(expected)
    for i, window in enumerate(windows):
        w = np.ascontiguousarray(window)
        lib.tinyml_preprocess(w.ctypes.data_as(ctypes.c_void_p), got[i].ctypes.data_as(ctypes.c_void_p))
    assert np.array_equal(got, expected), f"{np.count_nonzero(got != expected)} int8 inputs differ"
    assert len(np.unique(expected)) > 100  # the comparison spans the int8 range
