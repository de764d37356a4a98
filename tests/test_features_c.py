"""The C features (firmware_templates/common/tinyml_features.c) against the Python ones.

Compiled with the host gcc into a shared library and called through ctypes; after
standardisation and int8 quantization the values must be identical for every window.
"""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cbuild import host_compile
from tinyml.data.features import (
    DEFAULT_TEMPERATURE_SPEC,
    DEFAULT_VIBRATION_SPEC,
    compute_features,
    feature_names,
    quantize_features,
)
from tinyml.data.features_c import features_c_config
from tinyml.data.synth import TemperatureOptions, VibrationOptions, synth_temperature, synth_vibration
from tinyml.paths import template_dir

SRC = template_dir("common")
BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "data_features.py"
CUSTOM_SPEC = [
    {"name": "mean"}, {"name": "std"}, {"name": "min"}, {"name": "max"}, {"name": "peak"},
    {"name": "fft_bands", "bands": 5, "fmin": 100.0, "fmax": 900.0, "log": False},
    {"name": "envelope_bands", "bands": 4, "band": [500.0, 1200.0], "fmax": 400.0, "log": False},
    {"name": "rate_of_change"}, {"name": "rolling_mean", "width": 32, "points": 5},
    {"name": "rolling_mean", "width": 5, "points": 1, "relative": True}, {"name": "diff_max"},
    {"name": "flat_fraction"}, {"name": "flat_run"},
    {"name": "kurtosis"}, {"name": "skewness"}, {"name": "crest"}, {"name": "rms"},
]


def build_library(tmp: Path, spec: list[dict], channels: list[str], fs: float, window: int) -> ctypes.CDLL:
    (tmp / "tinyml_features_config.h").write_text(features_c_config(spec, channels, fs, window))
    lib = tmp / "libfeatures.so"
    host_compile([SRC / "tinyml_features.c"], lib, includes=[tmp, SRC], flags=["-std=c99", "-Wall", "-Wextra",
                 "-Werror", "-O2"], shared=True, libs=["-lm"])
    return ctypes.CDLL(str(lib))


def c_features(lib: ctypes.CDLL, x: np.ndarray, n_features: int) -> np.ndarray:
    out = np.zeros((x.shape[0], n_features), np.float32)
    row = np.zeros(n_features, np.float32)
    for i in range(x.shape[0]):
        window = np.ascontiguousarray(x[i], dtype=np.float32)
        lib.tinyml_features_compute(window.ctypes.data_as(ctypes.c_void_p), row.ctypes.data_as(ctypes.c_void_p))
        out[i] = row
    return out


def c_quantize(lib: ctypes.CDLL, feats: np.ndarray, mean: np.ndarray, std: np.ndarray, scale: float,
               zp: int) -> np.ndarray:
    out = np.zeros(feats.shape, np.int8)
    mean, std = np.ascontiguousarray(mean, np.float32), np.ascontiguousarray(std, np.float32)
    row = np.zeros(feats.shape[1], np.int8)
    for i in range(feats.shape[0]):
        f = np.ascontiguousarray(feats[i], np.float32)
        lib.tinyml_features_quantize(f.ctypes.data_as(ctypes.c_void_p), mean.ctypes.data_as(ctypes.c_void_p),
                                     std.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint(feats.shape[1]),
                                     ctypes.c_float(scale), ctypes.c_int(zp), row.ctypes.data_as(ctypes.c_void_p))
        out[i] = row
    return out


def input_quantization(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Standardisation constants and an int8 scale/zero point as a converter would pick for the input."""
    mean = feats.mean(axis=0).astype(np.float32)
    std = np.where(feats.std(axis=0) > 0, feats.std(axis=0), 1.0).astype(np.float32)
    z = (feats - mean) / std
    lo, hi = min(float(z.min()), 0.0), max(float(z.max()), 0.0)
    scale = (hi - lo) / 255.0
    return mean, std, scale, int(round(-128 - lo / scale))


@pytest.fixture(scope="module")
def vibration():
    return synth_vibration(VibrationOptions(per_class=16, windows_per_recording=4, seed=3))


@pytest.fixture(scope="module")
def fan_windows(shared):
    from tinyml.data.importer import ImportOptions, import_data
    ds = import_data([shared / "datasets/fan-imbalance/accelerometer.csv"],
                     ImportOptions(columns=["x", "y", "z"], label_column="Sensor Configuration",
                                   group_column="Rotation Speed Percentage", fs=50.0, window=128))
    return ds.x[::4], ds.fs, ds.channels


def assert_same_int8(lib, x, fs, spec, channels):
    n_feat = len(feature_names(spec, channels))
    py = compute_features(x, fs, spec)
    c = c_features(lib, x, n_feat)
    assert c.shape == py.shape
    mean, std, scale, zp = input_quantization(py)
    q_py = quantize_features(py, mean, std, scale, zp)
    q_c = c_quantize(lib, c, mean, std, scale, zp)
    assert np.array_equal(q_py, q_c), f"{np.count_nonzero(q_py != q_c)} int8 values differ"
    assert len(np.unique(q_py)) > 50  # the comparison covers the int8 range, not a constant
    return py, c


def test_default_vibration_spec_matches_c_on_synthetic(tmp_path, vibration):
    lib = build_library(tmp_path, DEFAULT_VIBRATION_SPEC, vibration.channels, vibration.fs, 256)
    py, c = assert_same_int8(lib, vibration.x, vibration.fs, DEFAULT_VIBRATION_SPEC, vibration.channels)
    np.testing.assert_allclose(c, py, rtol=1e-5, atol=1e-6)


def test_custom_spec_matches_c_on_synthetic(tmp_path, vibration):
    lib = build_library(tmp_path, CUSTOM_SPEC, vibration.channels, vibration.fs, 256)
    assert_same_int8(lib, vibration.x, vibration.fs, CUSTOM_SPEC, vibration.channels)


def test_vibration_spec_matches_c_on_real_fan_data(tmp_path, fan_windows):
    x, fs, channels = fan_windows
    spec = [{"name": "rms"}, {"name": "kurtosis"}, {"name": "crest"}, {"name": "fft_bands", "bands": 8},
            {"name": "envelope_bands", "bands": 4, "band": [8.0, 24.0], "fmax": 6.0}]
    lib = build_library(tmp_path, spec, channels, fs, 128)
    assert_same_int8(lib, x, fs, spec, channels)


def test_temperature_spec_matches_c(tmp_path):
    ds = synth_temperature(TemperatureOptions(per_class=24, windows_per_recording=4, seed=5))
    spec = DEFAULT_TEMPERATURE_SPEC + [{"name": "flat_run"}]
    lib = build_library(tmp_path, spec, ds.channels, ds.fs, 128)
    py, c = assert_same_int8(lib, ds.x, ds.fs, spec, ds.channels)
    stuck = ds.y == ds.classes.index("stuck")
    assert np.array_equal(c[:, -1], py[:, -1]) and py[stuck, -1].min() > py[~stuck, -1].max()


def test_quantize_rounds_halves_away_from_zero_and_clamps(tmp_path):
    lib = build_library(tmp_path, [{"name": "rms"}], ["a"], 100.0, 16)
    feats = np.array([[0.5], [-0.5], [1.5], [-2.5], [1000.0], [-1000.0], [0.49999997]], np.float32)
    args = (np.zeros(1, np.float32), np.ones(1, np.float32), 1.0, 0)
    expected = np.array([[1], [-1], [2], [-3], [127], [-128], [0]], np.int8)
    assert np.array_equal(quantize_features(feats, *args), expected)
    assert np.array_equal(c_quantize(lib, feats, *args), expected)


@pytest.mark.parametrize("cc,flags", [
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]),
    ("gcc", ["-Wpedantic", "-Wconversion", "-Wdouble-promotion", "-Wshadow"]),
])
@pytest.mark.cross_compiler
def test_compiles_warning_free(tmp_path, cc, flags):
    assert shutil.which(cc), f"{cc} is part of the toolchain set"
    (tmp_path / "tinyml_features_config.h").write_text(
        features_c_config(DEFAULT_VIBRATION_SPEC + DEFAULT_TEMPERATURE_SPEC, ["x", "y", "z"], 2560.0, 256))
    host_compile([SRC / "tinyml_features.c"], tmp_path / "f.o", obj=True, cc=cc, includes=[tmp_path, SRC],
                 flags=("-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", *flags), silent=True)


@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_cortex_m4_on_qemu_is_bit_identical_to_python(tmp_path, vibration):
    """The firmware's own target: arm-none-eabi-gcc -O2 for a Cortex-M4F, run on QEMU mps2-an386."""
    spec = importlib.util.spec_from_file_location("data_features_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["data_features_bench"] = bench
    spec.loader.exec_module(bench)
    figures = bench.m4_figures(vibration.x[:3], vibration.fs, DEFAULT_VIBRATION_SPEC, vibration.channels, tmp_path)
    assert figures["bit_identical"]
    assert figures["instructions"] > 100_000 and figures["ram"] >= 3 * 256 * 8
