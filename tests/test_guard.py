"""The input envelope guard (tinyml/train/guard.py): the same integers in Python and in C (gcc, Cortex-M4F),
over a stream whose daily_cycle state leaves the envelope; train, detect and predict with it and without."""

from __future__ import annotations

import ctypes
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cbuild import host_compile
from tinyml.data.features import validate_spec
from tinyml.data.features_series import Stream
from tinyml.errors import InputError
from tinyml.paths import template_dir
from tinyml.train.guard import Guard, excess_int8, fold, guarded_sum, step_sum

SRC = template_dir("common")
HARNESS = r"""
#include "tinyml_guard.h"
uint32_t excess(const int8_t *in, const int8_t *lo, const int8_t *hi, uint32_t n)
{
    return tinyml_guard_excess(in, lo, hi, n);
}
uint64_t guarded(uint64_t sum, uint32_t excess, uint64_t threshold_sum, uint64_t step)
{
    return tinyml_guard_sum(sum, excess, threshold_sum, step);
}
"""


@pytest.fixture(scope="module")
def guard_lib(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guard")
    (tmp / "harness.c").write_text(HARNESS)
    lib = ctypes.CDLL(str(host_compile([tmp / "harness.c"], tmp / "libguard.so", includes=[SRC], shared=True,
                                       extra=["-O2"])))
    lib.excess.restype = ctypes.c_uint32
    lib.guarded.restype = ctypes.c_uint64
    lib.guarded.argtypes = [ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint64]
    return lib


def c_excess(lib, q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    lo8, hi8 = (np.ascontiguousarray(v, np.int8) for v in (lo, hi))
    out = []
    for row in np.ascontiguousarray(q, np.int8):
        out.append(lib.excess(row.ctypes.data_as(ctypes.c_void_p), lo8.ctypes.data_as(ctypes.c_void_p),
                              hi8.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint32(row.size)))
    return np.array(out, np.int64)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_python_and_c_agree_bit_for_bit(guard_lib, width, n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, (2, width))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    q = rng.integers(-128, 128, (n, width))
    got = c_excess(guard_lib, q, lo, hi)
    assert np.array_equal(got, excess_int8(q, lo, hi))
    sums = rng.integers(0, 2**63, n, dtype=np.uint64)
    threshold_sum, step = int(rng.integers(0, 2**63)), int(rng.integers(1, 2**40))
    for s, e in zip(sums.tolist(), got.tolist(), strict=True):
        assert guard_lib.guarded(s, e, threshold_sum, step) == guarded_sum(s, e, threshold_sum, step)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.integers(1, 2**64 - 1))
def test_the_fold_is_pythons_over_the_whole_range(guard_lib, error_sum, excess, threshold_sum, step):
    """The slope guard folds up to 2^32 - 1 steps of any size: the same saturating sum, without a division."""
    assert guard_lib.guarded(error_sum, excess, threshold_sum, step) == guarded_sum(error_sum, excess, threshold_sum,
                                                                                    step)


def test_the_sum_saturates_and_an_excess_always_lands_above_the_threshold(guard_lib):
    top = 2**64 - 1
    assert guard_lib.guarded(5, 255, top - 10, 2**40) == guarded_sum(5, 255, top - 10, 2**40) == top
    assert guard_lib.guarded(7, 0, 100, 3) == guarded_sum(7, 0, 100, 3) == 7        # inside: the error stands
    assert guard_lib.guarded(500, 2, 100, 3) == guarded_sum(500, 2, 100, 3) == 500  # a larger error stands
    assert guarded_sum(0, 1, 100, step_sum(100, 0.001)) > 100                       # step is at least 1


def drifting_stream():
    """Five days of a daily cycle, then a day of slow drift: window features with daily_cycle state."""
    from tinyml.data import features_int as fi

    spec = validate_spec([{"name": "mean"}, {"name": "std"}, {"name": "daily_cycle", "slots": 8}])
    t, fs, days = 24, 1 / 450.0, 6
    k = np.arange(days * 8 * t)
    trace = 20 + 5 * np.sin(2 * np.pi * k / (8 * t)) + np.random.default_rng(4).normal(0, 0.2, k.size)
    trace[-8 * t:] += np.linspace(0, 6, 8 * t)
    x = trace.reshape(-1, t, 1).astype(np.float32)
    shifts, stream = fi.sample_shifts(x), Stream(np.arange(len(x)) * 86400.0 / 8)
    real = fi.real_features(fi.to_samples(x, shifts), fs, spec, shifts, stream)
    mean, std = real[:-8].mean(axis=0), np.maximum(real[:-8].std(axis=0), 1e-6)
    cfg = {"mode": "features", "window": t, "channels": ["t"], "fs": fs, "sample_shift": shifts, "mean": mean,
           "std": std, "in_scale": 0.06, "zero_point": -5, "spec": spec}
    guard = Guard.fit(((real - mean) / std)[8:-8], 0.5)  # the days the cycle is learnt: its envelope
    want = fi.features_int8(x, fs, spec, shifts, mean, std, 0.06, -5, stream)
    return x, cfg, guard, want


def test_the_guard_over_a_stream_with_state_is_the_same_in_c(guard_lib, tmp_path):
    """The run loop's C features (daily_cycle state carried window after window) then the C guard, against
    Python's int8 inputs and excess: the drift leaves the envelope on both sides at the same windows."""
    from tests.intfeat_c import IntFeaturesLib

    x, cfg, guard, want = drifting_stream()
    inputs = IntFeaturesLib(tmp_path, **cfg).preprocess(x, want.shape[1])
    assert np.array_equal(inputs, want)
    lo, hi = guard.bounds_int8(0.06, -5)
    got = c_excess(guard_lib, inputs, lo, hi)
    assert np.array_equal(got, excess_int8(want, lo, hi))
    assert np.all(got[8:-8] == 0) and got[-1] > 0  # inside on the days it was fitted to, outside at the drift's end


@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_the_guard_on_a_cortex_m4f_is_pythons(tmp_path):
    """arm-none-eabi-gcc -O2 in QEMU mps2-an386: the stateful int8 inputs, the excess and the guarded sum of each
    window, as Python computes them."""
    from tests.intfeat_c import m4_bench
    from tinyml.data.features_int_c import int_config_header

    x, cfg, guard, want = drifting_stream()
    lo, hi = guard.bounds_int8(0.06, -5)
    threshold_sum, step = 3 << 40, step_sum(3 << 40, 0.06)
    n = want.shape[1]
    excess = excess_int8(want, lo, hi)
    sums = [guarded_sum(1000 * i, int(e), threshold_sum, step) for i, e in enumerate(excess)]
    expected = np.concatenate([want, excess.astype(np.int8)[:, None],
                               np.array(sums, "<u8").view(np.int8).reshape(-1, 8)], axis=1)
    (tmp_path / "glue.c").write_text(
        '#include <string.h>\n#include "tinyml_features_int.h"\n#include "tinyml_guard.h"\n'
        f"static const int8_t lo[{n}] = {{ {', '.join(map(str, lo))} }};\n"
        f"static const int8_t hi[{n}] = {{ {', '.join(map(str, hi))} }};\n"
        "void bench_guarded(const float *w, int8_t *out)\n{\n"
        "    static uint64_t window;\n"
        "    tinyml_ifeat_preprocess(w, out);\n"
        f"    uint32_t e = tinyml_guard_excess(out, lo, hi, {n}u);\n"
        f"    uint64_t sum = tinyml_guard_sum(1000u * window++, e, {threshold_sum}ull, {step}ull);\n"
        f"    out[{n}] = (int8_t)e;\n"
        f"    memcpy(&out[{n + 1}], &sum, 8); /* little-endian, as numpy's <u8 */\n}}\n")
    bench = m4_bench()
    got = bench.m4_preprocess_figures(
        x, expected, [SRC / "tinyml_features_int.c", SRC / "tinyml_series.c", tmp_path / "glue.c"],
        {"tinyml_features_int_config.h": int_config_header(**cfg),
         "bench_glue.h": "#include <stdint.h>\nvoid bench_guarded(const float *w, int8_t *out);\n"},
        "bench_glue.h", "bench_guarded", tmp_path)
    assert got["bit_identical"]


def test_bounds_fold_and_bad_guards():
    g = Guard.fit(np.array([[0.0, 1.0], [2.0, -1.0]]), 0.5)
    assert g.low.tolist() == [-0.5, -1.5] and g.high.tolist() == [2.5, 1.5]
    assert g.excess(np.array([[1.0, 0.0], [3.0, 0.0], [0.0, -2.5]])).tolist() == [0.0, 0.5, 1.0]
    lo, hi = g.bounds_int8(0.5, 10)  # q inside iff (q - 10) * 0.5 within the bounds
    assert lo.tolist() == [9, 7] and hi.tolist() == [15, 13]
    assert Guard.fit(np.array([[0.0], [1.0]]), 100.0).bounds_int8(0.1, 0)[1].tolist() == [127]  # never fires
    assert fold(np.array([0.1, 0.1, 5.0]), np.array([0.0, 0.5, 0.5]), 2.0).tolist() == [0.1, 3.0, 5.0]
    assert Guard.from_info({"input_shape": [2]}) is None  # a run trained before the guard
    with pytest.raises(InputError, match="2 bounds for 3 model inputs"):
        Guard.from_info({"input_shape": [3], "guard": g.to_json()})
    with pytest.raises(InputError, match="guard is malformed"):
        Guard.from_info({"input_shape": [2], "guard": {"low": [0, 0]}})
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="is no margin"):
            Guard.fit(np.zeros((2, 2)), bad)


def test_an_unguarded_input_is_unbounded_everywhere():
    """The daily_cycle values (features_series.UNGUARDED): null in model.json, never an excess, int8 bounds at the
    ends of the range (the firmware's comparison never fires)."""
    from tinyml.data.features import TEMPERATURE_SERIES_SPEC, feature_names, guarded_columns

    names = feature_names(TEMPERATURE_SERIES_SPEC, ["value"])
    keep = guarded_columns(TEMPERATURE_SERIES_SPEC, ["value"])
    assert [n for n, k in zip(names, keep, strict=True) if not k] == [f"daily_cycle_value_{i}" for i in range(3)]
    assert keep.sum() == len(names) - 3 > 0  # the window features stay bounded
    two = guarded_columns(TEMPERATURE_SERIES_SPEC, ["a", "b"])
    assert [n for n, k in zip(feature_names(TEMPERATURE_SERIES_SPEC, ["a", "b"]), two, strict=True) if not k] == [
        f"daily_cycle_{c}_{i}" for c in "ab" for i in range(3)]
    g = Guard.fit(np.array([[0.0, 1.0], [2.0, -1.0]]), 0.5, np.array([True, False]))
    j = g.to_json()
    assert j["low"] == [-0.5, None] and j["high"] == [2.5, None]
    back = Guard.from_info({"input_shape": [2], "guard": json.loads(json.dumps(j))})
    assert back.excess(np.array([[1.0, 1e9], [3.0, -1e9]])).tolist() == [0.0, 0.5]
    lo, hi = back.bounds_int8(0.5, 10)
    assert lo.tolist() == [9, -128] and hi.tolist() == [15, 127]
    with pytest.raises(InputError, match="guard is malformed"):
        Guard.from_info({"input_shape": [2], "guard": j | {"low": [0.0, "x"]}})
