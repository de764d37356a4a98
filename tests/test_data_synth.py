"""Synthetic generators: reproducible, split by recording, and showing the physics they claim."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal

from tests.conftest import assert_clean_error, run_cli
from tinyml.data.dataset import load
from tinyml.data.synth import (
    BPFI_ORDER,
    BPFO_ORDER,
    TEMPERATURE_CLASSES,
    VIBRATION_CLASSES,
    TemperatureOptions,
    VibrationOptions,
    synth_temperature,
    synth_vibration,
)


@pytest.fixture(scope="module")
def steady():
    """Fixed speed and long windows, so spectra have fine resolution: 25 Hz shaft, 2.5 Hz bins."""
    return synth_vibration(VibrationOptions(per_class=8, window=1024, rpm_spread=0.0, windows_per_recording=2,
                                            seed=11))


def _of(ds, cls):
    return ds.x[ds.y == ds.classes.index(cls)].astype(np.float64)


def _amp_at(x, fs, f):
    """Mean single-sided amplitude at frequency f (nearest bin) over windows, per axis."""
    spec = np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1)) * 2 / x.shape[1]
    return spec[:, round(f * x.shape[1] / fs)].mean(axis=0)


def test_default_vibration_is_reproducible_and_split_by_recording():
    a, b = synth_vibration(), synth_vibration()
    assert np.array_equal(a.x, b.x) and np.array_equal(a.split, b.split)
    assert not np.array_equal(a.x, synth_vibration(VibrationOptions(seed=1)).x)
    assert a.x.shape == (1200, 256, 3) and a.fs == 2560.0 and a.classes == VIBRATION_CLASSES
    assert a.normal_class == "healthy"  # classifiers keep it, so the gateway can count anomalies
    assert a.kind == "vibration" and a.channels == ["x", "y", "z"]
    assert np.bincount(a.y).tolist() == [200] * 6
    sides = [set(a.groups[a.split == s]) for s in range(3)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    for s in range(3):  # every class on every side
        assert set(a.y[a.split == s]) == set(range(6))
    assert a.meta["options"]["seed"] == 0


def test_imbalance_raises_the_radial_1x(steady):
    f_r = 25.0
    healthy, imb = _amp_at(_of(steady, "healthy"), 2560, f_r), _amp_at(_of(steady, "imbalance"), 2560, f_r)
    assert imb[0] > 3 * healthy[0] and imb[1] > 3 * healthy[1]


def test_misalignment_raises_2x_and_axial(steady):
    healthy, mis = _of(steady, "healthy"), _of(steady, "misalignment")
    assert _amp_at(mis, 2560, 50.0)[0] > 3 * _amp_at(healthy, 2560, 50.0)[0]
    assert _amp_at(mis, 2560, 25.0)[2] > 3 * _amp_at(healthy, 2560, 25.0)[2]


def test_looseness_adds_harmonics(steady):
    def harmonics(x):
        return sum(_amp_at(x, 2560, 25.0 * h)[0] for h in range(3, 11))
    assert harmonics(_of(steady, "looseness")) > 4 * harmonics(_of(steady, "healthy"))


@pytest.mark.parametrize("cls,order", [("bearing_outer", BPFO_ORDER), ("bearing_inner", BPFI_ORDER)])
def test_bearing_faults_show_their_fault_frequency_in_the_envelope(steady, cls, order):
    x = _of(steady, cls)[:, :, 1]
    sos = scipy.signal.butter(4, [600, 1200], btype="bandpass", fs=2560, output="sos")
    env = np.abs(scipy.signal.hilbert(scipy.signal.sosfiltfilt(sos, x, axis=1), axis=1))
    spec = np.abs(np.fft.rfft(env - env.mean(axis=1, keepdims=True), axis=1)).mean(axis=0)
    freqs = np.fft.rfftfreq(x.shape[1], 1 / 2560)
    band = (freqs > 60) & (freqs < 200)
    assert abs(freqs[band][np.argmax(spec[band])] - order * 25.0) <= 2.5
    kurt = lambda w: ((w - w.mean(1, keepdims=True)) ** 4).mean(1) / w.var(1) ** 2  # noqa: E731
    assert np.median(kurt(x)) > np.median(kurt(_of(steady, "healthy")[:, :, 1])) + 0.5


def test_speed_varies_per_recording():
    ds = synth_vibration(VibrationOptions(per_class=40, window=1024, windows_per_recording=4, seed=2))
    x = _of(ds, "imbalance")[:, :, 0]
    spec = np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1))
    peaks = np.fft.rfftfreq(1024, 1 / 2560)[np.argmax(spec[:, 1:40], axis=1) + 1]
    assert peaks.min() < 23 and peaks.max() > 27  # 1500 rpm +-20 % = 20..30 Hz


def test_temperature_anomalies():
    ds = synth_temperature(TemperatureOptions(per_class=60, seed=4))
    assert ds.classes == TEMPERATURE_CLASSES and ds.normal_class == "normal" and ds.kind == "temperature"
    assert ds.x.shape == (240, 128, 1) and ds.fs == pytest.approx(1 / 60)
    assert np.allclose(ds.x / 0.0625, np.round(ds.x / 0.0625))  # sensor resolution
    stuck, normal = _of(ds, "stuck")[:, :, 0], _of(ds, "normal")[:, :, 0]
    assert np.all(np.diff(stuck[:, -30:], axis=1) == 0)  # frozen reading through the window end
    assert np.mean(np.all(np.diff(normal[:, -30:], axis=1) == 0, axis=1)) < 0.1
    jump = lambda w: np.abs(np.diff(w, axis=1)).max(axis=1)  # noqa: E731
    assert np.median(jump(_of(ds, "step")[:, :, 0])) > 1.4 > np.median(jump(normal))
    tail_rise = lambda w: w[:, -1] - w[:, -20]  # noqa: E731
    assert np.median(tail_rise(_of(ds, "runaway")[:, :, 0])) > 1.0 + np.median(tail_rise(normal))


def test_cli_synth_and_info(tmp_path):
    out = tmp_path / "vib.npz"
    proc = run_cli("data", "synth", "vibration", "--out", out, "--per-class", "24", "--seed", "5",
                   "--windows-per-recording", "4", "--rpm", "1800")
    assert proc.returncode == 0, proc.stderr
    assert "144 windows" in proc.stdout
    ds = load(out)
    assert ds.meta["options"]["rpm"] == 1800 and ds.n == 144
    info = run_cli("data", "info", out, "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["classes"] == {c: 24 for c in VIBRATION_CLASSES}
    assert sum(s["windows"] for s in summary["splits"].values()) == 144
    assert summary["splits"]["test"]["per_class"]["imbalance"] > 0
    assert summary["channel_stats"]["y"]["mean"] == pytest.approx(float(ds.x[..., 1].mean()), rel=1e-5)
    text = run_cli("data", "info", out)
    assert text.returncode == 0 and "sampling rate: 2560 Hz" in text.stdout and "bearing_inner" in text.stdout
    temp = tmp_path / "t.npz"
    proc = run_cli("data", "synth", "temperature", "--out", temp, "--per-class", "30")
    assert proc.returncode == 0, proc.stderr
    assert load(temp).normal_class == "normal"


@pytest.mark.parametrize("args,needle", [
    (["vibration", "--per-class", "0"], "per-class"),
    (["vibration", "--fs", "-5"], "fs"),
    (["vibration", "--rpm", "30000"], "alias"),
    (["vibration", "--per-class", "4", "--windows-per-recording", "4"], "too few"),
    (["temperature", "--window", "2"], "window"),
    (["vibration", "--val", "0.6", "--test", "0.5"], "fractions"),
])
def test_cli_synth_bad_options(tmp_path, args, needle):
    proc = run_cli("data", "synth", *args, "--out", tmp_path / "x.npz")
    assert_clean_error(proc, needle)
    assert not (tmp_path / "x.npz").exists()


def test_cli_info_bad_files(tmp_path):
    assert_clean_error(run_cli("data", "info", tmp_path / "missing.npz"), "not found")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 truncated")
    assert_clean_error(run_cli("data", "info", broken), "cannot read")
