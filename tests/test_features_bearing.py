"""The `bearing` feature preset (host side): training-time choices, speed and level invariance,
the on-window shaft speed estimate, and refusals. Bit-identity with C is in test_features_bearing_c.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinyml.data import features_bearing as fb
from tinyml.data import features_int as fi
from tinyml.data.bearings import load_bearing
from tinyml.data.features import BEARING_SPEC, validate_spec
from tinyml.errors import InputError

FS, T = 2560.0, 1024
ORDERS = load_bearing("6205-2RS").orders()


def machine(rpm: float, fault: str | None, *, level: float = 1.0, seed: int = 0, windows: int = 4) -> np.ndarray:
    """Windows [N, T, 1] of a shaft 1x, white noise and, for a fault, resonance bursts (900 Hz,
    4 % damping) repeating at its order of the shaft speed."""
    rng = np.random.default_rng(seed)
    n = windows * T
    t = np.arange(n) / FS
    f = rpm / 60.0
    x = 0.05 * np.cos(2 * math.pi * f * t + rng.uniform(0, 6.3)) + rng.normal(0, 0.02, n)
    if fault:
        rate = ORDERS[fault] * f
        for t0 in np.arange(rng.uniform(0, 1 / rate), t[-1], 1 / rate):
            i = int(np.searchsorted(t, t0))
            tau = t[i:i + 200] - t0
            x[i:i + tau.size] += 0.3 * np.exp(-0.04 * 2 * math.pi * 900 * tau) * np.sin(2 * math.pi * 900 * tau)
    return (level * x).reshape(windows, T, 1).astype(np.float32)


def entry(**extra) -> list[dict]:
    """A spec with the band and speed range given: training only looks up the bearing's orders."""
    spec = validate_spec([{"name": "bearing", "bearing": "6205-2RS", "rpm_range": [1000, 2000],
                           "band": [600, 1200], **extra}])
    return validate_spec(fb.resolve(spec, np.zeros((1, T, 1)), FS, rpm=None, bearing=None))


def values(x: np.ndarray, spec: list[dict], shift: int = 14) -> np.ndarray:
    return fi.feature_values(fi.to_samples(x, [shift]), FS, spec) / 65536.0


def column(spec: list[dict], name: str) -> int:
    return fb.names(spec[0]).index(name)


def test_training_fills_the_orders_the_speed_range_and_a_band_above_the_lines() -> None:
    x = np.concatenate([machine(1500, "bpfo", seed=s) for s in range(3)] + [machine(1500, None)])
    rpm = np.full(len(x), 1500.0)
    (e,) = validate_spec(fb.resolve(validate_spec(BEARING_SPEC), x, FS, rpm=rpm,
                                    bearing=load_bearing("6205").to_json()))
    assert e["orders"]["bpfo"] == pytest.approx(3.5848, rel=2e-4) and e["bearing"] == "6205-2RS"
    assert e["rpm_range"] == pytest.approx([1125, 1875])
    top = 2 * ORDERS["bpfi"] * 1875 / 60
    assert top <= e["band"][0] < e["band"][1] <= FS / 2 and e["band"][1] - e["band"][0] >= 2 * top / 2
    assert values(x[:12], validate_spec([e]))[:, column([e], "bpfo_1")].min() > 3.0
    _, sk_fault = fb.kurtogram(x[:12], FS, min_lo=top, min_width=top)
    _, sk_healthy = fb.kurtogram(x[12:], FS, min_lo=top, min_width=top)
    assert sk_fault > 0.2 and sk_healthy < 0.12     # noise: 0 on average (the best of the bank a little above)
    (e2,) = fb.resolve(validate_spec(BEARING_SPEC), x, FS, rpm=None, bearing=load_bearing("6205").to_json(),
                       rpm_range=[600, 3000])
    assert e2["rpm_range"] == [600.0, 3000.0]                               # the machine's range wins


def test_training_without_bearing_or_speed_says_what_to_give() -> None:
    x = machine(1500, None)
    with pytest.raises(InputError, match="geometry") as err:
        fb.resolve(validate_spec(BEARING_SPEC), x, FS, rpm=np.full(4, 1500.0), bearing=None)
    assert "--bearing" in err.value.hint
    with pytest.raises(InputError, match="shaft speed") as err:
        fb.resolve(validate_spec(BEARING_SPEC), x, FS, rpm=np.full(4, np.nan), bearing=load_bearing("6205").to_json())
    assert "--rpm" in err.value.hint
    with pytest.raises(InputError, match="fixed at training time"):
        values(x, validate_spec(BEARING_SPEC))
    with pytest.raises(InputError, match="integers only"):
        from tinyml.data.features import compute_features
        compute_features(x, FS, entry())


@pytest.mark.parametrize("fault, line", [("bpfo", "bpfo_1"), ("bpfi", "bpfi_1")])
def test_a_fault_line_stands_out_at_every_speed(fault: str, line: str) -> None:
    spec = entry()
    other = "bpfi_1" if line == "bpfo_1" else "bpfo_1"
    for rpm in (1100, 1500, 1900):
        v = values(machine(rpm, fault, seed=rpm), spec)
        healthy = values(machine(rpm, None, seed=rpm + 1), spec)
        assert np.all(v[:, column(spec, line)] > 6.5), (rpm, v[:, column(spec, line)])   # 90x its floor
        assert np.all(v[:, column(spec, line)] > v[:, column(spec, other)] + 1.5)
        assert np.all(healthy[:, column(spec, line)] < 5.0)       # noise: the largest of 4 bins over a median


def test_level_scales_nothing_but_the_unbalance() -> None:
    spec = entry()
    x = machine(1500, "bpfi", seed=3)
    a, b = values(x, spec), values(x * np.float32(0.25), spec)
    keep = [i for i, n in enumerate(fb.names(spec[0])) if n != "unbalance"]
    assert np.abs(a[:, keep] - b[:, keep]).max() < 0.25
    u = column(spec, "unbalance")
    assert np.allclose(a[:, u] - b[:, u], 4.0, atol=0.05)                   # power: (1/4)^2 -> -4 in log2


def test_on_window_speed_estimate_accuracy_for_a_clear_1x() -> None:
    """The stated accuracy: Rife's two-bin interpolation on 1024-sample windows (2.5 Hz bins), the
    1x 0.05 over 0.02 white noise, 1000-2000 rpm: median error below 0.3 %, 90 % of windows within
    0.6 %, every window within 5 % (noise and the 1x's negative-frequency image bias two bins)."""
    spec = entry()
    lay = fi.layout(spec[0], T, FS)
    errs = []
    for rpm in np.linspace(1000, 2000, 41):
        q = fi.to_samples(machine(float(rpm), None, seed=int(rpm)), [14])
        r = fi._Rows(q.transpose(0, 2, 1).reshape(-1, T))
        sr, si = r.spectrum
        got = fb.shaft_q16(sr * sr + si * si, lay.weights) / 65536.0 * FS / T * 60
        errs += list(np.abs(got - rpm) / rpm)
    assert np.median(errs) < 0.003 and np.percentile(errs, 90) < 0.006 and max(errs) < 0.05, errs


def test_a_fixed_speed_and_bad_parameters() -> None:
    spec = validate_spec(fb.resolve([{"name": "bearing", "bearing": "6205-2RS", "rpm": 1500, "band": [600, 1200]}],
                                    np.zeros((1, T, 1)), FS, rpm=None, bearing=None))
    lay = fi.layout(spec[0], T, FS)
    assert lay.weights[fb.P_FIXED] == round(1500 / 60 * T / FS * 65536)
    assert values(machine(1500, "bpfo"), spec)[:, column(spec, "bpfo_1")].min() > 3.0
    for bad in ({"harmonics": 0}, {"tolerance": 0.5}, {"rpm_range": [2000, 1000]}, {"orders": {"bpfo": -1}},
                {"floor_bins": 40}, {"rpm": 0}):
        with pytest.raises(InputError, match="bad value"):
            entry(**bad)
    with pytest.raises(InputError, match="power-of-two"):
        fi.feature_values(np.zeros((1, 1000, 1), np.int64), FS, entry())
    with pytest.raises(InputError, match="spans no DFT bins"):
        fi.layout(entry(rpm_range=[1000, 1001])[0], 64, FS)


def test_a_preprocess_json_whose_spec_no_longer_matches_its_constants_is_refused() -> None:
    from tinyml.preprocess import Preprocess

    good = {"mode": "features", "window": T, "channels": ["x"], "fs": FS, "feature_spec": entry(),
            "arithmetic": "integer", "sample_shift": [14]}
    n = len(fb.names(entry()[0]))
    Preprocess.from_json({**good, "mean": [0.0] * n, "std": [1.0] * n})
    with pytest.raises(InputError, match=f"gives {n} values but it standardises {n - 1}"):
        Preprocess.from_json({**good, "mean": [0.0] * (n - 1), "std": [1.0] * (n - 1)})


def test_the_report_says_what_the_preset_fixed() -> None:
    from tinyml.report.page import _feature_words

    text = _feature_words(entry()[0])
    assert "bearing 6205-2RS" in text and "600-1200 Hz" in text and "1x peak in 1000-2000 rpm" in text


def test_a_retraining_chooses_again_what_training_chose() -> None:
    """Leave-one-group-out folds (tinyml evaluate --by) start from the spec as given: the band,
    orders and speed range a run chose from all its training data are reset for each fold."""
    x = np.concatenate([machine(1500, "bpfo", seed=s) for s in range(2)])
    given = validate_spec([{"name": "bearing", "rpm": 1500.0}])
    (e,) = fb.resolve(given, x, FS, rpm=None, bearing=load_bearing("6203").to_json())
    assert e["fitted"] == ["band", "bearing", "orders"] and e["rpm"] == 1500.0
    (back,) = validate_spec(fb.unresolved([e]))
    assert back == given[0]
    (kept,) = fb.unresolved(entry())             # a band and range the user gave stay
    assert kept["band"] == [600.0, 1200.0] and kept["rpm_range"] == [1000.0, 2000.0] and kept["orders"] is None
