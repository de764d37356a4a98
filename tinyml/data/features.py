"""Hand-crafted window features, chosen by name in a JSON-serialisable spec.

A spec is a list of entries such as ``{"name": "fft_bands", "bands": 16, "log": true}``.
The train stage saves it with the model so the firmware computes the same numbers:
``firmware_templates/common/tinyml_features.c`` is the reference ("the C path is the
spec"), and this module follows it step by step in float64 — the same radix-2 FFT
butterflies with the same twiddle tables (``twiddles``), the same integer band edges
(``band_bins``), the same order of operations — so that after standardisation and int8
quantization (``quantize_features``) host and device agree on every value. Band features
therefore need power-of-two windows.

Outputs are ordered entry by entry, and within an entry channel by channel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinyml.errors import InputError

LOG_FLOOR = 1e-12  # added before log() so that silent bands stay finite


@dataclass(frozen=True)
class Feature:
    """One feature kind: its parameters (with defaults) and how many values it yields per channel."""

    fn: Callable[[np.ndarray, float, dict], np.ndarray]
    params: dict
    width: Callable[[dict], int]
    doc: str


# ---------------------------------------------------------------- shared helpers (mirrored in C)

def twiddles(t: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of 2*pi*m/T for m in [0, T): the C config embeds these exact doubles."""
    m = np.arange(t, dtype=np.float64)
    return np.cos(2.0 * np.pi * m / t), np.sin(2.0 * np.pi * m / t)


def band_bins(lo_bin: int, hi_bin: int, bands: int) -> list[tuple[int, int]]:
    """Split DFT bins [lo_bin, hi_bin] into ``bands`` contiguous [start, end) ranges, integers only."""
    n = hi_bin - lo_bin + 1
    return [(lo_bin + b * n // bands, lo_bin + (b + 1) * n // bands) for b in range(bands)]


def hz_to_bin_range(fmin: float, fmax: float, t: int, fs: float) -> tuple[int, int]:
    """The DFT bins k (1 <= k <= T/2) whose frequency k*fs/T lies in [fmin, fmax]."""
    lo = max(1, math.ceil(fmin * t / fs - 1e-9))
    hi = min(t // 2, math.floor(fmax * t / fs + 1e-9))
    return lo, hi


def bit_reversal(t: int) -> np.ndarray:
    """The radix-2 input permutation: index i goes to the bit-reversed i (T a power of two)."""
    bits = t.bit_length() - 1
    rev = np.zeros(t, dtype=np.int64)
    for b in range(bits):
        rev |= ((np.arange(t) >> b) & 1) << (bits - 1 - b)
    return rev


def fft(re: np.ndarray, im: np.ndarray, inverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Iterative radix-2 FFT of rows [M, T] (unscaled; ``inverse`` uses conjugate twiddles).

    Butterflies are element-wise, so every value goes through exactly the operations the
    C loop performs: t = b * w; b' = a - t; a' = a + t.
    """
    m, t = re.shape
    cos_t, sin_t = twiddles(t)
    rev = bit_reversal(t)
    re, im = np.ascontiguousarray(re.T[rev]), np.ascontiguousarray(im.T[rev])  # [T, M]: rows stay contiguous
    length = 2
    while length <= t:
        half, step = length // 2, t // length
        wr = cos_t[np.arange(half) * step][:, None]
        wi = (sin_t if inverse else -sin_t)[np.arange(half) * step][:, None]
        vr, vi = re.reshape(t // length, length, m), im.reshape(t // length, length, m)
        br, bi = vr[:, half:], vi[:, half:]
        tr = br * wr - bi * wi
        ti = br * wi + bi * wr
        ar, ai = vr[:, :half].copy(), vi[:, :half].copy()
        vr[:, half:] = ar - tr
        vi[:, half:] = ai - ti
        vr[:, :half] = ar + tr
        vi[:, :half] = ai + ti
        length *= 2
    return re.T, im.T


def _check_pow2(name: str, t: int) -> None:
    if t < 4 or t & (t - 1):
        raise InputError(f"{name} needs a power-of-two window (the FFT is radix-2), got {t} samples",
                         "use --window 64, 128, 256, 512 ... or drop this feature")


def _band_energies(re: np.ndarray, im: np.ndarray, ranges: list[tuple[int, int]], t: int,
                   log: bool) -> np.ndarray:
    """Sum of (|X_k|/T)^2 over each bin range, optionally log(e + LOG_FLOOR)."""
    power = (re / t) ** 2 + (im / t) ** 2
    out = np.stack([power[:, a:b].sum(axis=1) for a, b in ranges], axis=1)
    return np.log(out + LOG_FLOOR) if log else out


# ---------------------------------------------------------------- the features (x: [M, T] float64)

def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t = x.shape[1]
    mean = x.sum(axis=1) / t
    d = x - mean[:, None]
    return mean, (d * d).sum(axis=1) / t, (d * d * d).sum(axis=1) / t, (d * d * d * d).sum(axis=1) / t


def _rms(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    return np.sqrt((x * x).sum(axis=1) / x.shape[1])[:, None]


def _peak(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    return np.abs(x).max(axis=1)[:, None]


def _crest(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    rms, peak = _rms(x, fs, p)[:, 0], _peak(x, fs, p)[:, 0]
    return np.where(rms > 0, peak / np.where(rms > 0, rms, 1.0), 0.0)[:, None]


def _kurtosis(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    """Excess kurtosis m4/m2^2 - 3 (0 for a constant window): impacts make it large."""
    _, m2, _, m4 = _moments(x)
    return np.where(m2 > 0, m4 / np.where(m2 > 0, m2 * m2, 1.0) - 3.0, 0.0)[:, None]


def _skewness(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    _, m2, m3, _ = _moments(x)
    return np.where(m2 > 0, m3 / np.where(m2 > 0, m2 * np.sqrt(m2), 1.0), 0.0)[:, None]


def _mean(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    return _moments(x)[0][:, None]


def _std(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    return np.sqrt(_moments(x)[1])[:, None]


def _min(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    return x.min(axis=1)[:, None]


def _max(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    return x.max(axis=1)[:, None]


def fft_layout(p: dict, t: int, fs: float) -> tuple[int, int, list[tuple[int, int]]]:
    """(first bin, last bin, band ranges) of an fft_bands entry for windows of T samples at fs."""
    _check_pow2("fft_bands", t)
    fmax = fs / 2 if p["fmax"] is None else p["fmax"]
    lo, hi = hz_to_bin_range(p["fmin"], fmax, t, fs)
    if hi - lo + 1 < p["bands"]:
        raise InputError(f"fft_bands: {p['bands']} bands but only {max(0, hi - lo + 1)} DFT bins in "
                         f"{p['fmin']}..{fmax} Hz for {t}-sample windows at {fs} Hz",
                         "use fewer bands, a wider frequency range or longer windows")
    return lo, hi, band_bins(lo, hi, p["bands"])


def _fft_bands(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    t = x.shape[1]
    lo, hi, ranges = fft_layout(p, t, fs)
    re, im = fft(x, np.zeros_like(x))
    return _band_energies(re, im, ranges, t, p["log"])


def envelope_layout(p: dict, t: int, fs: float) -> tuple[int, int, int, list[tuple[int, int]]]:
    """(pass-band first bin, last bin, envelope last bin, envelope band ranges) of an envelope_bands entry."""
    _check_pow2("envelope_bands", t)
    lo_hz, hi_hz = p["band"] if p["band"] is not None else (0.25 * fs, 0.45 * fs)
    k0, k1 = hz_to_bin_range(lo_hz, hi_hz, t, fs)
    if k1 < k0:
        raise InputError(f"envelope_bands: no DFT bins in the pass band {lo_hz}..{hi_hz} Hz at fs {fs} Hz",
                         "choose a band between 0 and fs/2")
    fmax = fs / 8 if p["fmax"] is None else p["fmax"]
    _, ke = hz_to_bin_range(0.0, fmax, t, fs)
    if ke < p["bands"]:
        raise InputError(f"envelope_bands: {p['bands']} bands but only {ke} envelope bins up to {fmax} Hz",
                         "use fewer bands, a higher fmax or longer windows")
    return k0, k1, ke, band_bins(1, ke, p["bands"])


def _envelope_bands(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    """Band-pass by keeping DFT bins, take the analytic-signal magnitude, then band energies of its spectrum.

    Bearing impacts ring a structural resonance; the envelope of that band repeats at the
    fault frequency (BPFO, BPFI), which is what the envelope spectrum shows.
    """
    t = x.shape[1]
    k0, k1, ke, ranges = envelope_layout(p, t, fs)
    re, im = fft(x, np.zeros_like(x))
    keep = np.zeros(t, dtype=bool)
    keep[k0:k1 + 1] = True  # positive-frequency pass band only: the inverse is the analytic signal / 2
    re, im = fft(np.where(keep, re, 0.0), np.where(keep, im, 0.0), inverse=True)
    zr, zi = re * (2.0 / t), im * (2.0 / t)
    env = np.sqrt(zr * zr + zi * zi)
    env = env - (env.sum(axis=1) / t)[:, None]
    er, ei = fft(env, np.zeros_like(env))
    return _band_energies(er, ei, ranges, t, p["log"])


def _rate_of_change(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    """Least-squares slope in units per second: how fast a temperature climbs (runaway) or falls."""
    t = x.shape[1]
    n = np.arange(t, dtype=np.float64) - (t - 1) / 2.0
    denom = (n * n).sum()
    return ((x * n).sum(axis=1) / denom * fs)[:, None]


def _curvature(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    """Least-squares quadratic coefficient with time scaled to [-1, 1], in signal units (0 below 3 samples).

    Fitted on q_n = c_n^2 - mean(c^2), c_n the centred sample index, which is orthogonal to the
    constant and the slope. A first-order thermal lag only decelerates towards its set point
    (curvature of the sign opposite to its slope); a runaway accelerates the way it rises.
    Independent of fs, so slow signals do not give vanishing values.
    """
    t = x.shape[1]
    half = (t - 1) / 2.0
    n = np.arange(t, dtype=np.float64) - half
    q = n * n - (n * n).sum() / t
    denom = (q * q).sum()
    if denom == 0.0:
        return np.zeros((x.shape[0], 1))
    return ((x * q).sum(axis=1) / denom * (half * half))[:, None]


def rolling_positions(p: dict, t: int) -> list[int]:
    """Window-end sample indices at which a rolling_mean entry is read (integers, shared with C)."""
    w, n = p["width"], p["points"]
    if w > t:
        raise InputError(f"rolling_mean: width {w} is longer than the {t}-sample window", "use a smaller width")
    if n == 1:
        return [t - 1]
    return [w - 1 + i * (t - w) // (n - 1) for i in range(n)]


def _rolling_mean(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    """Trailing mean of ``width`` samples read at ``points`` evenly spaced positions: a smoothed, shorter trace.

    ``relative`` subtracts the window mean, keeping the shape (a runaway curves upwards) without the level.
    """
    w = p["width"]
    mean = x.sum(axis=1) / x.shape[1]
    cols = [x[:, e - w + 1:e + 1].sum(axis=1) / w - (mean if p["relative"] else 0.0)
            for e in rolling_positions(p, x.shape[1])]
    return np.stack(cols, axis=1)


def _diff_max(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    """Largest jump between neighbouring samples: a step or a spike."""
    return np.abs(x[:, 1:] - x[:, :-1]).max(axis=1)[:, None]


def _flat_fraction(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    """Share of neighbouring samples that are exactly equal: a stuck sensor repeats its value."""
    return (np.count_nonzero(x[:, 1:] == x[:, :-1], axis=1) / (x.shape[1] - 1))[:, None]


def _flat_run(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    """Longest streak of exactly equal neighbouring samples, as a share of the window's steps: a stuck
    sensor holds one value for many samples in a row, while a quiet, quantised one repeats as often in
    short streaks (an hour frozen is a streak of 12 samples; 4 weeks of a synthetic log reach 5-7)."""
    return (longest_streak(x[:, 1:] == x[:, :-1]) / (x.shape[1] - 1))[:, None]


def longest_streak(same: np.ndarray) -> np.ndarray:
    """Per row of booleans [N, T], the length of its longest run of True (integers, as the device counts)."""
    run = best = np.zeros(same.shape[0], np.int64)
    for column in same.T:
        run = np.where(column, run + 1, 0)
        best = np.maximum(best, run)
    return best


def _one(p: dict) -> int:
    return 1


def _daily_cycle(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    raise InputError("the daily_cycle feature is computed in integers only (it keeps state across windows)",
                     "train with --arithmetic integer")


def _integer_only(x: np.ndarray, fs: float, p: dict) -> np.ndarray:
    raise InputError("the bearing feature is computed in integers only (tinyml/data/features_bearing.py)",
                     "train with the default integer preprocessing (drop --arithmetic float64)")


def _daily_cycle_width(p: dict) -> int:
    from tinyml.data.features_series import emitted

    return len(emitted(p))


def _bearing_width(p: dict) -> int:
    from tinyml.data.features_bearing import width

    return width(p)


FEATURES: dict[str, Feature] = {
    "rms": Feature(_rms, {}, _one, "root mean square"),
    "peak": Feature(_peak, {}, _one, "largest absolute sample"),
    "crest": Feature(_crest, {}, _one, "peak / rms"),
    "kurtosis": Feature(_kurtosis, {}, _one, "excess kurtosis (impulsiveness)"),
    "skewness": Feature(_skewness, {}, _one, "third standardised moment"),
    "mean": Feature(_mean, {}, _one, "mean"),
    "std": Feature(_std, {}, _one, "population standard deviation"),
    "min": Feature(_min, {}, _one, "smallest sample"),
    "max": Feature(_max, {}, _one, "largest sample"),
    "fft_bands": Feature(_fft_bands, {"bands": 16, "fmin": 0.0, "fmax": None, "log": True},
                         lambda p: p["bands"], "DFT power in equal-width bands (fmax default fs/2)"),
    "envelope_bands": Feature(_envelope_bands, {"bands": 8, "band": None, "fmax": None, "log": True},
                              lambda p: p["bands"],
                              "envelope-spectrum power in bands (band default 0.25..0.45 fs, fmax default fs/8)"),
    "rate_of_change": Feature(_rate_of_change, {}, _one, "least-squares slope per second"),
    "curvature": Feature(_curvature, {}, _one, "least-squares quadratic coefficient, time scaled to [-1, 1]"),
    "rolling_mean": Feature(_rolling_mean, {"width": 8, "points": 8, "relative": False}, lambda p: p["points"],
                            "trailing mean of `width` samples at `points` positions (relative: minus the window mean)"),
    "diff_max": Feature(_diff_max, {}, _one, "largest absolute sample-to-sample change"),
    "flat_fraction": Feature(_flat_fraction, {}, _one, "fraction of repeated samples"),
    "flat_run": Feature(_flat_run, {}, _one, "longest streak of repeated samples, as a fraction of the window"),
    "daily_cycle": Feature(_daily_cycle, {"slots": None, "profile_shift": 2, "baseline_shift": 5, "trend_shift": 3,
                                          "scale_shift": 5, "columns": None}, _daily_cycle_width,
                           "residual after a learned daily cycle, its trend, deviation from the rolling baseline, "
                           "rolling |residual| (state across windows: tinyml/data/features_series.py; columns: "
                           "which of residual, trend, deviation, scale, default all)"),
    "bearing": Feature(_integer_only, {"bearing": None, "orders": None, "rpm": None, "rpm_range": None,
                                       "band": None, "harmonics": 2, "tolerance": 0.03, "floor_bins": 4,
                                       "fitted": []},
                       _bearing_width, "bearing-fault orders, speed- and level-invariant: envelope kurtosis, "
                       "1x-3x shares, envelope lines at 1x, BPFO, BPFI, BSF harmonics and BPFI sidebands over "
                       "their noise floor (integer only; tinyml/data/features_bearing.py)"),
}

DEFAULT_VIBRATION_SPEC: list[dict] = [
    {"name": "rms"}, {"name": "peak"}, {"name": "crest"}, {"name": "kurtosis"}, {"name": "skewness"},
    {"name": "fft_bands", "bands": 16, "log": True},
    {"name": "envelope_bands", "bands": 8, "log": True},
]
BEARING_SPEC: list[dict] = [{"name": "bearing"}]  # band, orders and speed range are fixed when training
DEFAULT_TEMPERATURE_SPEC: list[dict] = [
    {"name": "mean"}, {"name": "std"}, {"name": "min"}, {"name": "max"},
    {"name": "rate_of_change"}, {"name": "diff_max"}, {"name": "flat_fraction"},
    {"name": "rolling_mean", "width": 8, "points": 8, "relative": True}, {"name": "curvature"},
]
# slow signals logged over days: the window's shape, and its level only against the daily cycle and rolling
# statistics (daily_cycle): the absolute level (mean, min, max) wanders with the season past anything the
# training weeks saw, which read as an anomaly every warm afternoon (docs/benchmarks.md, issue 17). Not
# flat_run: it finds a stuck sensor an hour in, but its noisy small streaks cost the autoencoder false alarms.
# Not the daily_cycle scale (rolling |residual|): it follows the weather's day-to-day change, weeks of history
# do not span it, and where the weeks after left its range the autoencoder raised false alarms (docs/benchmarks.md,
# eleventh round)
TEMPERATURE_SERIES_SPEC: list[dict] = [e for e in DEFAULT_TEMPERATURE_SPEC if e["name"] not in ("mean", "min", "max")] \
    + [{"name": "daily_cycle", "columns": ["residual", "trend", "deviation"]}]


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_param(name: str, key: str, value: object) -> None:
    bad = InputError(f"feature {name!r}: bad value {value!r} for {key!r}", f"see `{name}` in tinyml/data/features.py")
    limits = {"bands": 4096, "width": 4096, "points": 4096, "harmonics": 4, "floor_bins": 16}
    if key in limits:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limits[key]:
            raise bad
    elif key == "tolerance":
        if not (_number(value) and 0 <= value <= 0.2):
            raise bad
    elif key == "rpm":
        if value is not None and not (_number(value) and value > 0):
            raise bad
    elif key == "bearing":
        if value is not None and not isinstance(value, str):
            raise bad
    elif key == "orders":
        if value is not None and not (isinstance(value, dict) and {"bpfo", "bpfi", "bsf"} <= set(value)
                                      and all(_number(v) and 0 < v < 100 for v in value.values())):
            raise bad
    elif key == "fitted":
        if not (isinstance(value, list) and set(value) <= {"bearing", "orders", "rpm_range", "band"}):
            raise bad
    elif key == "rpm_range":
        if value is not None and not (isinstance(value, (list, tuple)) and len(value) == 2
                                      and all(_number(v) for v in value) and 0 < value[0] < value[1]):
            raise bad
    elif key == "columns":
        from tinyml.data.features_series import COLUMNS

        # a non-empty list of COLUMNS' names, each once, in COLUMNS' order
        if value is not None and not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)
                                      and value == [c for c in COLUMNS if c in value]):
            raise InputError(f"feature {name!r}: bad value {value!r} for 'columns'",
                             f"give a non-empty list of {', '.join(COLUMNS)} in that order, each once")
    elif key == "slots":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096):
            raise bad
    elif key.endswith("_shift"):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 16:
            raise bad
    elif key in ("log", "relative"):
        if not isinstance(value, bool):
            raise bad
    elif key in ("fmin", "fmax"):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise bad
    elif key == "band" and value is not None:
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
              and 0 <= value[0] < value[1])
        if not ok:
            raise bad


def validate_spec(spec: object) -> list[dict]:
    """Check a spec and return it with every default filled in (the form saved with a model)."""
    if not isinstance(spec, (list, tuple)) or not spec:
        raise InputError("a feature spec must be a non-empty list of {\"name\": ...} entries",
                         f"known features: {', '.join(FEATURES)}")
    out = []
    for entry in spec:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InputError(f"feature spec entry {entry!r} has no name", 'write entries like {"name": "rms"}')
        name = entry["name"]
        if name not in FEATURES:
            raise InputError(f"unknown feature {name!r}",
                             "known features: " + "; ".join(f"{k} ({f.doc})" for k, f in FEATURES.items()))
        feat = FEATURES[name]
        unknown = sorted(set(entry) - {"name"} - set(feat.params))
        if unknown:
            raise InputError(f"feature {name!r} has no parameter {unknown[0]!r}",
                             f"parameters of {name}: {', '.join(feat.params) or 'none'}")
        full = {"name": name, **feat.params, **{k: v for k, v in entry.items() if k != "name"}}
        for key in feat.params:
            _check_param(name, key, full[key])
        for key in ("band", "rpm_range"):
            if full.get(key) is not None:
                full[key] = [float(v) for v in full[key]]
        out.append(full)
    return out


def feature_names(spec: list[dict], channels: list[str]) -> list[str]:
    """One name per output column, e.g. ``rms_x`` or ``fft_bands_z_3``."""
    names = []
    for entry in validate_spec(spec):
        feat = FEATURES[entry["name"]]
        for ch in channels:
            if feat.width is _one:
                names.append(f"{entry['name']}_{ch}")
            else:
                names += [f"{entry['name']}_{ch}_{i}" for i in range(feat.width(entry))]
    return names


def guarded_columns(spec: list[dict], channels: list[str]) -> np.ndarray:
    """Per output column (``feature_names``' order), whether the input guard bounds it: all but the daily_cycle
    columns in ``features_series.UNGUARDED``."""
    from tinyml.data.features_series import COLUMNS, NAME, UNGUARDED, emitted

    out: list[bool] = []
    for entry in validate_spec(spec):
        width = FEATURES[entry["name"]].width(entry)
        for _ in channels:
            out += ([COLUMNS[i] not in UNGUARDED for i in emitted(entry)] if entry["name"] == NAME
                    else [True] * width)
    return np.array(out, bool)


def compute_features_f64(x: np.ndarray, fs: float, spec: list[dict]) -> np.ndarray:
    """Features in float64 [N, F], before the final float32 rounding that the C code also does."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1] < 2:
        raise InputError(f"features need windows shaped [N, T, C] with T >= 2, got {x.shape}",
                         "pass dataset windows (Dataset.x)")
    if not np.all(np.isfinite(x)):
        raise InputError("features: windows contain NaN or infinite samples", "clean the data first")
    full = validate_spec(spec)
    n, t, c = x.shape
    rows = x.astype(np.float32).astype(np.float64).transpose(0, 2, 1).reshape(n * c, t)
    cols = []
    for entry in full:
        vals = FEATURES[entry["name"]].fn(rows, float(fs), entry)  # [N*C, W]
        cols.append(vals.reshape(n, c * vals.shape[1]))
    return np.concatenate(cols, axis=1) if n else np.zeros((0, sum(FEATURES[e["name"]].width(e) * c for e in full)))


def compute_features(x: np.ndarray, fs: float, spec: list[dict]) -> np.ndarray:
    """Features of windows x [N, T, C] sampled at fs Hz, as float32 [N, F] (columns as ``feature_names``)."""
    return compute_features_f64(x, fs, spec).astype(np.float32)


def quantize_features(features: np.ndarray, mean: np.ndarray, std: np.ndarray, scale: float,
                      zero_point: int) -> np.ndarray:
    """Standardise then quantize to int8 exactly as ``tinyml_features_quantize`` does in C.

    In float32 like the device: v = (f - mean) / std; q = roundf(v / scale) + zero_point
    (halves away from zero), clamped to [-128, 127].
    """
    f = np.asarray(features, dtype=np.float32)
    v = (f - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    r = (v / np.float32(scale)).astype(np.float64)
    q = (np.sign(r) * np.floor(np.abs(r) + 0.5)).astype(np.float32) + np.float32(zero_point)
    return np.clip(q, -128, 127).astype(np.int8)
