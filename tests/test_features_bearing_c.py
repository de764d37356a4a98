"""The `bearing` feature in C (firmware_templates/common/tinyml_features_int.c, gcc on the host and
arm-none-eabi-gcc on a Cortex-M4F in QEMU) against features_bearing.py: bit for bit on every int64
value and int8 input, on synthetic machine windows, random and adversarial ones (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.intfeat_c import IntFeaturesLib
from tests.test_features_int import adversarial_windows
from tinyml.data import features_bearing as fb
from tinyml.data import features_int as fi
from tinyml.data.features import feature_names, validate_spec
from tinyml.data.synth import VibrationOptions, synth_vibration

CHANNELS = ["x", "y", "z"]
FS = 2560.0
HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bearing_spec(**given_) -> list[dict]:
    spec = validate_spec([{"name": "bearing", "bearing": "6205-2RS", **given_}, {"name": "rms"}])
    return validate_spec(fb.resolve(spec, np.zeros((1, 64, 3)), FS, rpm=None, bearing=None))


def config(spec: list[dict], window: int, shifts: list[int]) -> dict:
    n = len(feature_names(spec, CHANNELS))
    rng = np.random.default_rng(1)
    return {"mode": "features", "window": window, "channels": CHANNELS, "fs": FS, "sample_shift": shifts,
            "mean": rng.normal(0, 2, n), "std": rng.uniform(0.5, 3.0, n), "in_scale": 0.043, "zero_point": 5,
            "spec": spec}


def agree(lib: IntFeaturesLib, cfg: dict, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    n = len(cfg["mean"])
    py = fi.feature_values(fi.to_samples(x, cfg["sample_shift"]), FS, cfg["spec"])
    c = lib.values(x, n)
    assert np.array_equal(py, c), f"{np.count_nonzero(py != c)} of {py.size} values differ"
    q = fi.features_int8(x, FS, cfg["spec"], cfg["sample_shift"], cfg["mean"], cfg["std"], cfg["in_scale"],
                         cfg["zero_point"])
    assert np.array_equal(q, lib.preprocess(x, n))
    return py


@pytest.fixture(scope="module")
def lib64(tmp_path_factory):
    """64-sample windows: speeds whose lines pass Nyquist, floors cut at bin 1 and T/2."""
    cfg = config(bearing_spec(rpm_range=[3000, 12000], band=[300, 1200], harmonics=3, floor_bins=6,
                              tolerance=0.1), 64, [12, 10, 14])
    return IntFeaturesLib(tmp_path_factory.mktemp("b64"), **cfg), cfg


@pytest.mark.parametrize("window, fixed", [(256, False), (1024, False), (1024, True)])
def test_synthetic_machines_bit_identical(tmp_path, window: int, fixed: bool) -> None:
    ds = synth_vibration(VibrationOptions(per_class=4, windows_per_recording=1, window=window, val=0, test=0,
                                          seed=window))
    given_ = {"rpm": 1500.0} if fixed else {"rpm_range": [1100.0, 1900.0]}
    spec = bearing_spec(band=[430.0, 1280.0], **given_)
    cfg = config(spec, window, fi.sample_shifts(ds.x))
    values = agree(IntFeaturesLib(tmp_path, **cfg), cfg, ds.x)
    faults = [ds.classes.index("bearing_outer"), ds.classes.index("bearing_inner")]
    assert len(np.unique(values)) > values.size // 3   # not a constant: real spectra went through
    assert np.isin(ds.y, faults).any()


@pytest.mark.parametrize("name", list(adversarial_windows()))
def test_adversarial_windows_agree(lib64, name: str) -> None:
    values = agree(*lib64, adversarial_windows()[name][None])
    assert (np.abs(values) <= fi.CAP).all()


finite = st.floats(-1e3, 1e3, width=32, allow_subnormal=False)


@HYP
@given(hnp.arrays(np.float32, (2, 64, 3), elements=finite), st.sampled_from([1e-4, 1e-2, 1.0, 30.0]))
def test_random_windows_agree(lib64, x: np.ndarray, gain: float) -> None:
    agree(*lib64, x * np.float32(gain))


@HYP
@given(st.integers(0, 2**32 - 1), st.floats(2800, 13000))
def test_tones_and_impacts_at_any_speed_agree(lib64, seed: int, rpm: float) -> None:
    """Structured windows: a 1x at any speed (including past the range), bursts at BPFI."""
    rng = np.random.default_rng(seed)
    t = np.arange(64) / FS
    f = rpm / 60
    x = np.cos(2 * np.pi * f * t)[:, None] * rng.uniform(0, 2, 3) + rng.normal(0, 0.1, (64, 3))
    x += (np.sin(2 * np.pi * 900 * t) * (np.sin(2 * np.pi * 5.4 * f * t) > 0.8))[:, None]
    agree(*lib64, x[None])


@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_cortex_m4f_bit_identical(tmp_path) -> None:
    """On the M4F (FPU sample conversion and square-root start) the int8 inputs are Python's."""
    from tests.intfeat_c import m4_bench
    from tinyml.data.features_int_c import int_config_header

    bench = m4_bench()
    ds = synth_vibration(VibrationOptions(per_class=1, windows_per_recording=1, window=256, val=0, test=0, seed=5))
    cfg = config(bearing_spec(band=[430.0, 1280.0], rpm_range=[1100.0, 1900.0]), 256, fi.sample_shifts(ds.x))
    x = np.concatenate([ds.x, np.stack([np.resize(w, (256, 3)) for w in adversarial_windows().values()])])
    x = x.astype(np.float32)
    want = fi.features_int8(x, FS, cfg["spec"], cfg["sample_shift"], cfg["mean"], cfg["std"], cfg["in_scale"],
                            cfg["zero_point"])
    got = bench.m4_preprocess_figures(x, want, [bench.SRC / "tinyml_features_int.c"],
                                      {"tinyml_features_int_config.h": int_config_header(**cfg)},
                                      "tinyml_features_int.h", "tinyml_ifeat_preprocess", tmp_path)
    assert got["bit_identical"]
