"""Python features against independent references (numpy FFT, scipy statistics and Hilbert)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal
import scipy.stats

from tinyml.data.features import (
    DEFAULT_TEMPERATURE_SPEC,
    DEFAULT_VIBRATION_SPEC,
    FEATURES,
    compute_features,
    feature_names,
    validate_spec,
)
from tinyml.data.features_c import features_c_config
from tinyml.errors import InputError

RNG = np.random.default_rng(7)
X = RNG.normal(size=(12, 256, 2)).astype(np.float32) * np.array([1.0, 3.0], np.float32) + 0.5


def one(name: str, x: np.ndarray = X, fs: float = 1000.0, **params) -> np.ndarray:
    return compute_features(x, fs, [{"name": name, **params}])


def test_statistics_match_numpy_and_scipy():
    x64 = X.astype(np.float64)
    np.testing.assert_allclose(one("rms"), np.sqrt((x64**2).mean(axis=1)), rtol=1e-6)
    np.testing.assert_allclose(one("peak"), np.abs(x64).max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(one("crest"), np.abs(x64).max(axis=1) / np.sqrt((x64**2).mean(axis=1)), rtol=1e-6)
    np.testing.assert_allclose(one("kurtosis"), scipy.stats.kurtosis(x64, axis=1), rtol=1e-5)
    np.testing.assert_allclose(one("skewness"), scipy.stats.skew(x64, axis=1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(one("mean"), x64.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(one("std"), x64.std(axis=1), rtol=1e-6)
    np.testing.assert_allclose(one("min"), x64.min(axis=1))
    np.testing.assert_allclose(one("max"), x64.max(axis=1))


def test_fft_bands_match_numpy_fft():
    bands = one("fft_bands", bands=4, log=False)  # [N, 2 channels x 4 bands]
    spec = np.abs(np.fft.rfft(X.astype(np.float64), axis=1)) ** 2 / 256**2  # [N, 129, C]
    bins = spec[:, 1:129]  # bins 1..128, 32 per band
    ref = bins.reshape(12, 4, 32, 2).sum(axis=2).transpose(0, 2, 1).reshape(12, 8)
    np.testing.assert_allclose(bands, ref, rtol=1e-5)
    np.testing.assert_allclose(one("fft_bands", bands=4), np.log(ref + 1e-12), rtol=1e-5)


def test_fft_band_of_a_tone_holds_its_energy():
    fs, t = 1000.0, np.arange(256) / 1000.0
    tone = np.sin(2 * np.pi * 312.5 * t)[None, :, None]  # bin 80 of 256 -> band 2 of 4 (bins 65..96)
    e = one("fft_bands", x=tone, fs=fs, bands=4, log=False)[0]
    assert np.argmax(e) == 2 and e[2] == pytest.approx(0.25, rel=1e-4)  # (A/2)^2 on the one-sided bin


def test_envelope_matches_scipy_hilbert_of_the_band():
    fs, n = 2560.0, 256
    x = X[:, :, :1].astype(np.float64)
    spec = np.fft.fft(x[:, :, 0], axis=1)
    k = np.arange(n)
    keep = ((k >= 64) & (k <= 115)) | ((n - k >= 64) & (n - k <= 115))  # 640..1150 Hz: default 0.25..0.45 fs
    band = np.real(np.fft.ifft(spec * keep, axis=1))
    env = np.abs(scipy.signal.hilbert(band, axis=1))
    env -= env.mean(axis=1, keepdims=True)
    p = np.abs(np.fft.rfft(env, axis=1)) ** 2 / n**2
    ref = p[:, 1:33].reshape(12, 8, 4).sum(axis=2)
    np.testing.assert_allclose(one("envelope_bands", x=X[:, :, :1], fs=fs, log=False), ref, rtol=1e-6, atol=1e-12)


def test_envelope_spectrum_shows_the_impact_rate():
    """Resonance bursts repeating at 100 Hz put envelope energy at 100 Hz, not at the 900 Hz carrier."""
    fs, n = 2560.0, 512
    t = np.arange(n) / fs
    x = np.zeros(n)
    for t0 in np.arange(0, t[-1], 0.01):
        tau = t[t >= t0] - t0
        x[t >= t0] += np.exp(-400 * tau) * np.sin(2 * np.pi * 900 * tau)
    e = one("envelope_bands", x=x[None, :, None], fs=fs, bands=16, fmax=320.0, log=False)[0]
    # 16 bands over bins 1..64 (5 Hz each): band 4 holds bins 17..20 = 85..100 Hz
    assert np.argmax(e) == 4


def test_rate_of_change_and_rolling_mean():
    fs = 2.0
    ramp = (3.0 + 0.25 * np.arange(64))[None, :, None]  # 0.25 per sample = 0.5 per second
    assert one("rate_of_change", x=ramp, fs=fs)[0, 0] == pytest.approx(0.5, rel=1e-6)
    rm = one("rolling_mean", x=ramp, fs=fs, width=4, points=3)[0]
    # ends at 3, 33, 63: mean of the 4 samples ending there
    np.testing.assert_allclose(rm, [3.0 + 0.25 * 1.5, 3.0 + 0.25 * 31.5, 3.0 + 0.25 * 61.5])
    rel = one("rolling_mean", x=ramp, fs=fs, width=4, points=3, relative=True)[0]
    np.testing.assert_allclose(rel, rm - (3.0 + 0.25 * 31.5))  # minus the window mean


def test_diff_max_and_flat_fraction():
    x = np.array([1.0, 1.0, 1.0, 4.0, 3.5, 3.5, 3.0, 3.0, 3.0])[None, :, None]
    assert one("diff_max", x=x)[0, 0] == 3.0
    assert one("flat_fraction", x=x)[0, 0] == pytest.approx(5 / 8)
    assert one("flat_run", x=x)[0, 0] == pytest.approx(2 / 8)  # 5 repeats, in streaks of 2, 1 and 2


def test_flat_run_tells_a_frozen_hour_from_weeks_of_a_quiet_quantised_log():
    from tinyml.data.synth_series import SeriesOptions, synth_series

    _, v, _ = synth_series(SeriesOptions(days=28, quiet_days=28, events_per_kind=0, gaps=0, seed=1))
    normal = np.lib.stride_tricks.sliding_window_view(v, 24)[::6].copy()  # 2-hour windows, 5-minute samples
    stuck = normal.copy()
    stuck[:, 11:] = stuck[:, 11:12]  # each window's last hour (13 samples) frozen

    def f(x, name):
        return compute_features(x[:, :, None].astype(np.float32), 1 / 300, [{"name": name}])[:, 0]

    assert np.mean(f(stuck, "flat_fraction") > f(normal, "flat_fraction").max()) < 0.5  # repeats are common
    assert f(stuck, "flat_run").min() > 1.5 * f(normal, "flat_run").max()  # long streaks are not


def test_default_specs_shape_and_names():
    f = compute_features(X, 2560.0, DEFAULT_VIBRATION_SPEC)
    names = feature_names(DEFAULT_VIBRATION_SPEC, ["x", "y"])
    assert f.dtype == np.float32 and f.shape == (12, len(names)) and len(set(names)) == len(names)
    assert names[:2] == ["rms_x", "rms_y"] and "fft_bands_y_15" in names
    assert np.all(np.isfinite(f))
    t = compute_features(X[:, :, :1] + 20, 1 / 60, DEFAULT_TEMPERATURE_SPEC)
    assert t.shape == (12, len(feature_names(DEFAULT_TEMPERATURE_SPEC, ["temp"])))


def test_constant_window_gives_finite_features():
    flat = np.full((1, 256, 1), 2.0, np.float32)
    f = compute_features(flat, 2560.0, DEFAULT_VIBRATION_SPEC + [{"name": "skewness"}])
    assert np.all(np.isfinite(f))


def test_validate_spec_fills_defaults_and_is_json():
    full = validate_spec([{"name": "fft_bands", "bands": 4}, {"name": "rms"}])
    assert full[0] == {"name": "fft_bands", "bands": 4, "fmin": 0.0, "fmax": None, "log": True}
    assert validate_spec(json.loads(json.dumps(full))) == full
    assert set(FEATURES) >= {"rms", "peak", "crest", "kurtosis", "skewness", "fft_bands", "envelope_bands",
                             "rate_of_change", "rolling_mean"}


@pytest.mark.parametrize("spec,needle", [
    ([{"name": "wavelets"}], "unknown feature"),
    ([{"name": "rms", "bands": 3}], "no parameter"),
    ([{"name": "fft_bands", "bands": 0}], "bad value"),
    ([{"name": "fft_bands", "bands": "8"}], "bad value"),
    ([{"name": "fft_bands", "log": "yes"}], "bad value"),
    ([{"name": "envelope_bands", "band": [900, 100]}], "bad value"),
    ([{"name": "rolling_mean", "width": -1}], "bad value"),
    ([], "non-empty"),
    ("rms", "non-empty"),
    ([{"bands": 3}], "no name"),
])
def test_validate_spec_rejects(spec, needle):
    with pytest.raises(InputError, match=needle):
        validate_spec(spec)


@pytest.mark.parametrize("spec,needle", [
    ([{"name": "fft_bands", "bands": 200}], "DFT bins"),
    ([{"name": "envelope_bands", "bands": 100}], "envelope bins"),
    ([{"name": "rolling_mean", "width": 300}], "longer than"),
])
def test_spec_that_does_not_fit_the_window_is_an_input_error(spec, needle):
    with pytest.raises(InputError, match=needle):
        compute_features(X, 2560.0, spec)


@pytest.mark.parametrize("name", ["fft_bands", "envelope_bands"])
def test_band_features_need_power_of_two_windows(name):
    with pytest.raises(InputError, match="power-of-two"):
        compute_features(X[:, :200], 2560.0, [{"name": name, "bands": 2}])
    with pytest.raises(InputError, match="power-of-two"):
        features_c_config([{"name": name, "bands": 2}], ["x"], 2560.0, 200)


def test_bad_windows_are_input_errors():
    with pytest.raises(InputError, match="N, T, C"):
        compute_features(X[0], 100.0, [{"name": "rms"}])
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        compute_features(bad, 100.0, [{"name": "rms"}])

