"""The daily_cycle feature: state across windows, the same bit for bit in Python and in C (gcc, Cortex-M4F)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cbuild import host_compile
from tinyml.data.features import validate_spec
from tinyml.data.features_series import (
    COLUMNS,
    Stream,
    series_values,
    slots_for,
    stream_features,
    stream_slots,
)
from tinyml.data.features_series_c import series_config_header
from tinyml.errors import InputError
from tinyml.paths import template_dir

SRC = template_dir("common")
HARNESS = r"""
#include "tinyml_series_config.h"
/* n windows of means[n * C] from slot0 on, out[n * width]: width = C * the columns written */
void run(const int64_t *means, uint32_t n, uint32_t slot0, uint32_t width, int64_t *out)
{
    tinyml_series_reset(&tinyml_series_cfg, &tinyml_series_st, slot0);
    for (uint32_t i = 0; i < n; i++)
        tinyml_series_step(&tinyml_series_cfg, &tinyml_series_st, &means[i * TINYML_SERIES_CHANNELS], &out[i * width]);
}
"""


def entry(slots: int, **shifts) -> dict:
    return validate_spec([{"name": "daily_cycle", "slots": slots, **shifts}])[0]


def build(tmp, spec_entry: dict, channels: int):
    (tmp / "tinyml_series_config.h").write_text(series_config_header([spec_entry], channels))
    (tmp / "harness.c").write_text(HARNESS)
    lib = host_compile([tmp / "harness.c", SRC / "tinyml_series.c"], tmp / "libseries.so", includes=[tmp, SRC],
                       shared=True, extra=["-O2"])
    return ctypes.CDLL(str(lib))


def c_values(lib, means: np.ndarray, slot0: int, columns: int = 4) -> np.ndarray:
    means = np.ascontiguousarray(means, np.int64)
    out = np.zeros((means.shape[0], means.shape[1] * columns), np.int64)
    lib.run(means.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint32(means.shape[0]), ctypes.c_uint32(slot0),
            ctypes.c_uint32(out.shape[1]), out.ctypes.data_as(ctypes.c_void_p))
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 50), st.integers(0, 49), st.integers(0, 300), st.integers(0, 2**31 - 1),
       st.sampled_from([(2, 5, 3, 5), (0, 0, 0, 0), (16, 16, 16, 16), (1, 7, 2, 9)]),
       st.sampled_from([None, ["residual", "trend", "deviation"], ["scale"], ["trend", "scale"]]))
def test_python_and_c_agree_bit_for_bit(tmp_path_factory, channels, slots, slot0, n, seed, shifts, columns):
    e = entry(slots, **dict(zip(("profile_shift", "baseline_shift", "trend_shift", "scale_shift"), shifts,
                                strict=True)), columns=columns)
    rng = np.random.default_rng(seed)
    # window means of int16 samples in Q8, the extremes included (|m| <= 32767 * 256)
    means = rng.integers(-32767 * 256, 32767 * 256 + 1, (n, channels))
    means[rng.random((n, channels)) < 0.1] = 32767 * 256
    means[rng.random((n, channels)) < 0.1] = -32767 * 256
    py = series_values(means, (slot0 + np.arange(n)) % slots, np.zeros(n), e)
    lib = build(tmp_path_factory.mktemp("series"), e, channels)
    assert np.array_equal(c_values(lib, means, slot0, 4 if columns is None else len(columns)), py)
    if columns is not None:  # the columns asked for, of all four, in their order
        every = series_values(means, (slot0 + np.arange(n)) % slots, np.zeros(n), e | {"columns": None})
        keep = [i for i, name in enumerate(COLUMNS) if name in columns]
        assert np.array_equal(py, every.reshape(n, channels, 4)[:, :, keep].reshape(n, channels * len(keep)))


def test_the_daily_cycle_is_learned_and_a_drift_stands_out():
    slots = 48
    e = entry(slots)
    day = 10 * np.sin(2 * np.pi * np.arange(slots) / slots)
    level = np.tile(day, 6)
    level[-12:] += np.linspace(0, 6, 12)  # six hours of drift on the last day
    values = series_values((level * 256).astype(np.int64)[:, None], np.arange(len(level)) % slots,
                           np.zeros(len(level)), e) / 256.0
    residual, trend = values[:, 0], values[:, 1]
    assert np.all(residual[:slots] == 0)                       # nothing learned yet on the first day
    assert np.abs(residual[3 * slots:-12]).max() < 0.05        # then the cycle is predicted
    assert residual[-1] == pytest.approx(6, abs=0.1) and trend[-1] > 3


def test_windows_are_run_in_time_order_per_group_whatever_order_they_come_in():
    e = entry(4)
    q = np.arange(2 * 8 * 3).reshape(16, 3, 1) % 7          # 16 windows of 3 samples
    starts = np.tile(np.arange(8) * 21600.0, 2)              # two groups of 8, 6 h apart (4 slots a day)
    groups = np.repeat(["a", "b"], 8)
    ordered = stream_features(q, Stream(starts, groups), e)
    perm = np.random.default_rng(0).permutation(16)
    assert np.array_equal(stream_features(q[perm], Stream(starts[perm], groups[perm]), e), ordered[perm])
    assert list(stream_slots(starts[:5], 4)) == [0, 1, 2, 3, 0]
    with pytest.raises(InputError, match="needs each window's time"):
        stream_features(q, None, e)
    with pytest.raises(InputError, match="divides a day"):
        slots_for(7000.0)


@pytest.mark.parametrize("bad", [[], ["level"], ["trend", "residual"], ["trend", "trend"], "trend", [3]])
def test_daily_cycle_columns_are_checked(bad):
    with pytest.raises(InputError, match="bad value .* for 'columns'"):
        validate_spec([{"name": "daily_cycle", "columns": bad}])
    from tinyml.data.features import feature_names

    assert feature_names([{"name": "daily_cycle", "columns": ["trend", "scale"]}], ["a"]) == [
        "daily_cycle_a_0", "daily_cycle_a_1"]


@pytest.mark.cross_compiler
def test_the_c_builds_for_a_cortex_m4f_without_warnings(tmp_path):
    """tinyml_series.c and the integer features with a daily_cycle entry, as the firmware compiles them."""
    from tinyml.data.features_int_c import int_config_header

    spec = validate_spec([{"name": "mean"}, {"name": "daily_cycle", "slots": 48}])
    (tmp_path / "tinyml_series_config.h").write_text(series_config_header([entry(48)], 2))
    (tmp_path / "tinyml_features_int_config.h").write_text(int_config_header(
        mode="features", window=24, channels=["a", "b"], fs=1 / 300, sample_shift=[8, 8], mean=np.zeros(10),
        std=np.ones(10), in_scale=0.05, zero_point=0, spec=spec))  # the run loop's preprocessing with state
    (tmp_path / "harness.c").write_text(HARNESS)
    for src in (tmp_path / "harness.c", SRC / "tinyml_series.c", SRC / "tinyml_features_int.c"):
        host_compile([src], tmp_path / (src.stem + ".o"), obj=True, cc="arm-none-eabi-gcc", includes=[tmp_path, SRC],
                     extra=["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os"])


def test_the_run_loop_carries_the_state_bit_for_bit(tmp_path):
    """tinyml_ifeat_preprocess called window after window (as the run loop does) against Python's
    features over the same stream: the daily_cycle columns and the int8 model inputs, bit for bit."""
    from tests.intfeat_c import IntFeaturesLib
    from tinyml.data import features_int as fi

    spec = validate_spec([{"name": "mean"}, {"name": "rate_of_change"}, {"name": "daily_cycle", "slots": 8}])
    rng = np.random.default_rng(1)
    n, t, fs = 60, 24, 1 / 450.0  # 8 windows of 24 samples make a day
    k = np.arange(n * t)
    trace = np.stack([20 + 5 * np.sin(2 * np.pi * k / (8 * t)), 40 + 0.01 * k], axis=1) + rng.normal(0, 0.3, (n * t, 2))
    x = trace.reshape(n, t, 2).astype(np.float32)
    shifts = fi.sample_shifts(x)
    stream = Stream(np.arange(n) * 86400.0 / 8)
    real = fi.real_features(fi.to_samples(x, shifts), fs, spec, shifts, stream)
    mean, std = real.mean(axis=0), np.maximum(real.std(axis=0), 1e-6)
    cfg = {"mode": "features", "window": t, "channels": ["a", "b"], "fs": fs, "sample_shift": shifts,
           "mean": mean, "std": std, "in_scale": 0.05, "zero_point": -3, "spec": spec}
    values = IntFeaturesLib(tmp_path / "values", **cfg).values(x, real.shape[1])
    assert np.array_equal(values, fi.feature_values(fi.to_samples(x, shifts), fs, spec, stream))
    assert np.any(values[8:, 4:] != 0)  # after a day the state says something
    inputs = IntFeaturesLib(tmp_path / "inputs", **cfg).preprocess(x, real.shape[1])
    assert np.array_equal(inputs, fi.features_int8(x, fs, spec, shifts, mean, std, 0.05, -3, stream))


@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_the_run_loop_state_on_a_cortex_m4f_is_pythons(tmp_path):
    """The firmware's target (arm-none-eabi-gcc -O2, QEMU mps2-an386): windows in order, int8 inputs as Python's."""
    from tests.intfeat_c import m4_bench
    from tinyml.data import features_int as fi
    from tinyml.data.features_int_c import int_config_header

    bench = m4_bench()
    spec = validate_spec([{"name": "mean"}, {"name": "std"}, {"name": "daily_cycle", "slots": 4}])
    k = np.arange(20 * 16)
    x = (30 + 8 * np.sin(2 * np.pi * k / 64) + 0.02 * k).reshape(20, 16, 1).astype(np.float32)
    shifts, stream = fi.sample_shifts(x), Stream(np.arange(20) * 21600.0)
    real = fi.real_features(fi.to_samples(x, shifts), 1 / 1350.0, spec, shifts, stream)
    cfg = {"mode": "features", "window": 16, "channels": ["t"], "fs": 1 / 1350.0, "sample_shift": shifts,
           "mean": real.mean(axis=0), "std": np.maximum(real.std(axis=0), 1e-6), "in_scale": 0.05, "zero_point": 4,
           "spec": spec}
    want = fi.features_int8(x, cfg["fs"], spec, shifts, cfg["mean"], cfg["std"], 0.05, 4, stream)
    got = bench.m4_preprocess_figures(x, want, [SRC / "tinyml_features_int.c", SRC / "tinyml_series.c"],
                                      {"tinyml_features_int_config.h": int_config_header(**cfg)},
                                      "tinyml_features_int.h", "tinyml_ifeat_preprocess", tmp_path)
    assert got["bit_identical"]
