"""Shift-aware data, augmentation and evaluation: synth operating-point levels recorded as group
columns, training-time augmentation, and accuracy per held-out group (`tinyml evaluate --by`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.data.dataset import group_column, load
from tinyml.data.synth import VibrationOptions, synth_vibration
from tinyml.errors import InputError, OptionError
from tinyml.train import shift
from tinyml.train.augment import Augment, _resonate, augment

LEVELS = VibrationOptions(per_class=48, window=128, windows_per_recording=4, severities=["low", "medium", "high"],
                          speeds=[900, 1500], seed=3)


@pytest.fixture(scope="module")
def leveled():
    return synth_vibration(LEVELS)


def _rms(x):
    x = np.asarray(x, np.float64)
    return float(np.sqrt(((x - x.mean(axis=1, keepdims=True)) ** 2).mean()))


# ---------------------------------------------------------------- synth levels as group columns

def test_levels_are_group_columns_in_every_combination(leveled, tmp_path):
    assert set(leveled.columns) == {"severity", "speed"}
    for cls in range(len(leveled.classes)):
        rows = leveled.y == cls
        pairs = set(zip(leveled.columns["severity"][rows].tolist(), leveled.columns["speed"][rows].tolist(),
                        strict=True))
        assert len(pairs) == 6  # 12 recordings per class cover all 3 x 2 levels
    back = load(leveled.save(tmp_path / "d.npz"))
    assert {k: v.tolist() for k, v in back.columns.items()} == {k: v.tolist() for k, v in leveled.columns.items()}
    test = back.subset("test")
    assert test.columns["speed"].shape == (test.n,)
    assert group_column(back, "group") is back.groups


def test_default_synth_records_no_columns_and_is_unchanged_by_the_feature():
    a = synth_vibration(VibrationOptions(per_class=16, window=64, windows_per_recording=4))
    b = synth_vibration(VibrationOptions(per_class=16, window=64, windows_per_recording=4, noise=None))
    assert a.columns == {} and np.array_equal(a.x, b.x)


def test_levels_carry_their_physics():
    def cls_rms(ds, cls, column, level):
        rows = (ds.y == ds.classes.index(cls)) & (ds.columns[column] == level)
        return _rms(ds.x[rows][:, :, 0])

    sev = synth_vibration(VibrationOptions(per_class=24, windows_per_recording=4, severities=["low", "high"], seed=1))
    assert cls_rms(sev, "bearing_outer", "severity", "high") > 3 * cls_rms(sev, "bearing_outer", "severity", "low")
    noisy = synth_vibration(VibrationOptions(per_class=24, windows_per_recording=4, noise=[0.01, 0.2], seed=1))
    assert cls_rms(noisy, "healthy", "noise", "0.2") > 4 * cls_rms(noisy, "healthy", "noise", "0.01")
    fast = synth_vibration(VibrationOptions(per_class=24, window=1024, windows_per_recording=2, speeds=[600, 1800]))
    spec = np.abs(np.fft.rfft(fast.x[:, :, 0] - fast.x[:, :, 0].mean(axis=1, keepdims=True), axis=1))
    peak_hz = (spec[:, 1:].argmax(axis=1) + 1) * 2.5  # healthy windows: the 1x or 2x line, 2.5 Hz bins
    healthy = fast.y == 0
    for level, f_r in (("600", 10.0), ("1800", 30.0)):
        rows = healthy & (fast.columns["speed"] == level)
        assert np.all(np.minimum(np.abs(peak_hz[rows] - f_r), np.abs(peak_hz[rows] - 2 * f_r)) <= 2.5)


@pytest.mark.parametrize("options, needle", [
    ({"severities": ["huge"]}, "--severities unknown level"),
    ({"loads": [150.0]}, "--loads level 150"),
    ({"speeds": [900.0, 900.0]}, "--speeds must list distinct"),
])
def test_bad_levels_are_refused(options, needle):
    with pytest.raises(OptionError, match=needle):
        synth_vibration(VibrationOptions(**options))


def test_level_flags_and_project_keys(tmp_path):
    out = tmp_path / "d.npz"
    proc = run_cli("data", "synth", "vibration", "--out", out, "--per-class", "16", "--windows-per-recording", "4",
                   "--speeds", "900,1500", "--loads", "0,100")
    assert proc.returncode == 0, proc.stderr
    info = run_cli("data", "info", out)
    assert "group column speed: 1500 (48 windows), 900 (48 windows)" in info.stdout
    assert_clean_error(run_cli("data", "synth", "vibration", "--out", tmp_path / "e.npz", "--speeds", "fast"),
                       "--speeds 'fast' is not a list of numbers")
    assert not (tmp_path / "e.npz").exists()
    from tinyml.project.config import read_project

    (tmp_path / "tinyml.toml").write_text('[project]\nname = "p"\n[data]\nsynth = "vibration"\nspeeds = [900, 1500]\n'
                                          'severities = ["low", "high"]\n[train]\nmodel = "mlp"\naugment_gain = 2\n'
                                          'augment_snr = 20\nby = "speed"\n')
    p = read_project(tmp_path)
    assert p.data.speeds == [900.0, 1500.0] and p.train.augment_gain == 2.0 and p.train.by == "speed"
    (tmp_path / "tinyml.toml").write_text('[project]\nname = "p"\n[data]\nsynth = "vibration"\n[train]\n'
                                          'augment_speed = 1.5\n')
    with pytest.raises(InputError, match=r"tinyml.toml:6: \[train\] augment_speed must be a fraction"):
        read_project(tmp_path)


# ---------------------------------------------------------------- augmentation

def _tone(f, fs=1000.0, t=256, n=4):
    k = np.arange(t) / fs
    return np.repeat(np.stack([np.sin(2 * np.pi * f * k), 1 + 0.5 * np.cos(2 * np.pi * f * k)], axis=1)[None], n, 0)


def test_augmentation_is_off_by_default_seeded_and_appends_copies():
    x, y = _tone(50).astype(np.float32), np.arange(4)
    same, same_y = augment(x, y, 1000.0, Augment(), 0)
    assert same is x and same_y is y
    a = Augment(gain=2.0, speed=0.2, snr=20.0, resonance=12.0, copies=2)
    one, ya = augment(x, y, 1000.0, a, 5)
    two, _ = augment(x, y, 1000.0, a, 5)
    assert one.shape == (12, 256, 2) and ya.tolist() == [0, 1, 2, 3] * 3
    assert np.array_equal(one, two) and np.array_equal(one[:4], x)
    assert not np.array_equal(one, augment(x, y, 1000.0, a, 6)[0])


def test_gain_scales_the_vibration_not_gravity():
    x = _tone(50)
    out, _ = augment(x, np.zeros(4), 1000.0, Augment(gain=3.0), 1)
    aug = out[4:].astype(np.float64)
    assert np.allclose(aug.mean(axis=1), x.mean(axis=1), atol=1e-5)  # the DC level (gravity) stays
    ratio = aug[:, :, 0].std(axis=1) / x[:, :, 0].std(axis=1)
    assert np.all((ratio >= 1 / 3 - 1e-6) & (ratio <= 3 + 1e-6)) and np.ptp(ratio) > 0.1


def test_speed_moves_the_frequencies_by_the_drawn_factor():
    x = _tone(62.5, t=512, n=32)  # 32 cycles in the window: the 32nd bin
    out, _ = augment(x, np.zeros(32), 1000.0, Augment(speed=0.25), 2)
    spec = np.abs(np.fft.rfft(out[32:, :, 0], axis=1))
    bins = spec.argmax(axis=1)
    assert bins.min() >= np.floor(32 / 1.25) - 1 and bins.max() <= np.ceil(32 * 1.25) + 1
    assert len(set(bins.tolist())) > 3  # the factor is drawn per window


def test_noise_is_added_at_the_chosen_snr():
    x = _tone(50, n=64)
    out, _ = augment(x, np.zeros(64), 1000.0, Augment(snr=10.0), 3)
    noise = out[64:].astype(np.float64) - x
    snr = 10 * np.log10((x[:, :, 0] ** 2).mean() / (noise[:, :, 0] ** 2).mean())
    assert abs(snr - 10.0) < 0.3


def test_resonance_only_raises_bands():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 512, 1))
    out = _resonate(x, 1000.0, np.random.default_rng(1), 12.0)
    ratio = out.std(axis=1)[:, 0] / x.std(axis=1)[:, 0]
    assert np.all(ratio > 0.97) and ratio.max() > 1.2  # a peaking filter with gain >= 0 dB never attenuates


def test_bad_augmentation_options_are_one_line_errors(tmp_path):
    data = synth_vibration(VibrationOptions(per_class=16, window=64, windows_per_recording=4)).save(tmp_path / "d.npz")
    assert_clean_error(run_cli("train", data, "--out", tmp_path / "r", "--augment-gain", "0.5"),
                       "--augment-gain must be a factor in [1, 100]")
    assert_clean_error(run_cli("train", data, "--out", tmp_path / "r", "--by", "speed"),
                       "no group column 'speed'", "use one of: group")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- held-out groups

def test_folds_hold_out_one_group_and_keep_validation(leveled):
    values = leveled.columns["severity"]
    f = shift.fold(leveled, values, "medium")
    assert np.array_equal(f.split == 2, values == "medium")
    assert np.all((f.split == 1) <= (leveled.split == 1))
    assert shift.levels(leveled, "severity") == ["low", "medium", "high"]
    assert shift.levels(leveled, "speed") == ["900", "1500"]


def test_groups_that_cannot_be_held_out_are_refused(leveled):
    with pytest.raises(InputError, match="holds one class only") as exc:
        shift.levels(leveled, "group")  # every recording holds one class
    assert "hold out a column whose groups span the classes" in exc.value.one_line()
    lopsided = leveled.take(~((leveled.y == 1) & (leveled.columns["speed"] == "900")))
    with pytest.raises(InputError, match="class 'imbalance' occurs only in group '1500'"):
        shift.levels(lopsided, "speed")
    single = leveled.take(leveled.columns["speed"] == "900")
    with pytest.raises(InputError, match=r"has one value \(900\)"):
        shift.levels(single, "speed")
    with pytest.raises(InputError, match="no group column 'load'") as exc:
        shift.levels(leveled, "load")
    assert "use one of: severity, speed, group" in exc.value.one_line()


@pytest.mark.slow
def test_train_by_and_evaluate_report_every_held_out_group(tmp_path):
    """Small data and two epochs: the table's shape and consistency, not accuracy."""
    ds = synth_vibration(VibrationOptions(per_class=24, window=64, windows_per_recording=2, speeds=[900, 1500],
                                          seed=4))
    data = ds.save(tmp_path / "d.npz")
    run = tmp_path / "run"
    proc = run_cli("train", data, "--model", "mlp", "--out", run, "--epochs", "2", "--by", "speed",
                   "--augment-gain", "2", "--augment-snr", "20", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "mlp, accuracy per speed held out (retrained per fold)" in proc.stdout
    table = json.loads((run / "metrics.json").read_text())["leave_one_group_out"]
    assert [r["group"] for r in table["groups"]] == ["900", "1500"]
    assert [r["windows"] for r in table["groups"]] == [int((ds.columns["speed"] == g).sum()) for g in ("900", "1500")]
    assert all(0 <= r["int8"] <= 1 for r in table["groups"]) and table["int8_scored_by"] == "tflm"
    info = json.loads((run / "model.json").read_text())
    assert info["augment"] == {"gain": 2.0, "speed": 0.0, "snr": 20.0, "resonance": 0.0, "copies": 1}
    assert info["options"]["augment_snr"] == 20.0 and "by" not in info["options"]
    assert not list(run.glob("tinyml-logo-*"))

    # evaluate retrains the run's own configuration: the same seed gives the same folds and models
    assert shift.retrain_like(run, ds, "speed")["groups"] == table["groups"]
    proc = run_cli("evaluate", run, data, "--by", "speed", "--no-retrain", "--split", "all")
    assert proc.returncode == 0, proc.stderr
    assert "mlp, accuracy per speed of the all split (one run)" in proc.stdout
    assert_clean_error(run_cli("evaluate", run, data, "--by", "group"), "holds one class only")
    assert_clean_error(run_cli("evaluate", tmp_path / "nope", data, "--by", "speed"), "model not found")
