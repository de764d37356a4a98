"""Integer features and per_window (tinyml/data/features_int.py) against their C twin
(firmware_templates/common/tinyml_features_int.c, built for the host with gcc): bit for bit on
every intermediate int64 feature value and on the int8 model input, on dataset windows and on
random and adversarial ones (hypothesis); saturation instead of wrap-around on extremes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.cbuild import host_compile
from tests.intfeat_c import IntFeaturesLib
from tinyml.data import features_int as fi
from tinyml.data.features import (
    DEFAULT_TEMPERATURE_SPEC,
    DEFAULT_VIBRATION_SPEC,
    compute_features,
    feature_names,
    validate_spec,
)
from tinyml.data.synth import TemperatureOptions, VibrationOptions, synth_temperature, synth_vibration
from tinyml.errors import InputError

CUSTOM_SPEC = validate_spec([
    {"name": "mean"}, {"name": "std"}, {"name": "min"}, {"name": "max"}, {"name": "peak"},
    {"name": "fft_bands", "bands": 5, "fmin": 100.0, "fmax": 900.0, "log": False},
    {"name": "envelope_bands", "bands": 4, "band": [500.0, 1200.0], "fmax": 400.0, "log": False},
    {"name": "envelope_bands", "bands": 3, "log": True},
    {"name": "rate_of_change"}, {"name": "rolling_mean", "width": 32, "points": 5},
    {"name": "rolling_mean", "width": 5, "points": 1, "relative": True}, {"name": "diff_max"},
    {"name": "flat_fraction"}, {"name": "flat_run"}, {"name": "curvature"},
    {"name": "kurtosis"}, {"name": "skewness"}, {"name": "crest"}, {"name": "rms"},
])
FS = 2560.0
CHANNELS = ["x", "y", "z"]
SHIFTS = [12, 10, 14]
HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _config(mode, spec, n_cols, window=64):
    rng = np.random.default_rng(0)
    return {"mode": mode, "window": window, "channels": CHANNELS, "fs": FS, "sample_shift": SHIFTS,
            "mean": rng.normal(0, 1, n_cols), "std": rng.uniform(0.5, 2.0, n_cols), "in_scale": 0.0371,
            "zero_point": -7, "spec": spec}


@pytest.fixture(scope="module")
def custom_lib(tmp_path_factory):
    n = len(feature_names(CUSTOM_SPEC, CHANNELS))
    cfg = _config("features", CUSTOM_SPEC, n)
    return IntFeaturesLib(tmp_path_factory.mktemp("custom"), **cfg), cfg, n


@pytest.fixture(scope="module")
def per_window_lib(tmp_path_factory):
    cfg = _config("per_window", None, 3)
    cfg["mean"], cfg["std"] = np.array([-3.0, -4.0, -2.5]), np.array([0.8, 1.1, 0.6])
    return IntFeaturesLib(tmp_path_factory.mktemp("pw"), **cfg), cfg


def assert_features_agree(lib, cfg, n, x):
    x = np.asarray(x, np.float32)
    py = fi.feature_values(fi.to_samples(x, cfg["sample_shift"]), cfg["fs"], cfg["spec"])
    c = lib.values(x, n)
    assert np.array_equal(py, c), f"{np.count_nonzero(py != c)} feature values differ"
    q_py = fi.features_int8(x, cfg["fs"], cfg["spec"], cfg["sample_shift"], cfg["mean"], cfg["std"],
                            cfg["in_scale"], cfg["zero_point"])
    assert np.array_equal(q_py, lib.preprocess(x, n))
    return py, q_py


def assert_per_window_agrees(lib, cfg, x):
    x = np.asarray(x, np.float32)
    q_py = fi.per_window_int8(x, cfg["sample_shift"], cfg["mean"], cfg["std"], cfg["in_scale"], cfg["zero_point"])
    q_c = lib.preprocess(x, x.shape[1] * 2 * x.shape[2]).reshape(q_py.shape)
    assert np.array_equal(q_py, q_c), f"{np.count_nonzero(q_py != q_c)} int8 inputs differ"
    return q_py


# ---- dataset windows

@pytest.fixture(scope="module")
def vibration():
    return synth_vibration(VibrationOptions(per_class=16, windows_per_recording=4, seed=3))


def test_default_vibration_spec_bit_identical_and_close_to_float(tmp_path, vibration):
    spec = validate_spec(DEFAULT_VIBRATION_SPEC)
    x, shifts = vibration.x, fi.sample_shifts(vibration.x)
    real = fi.real_features(fi.to_samples(x, shifts), vibration.fs, spec, shifts)
    cfg = {"mode": "features", "window": 256, "channels": vibration.channels, "fs": vibration.fs,
           "sample_shift": shifts, "mean": real.mean(0), "std": real.std(0) + 1e-6, "in_scale": 0.03,
           "zero_point": -3, "spec": spec}
    lib = IntFeaturesLib(tmp_path, **cfg)
    _, q = assert_features_agree(lib, cfg, real.shape[1], x)
    assert len(np.unique(q)) > 50  # the comparison covers the int8 range, not a constant
    ref = compute_features(x, vibration.fs, spec)
    # the integer features are the float64 ones to a small fraction of each column's spread
    assert (np.abs(real - ref).max(axis=0) <= 0.02 * ref.std(axis=0) + 1e-3).all()


def test_temperature_spec_bit_identical_and_close_to_float(tmp_path):
    ds = synth_temperature(TemperatureOptions(per_class=24, windows_per_recording=4, seed=5))
    spec = validate_spec(DEFAULT_TEMPERATURE_SPEC)
    shifts = fi.sample_shifts(ds.x)
    real = fi.real_features(fi.to_samples(ds.x, shifts), ds.fs, spec, shifts)
    cfg = {"mode": "features", "window": ds.x.shape[1], "channels": ds.channels, "fs": ds.fs,
           "sample_shift": shifts, "mean": real.mean(0), "std": real.std(0) + 1e-6, "in_scale": 0.05,
           "zero_point": 10, "spec": spec}
    lib = IntFeaturesLib(tmp_path, **cfg)
    assert_features_agree(lib, cfg, real.shape[1], ds.x)
    ref = compute_features(ds.x, ds.fs, spec)
    assert (np.abs(real - ref).max(axis=0) <= 0.01 * ref.std(axis=0) + 1e-3).all()


def test_custom_spec_on_synthetic(custom_lib, vibration):
    lib, cfg, n = custom_lib
    x = vibration.x[:, :64] * 0.7
    assert_features_agree(lib, cfg, n, x)


def test_per_window_bit_identical_and_within_one_step_of_float(tmp_path, vibration):
    from tinyml.preprocess import per_window_inputs

    x, shifts = vibration.x, fi.sample_shifts(vibration.x)
    lv = fi.levels_real(fi.to_samples(x, shifts), shifts)
    cfg = {"mode": "per_window", "window": 256, "channels": vibration.channels, "fs": vibration.fs,
           "sample_shift": shifts, "mean": lv.mean(0), "std": lv.std(0), "in_scale": 0.04, "zero_point": 2}
    lib = IntFeaturesLib(tmp_path, **cfg)
    q = assert_per_window_agrees(lib, cfg, x)
    ref = np.clip(np.round(per_window_inputs(x, lv.mean(0), lv.std(0)) / 0.04) + 2, -128, 127)
    assert np.abs(q.astype(int) - ref).max() <= 1


# ---- random and adversarial windows

finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
any_float = st.floats(width=32)  # NaN, infinities, subnormals, +-3.4e38


@HYP
@given(hnp.arrays(np.float32, (2, 64, 3), elements=finite), st.sampled_from([1e-4, 1e-2, 1.0, 30.0]))
def test_random_windows_features(custom_lib, x, gain):
    lib, cfg, n = custom_lib
    assert_features_agree(lib, cfg, n, x * np.float32(gain))


@HYP
@given(hnp.arrays(np.float32, (1, 64, 3), elements=any_float))
def test_any_float_windows_features(custom_lib, x):
    lib, cfg, n = custom_lib
    assert_features_agree(lib, cfg, n, x)


@HYP
@given(hnp.arrays(np.float32, (2, 64, 3), elements=any_float | finite))
def test_random_windows_per_window(per_window_lib, x):
    lib, cfg = per_window_lib
    assert_per_window_agrees(lib, cfg, x)


def adversarial_windows() -> dict[str, np.ndarray]:
    t = np.arange(64)
    square = np.where((t // 8) % 2 == 0, 1.0, -1.0)
    return {
        "zeros": np.zeros((64, 3)),
        "constant": np.full((64, 3), 3.25),
        "full_scale_square": np.repeat(square[:, None], 3, axis=1) * 8.0,   # exactly +-32767 on x
        "clipped_square": np.repeat(square[:, None], 3, axis=1) * 1e30,
        "single_impulse": np.eye(64, 3) * 1e6,
        "alternating_extremes": np.repeat(((-1.0) ** t)[:, None], 3, axis=1) * 3e38,
        "infinities": np.repeat(np.where(t % 3 == 0, np.inf, -np.inf)[:, None], 3, axis=1),
        "nan": np.full((64, 3), np.nan),
        "tiny": np.full((64, 3), 1e-40) * np.sign(np.sin(t))[:, None],
        "ramp_clipped": np.repeat(np.linspace(-100.0, 100.0, 64)[:, None], 3, axis=1),
    }


@pytest.mark.parametrize("name", list(adversarial_windows()))
def test_adversarial_windows_agree_and_stay_in_range(custom_lib, per_window_lib, name):
    x = adversarial_windows()[name][None].astype(np.float32)
    lib, cfg, n = custom_lib
    values, q = assert_features_agree(lib, cfg, n, x)
    assert (np.abs(values) <= fi.CAP).all()
    assert_per_window_agrees(*per_window_lib, x)


def test_samples_saturate_instead_of_wrapping():
    x = np.array([[[1e30], [-1e30], [8.0], [7.99990], [-8.0], [np.inf], [-np.inf], [np.nan], [1e-45], [0.5 / 4096]]],
                 np.float32)
    q = fi.to_samples(x, [12])[0, :, 0]
    assert q.tolist() == [32767, -32767, 32767, 32767, -32767, 32767, -32767, 0, 0, 1]


def test_clipped_square_gives_the_features_of_a_full_scale_square(custom_lib):
    lib, cfg, n = custom_lib
    windows = adversarial_windows()
    big = lib.values(windows["clipped_square"][None].astype(np.float32), n)
    full = np.sign(windows["clipped_square"]) * 2.0 ** -np.array(SHIFTS) * 32767
    assert np.array_equal(big, lib.values(full[None].astype(np.float32), n))
    names = feature_names(CUSTOM_SPEC, CHANNELS)
    assert big[0, names.index("peak_x")] == 32767 and big[0, names.index("min_x")] == -32767


def test_constant_and_zero_windows_give_neutral_features(custom_lib):
    lib, cfg, n = custom_lib
    names = feature_names(CUSTOM_SPEC, CHANNELS)
    for name in ("zeros", "constant"):
        v = lib.values(adversarial_windows()[name][None].astype(np.float32), n)[0]
        for col in ("std_x", "kurtosis_y", "skewness_z", "crest_x" if name == "zeros" else "std_y", "diff_max_x"):
            assert v[names.index(col)] == 0, (name, col)
        assert v[names.index("flat_fraction_x")] == v[names.index("flat_run_y")] == 1 << 16


def test_stuck_stretches_agree_and_count_the_longest_streak(custom_lib):
    lib, cfg, n = custom_lib
    rng = np.random.default_rng(4)
    x = np.round(rng.normal(0, 0.3, (40, cfg["window"], len(CHANNELS))) * 64) / 64  # repeats now and then
    for i, (a, length) in enumerate(zip(rng.integers(0, 40, 40), rng.integers(2, 24, 40), strict=True)):
        x[i, a:a + length, i % 3] = x[i, a, i % 3]
    py, _ = assert_features_agree(lib, cfg, n, x)
    names = feature_names(CUSTOM_SPEC, CHANNELS)
    run = py[:, [names.index(f"flat_run_{c}") for c in CHANNELS]]
    longest = np.array([[max(len(s) for s in "".join("1" if e else "0" for e in np.diff(w[:, c]) == 0).split("0"))
                         for c in range(len(CHANNELS))] for w in x])
    assert np.array_equal(run, fi.ratio(longest, np.full_like(longest, cfg["window"] - 1), 16))


# ---- the primitives

def test_primitives_against_exact_math():
    rng = np.random.default_rng(1)
    n = np.concatenate([rng.integers(0, 2**62, 2000), rng.integers(0, 2**20, 2000), [0, 1, 2, 3, 2**62 - 1]])
    r = fi.isqrt(n)
    exact = np.array([math.isqrt(int(v)) for v in n], dtype=np.float64)
    assert (np.abs(r - exact) <= exact * 2.0**-14 + 1).all()
    lg = fi.log2_q16(n) / 65536.0
    assert np.allclose(lg, np.log2(np.maximum(n, 1).astype(np.float64)), atol=2.0**-15)
    assert fi.ratio(np.array([3]), np.array([4]), 16)[0] == 49152
    assert fi.ratio(np.array([2**61]), np.array([1]), 48)[0] == fi.CAP
    assert fi.div_round(np.array([5, -5, 4, -4]), 2).tolist() == [3, -3, 2, -2]
    assert fi.rshift_round(np.array([5, -5, 6]), 1).tolist() == [3, -2, 3]


def test_windows_too_long_or_not_power_of_two_are_refused():
    with pytest.raises(InputError, match="4..2048"):
        fi.feature_values(np.zeros((1, 4096, 1), np.int64), 100.0, [{"name": "rms"}])
    with pytest.raises(InputError, match="power-of-two"):
        fi.feature_values(np.zeros((1, 100, 1), np.int64), 100.0, [{"name": "fft_bands", "bands": 4}])


# ---- the firmware's compilers and the FPU paths on a Cortex-M4F

@pytest.mark.parametrize("cc,flags", [
    ("gcc", ["-Wpedantic", "-Wconversion", "-Wdouble-promotion", "-Wshadow"]),
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Wconversion",
                           "-Wpedantic"]),
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m0", "-mthumb", "-Wconversion", "-Wpedantic"]),
    ("riscv64-unknown-elf-gcc", ["-march=rv32imc", "-mabi=ilp32", "--specs=picolibc.specs", "-Wconversion"]),
    ("xtensa-lx106-elf-gcc", ["-mlongcalls", "--specs=/usr/lib/xtensa-lx106-elf/picolibc.specs", "-Wconversion"]),
])
@pytest.mark.cross_compiler
def test_compiles_warning_free(tmp_path, cc, flags):
    import shutil

    from tinyml.data.features_int_c import int_config_header

    assert shutil.which(cc), f"{cc} is part of the toolchain set"
    n = len(feature_names(CUSTOM_SPEC, CHANNELS))
    (tmp_path / "tinyml_features_int_config.h").write_text(int_config_header(**_config("features", CUSTOM_SPEC, n)))
    src = fi.__file__.replace("tinyml/data/features_int.py", "firmware_templates/common")
    host_compile([f"{src}/tinyml_features_int.c"], tmp_path / "f.o", obj=True, cc=cc, includes=[tmp_path, src],
                 flags=("-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", *flags))


@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_cortex_m4f_fpu_paths_are_bit_identical(tmp_path):
    """On the M4F the sample conversion and the square root's start use the FPU: the int8 inputs
    must still be Python's, on adversarial windows and random ones, features and per_window."""
    from tests.intfeat_c import m4_bench
    from tinyml.data.features_int_c import int_config_header

    bench = m4_bench()
    rng = np.random.default_rng(7)
    halves = (np.arange(64 * 3).reshape(64, 3) - 96) * 0.5 / 4096  # exact halves of a step at shift 12
    x = np.stack([*adversarial_windows().values(), halves, rng.normal(0, 3, (64, 3)),
                  rng.normal(0, 1e-3, (64, 3))]).astype(np.float32)
    n = len(feature_names(CUSTOM_SPEC, CHANNELS))
    cfg = _config("features", CUSTOM_SPEC, n)
    want = fi.features_int8(x, FS, CUSTOM_SPEC, SHIFTS, cfg["mean"], cfg["std"], cfg["in_scale"], cfg["zero_point"])
    src = bench.SRC / "tinyml_features_int.c"
    (tmp_path / "f").mkdir()
    got = bench.m4_preprocess_figures(x, want, [src], {"tinyml_features_int_config.h": int_config_header(**cfg)},
                                      "tinyml_features_int.h", "tinyml_ifeat_preprocess", tmp_path / "f")
    assert got["bit_identical"]
    cfg = _config("per_window", None, 3)
    want = fi.per_window_int8(x, SHIFTS, cfg["mean"], cfg["std"], cfg["in_scale"], cfg["zero_point"]).reshape(len(x), -1)
    (tmp_path / "p").mkdir()
    got = bench.m4_preprocess_figures(x, want, [src], {"tinyml_features_int_config.h": int_config_header(**cfg)},
                                      "tinyml_features_int.h", "tinyml_ifeat_preprocess", tmp_path / "p")
    assert got["bit_identical"]
