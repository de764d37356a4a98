"""The ``bearing`` feature: bearing physics, invariant to speed and level, in integers.

Why: a model fed band energies learns the recording (its speed, its level, its defect size);
a defect's *location* sets the frequency of its impacts as an order of the shaft speed
(``bearings.py``), and its size mostly sets their amplitude. So every value here is read at an
order of the shaft speed (a speed change does not move it) and is a ratio, as a log2 (a larger
defect or a louder machine does not move it out of the training range).

Per channel of a window, with the envelope band, the bearing's orders and the speed range
fixed at training time (``resolve``) and baked into the C:
  1. shaft frequency f in Q16 bins: a fixed speed, or the raw spectrum's 1x peak in the speed
     range: the largest bin k (replaced by the larger of bins k/2, k/2 + 1 when that is in the
     range and within 9 dB of it: a range over 2:1 also holds a strong 2x), its larger neighbour
     j in {k-1, k}, then Rife's two-bin interpolation for a rectangular window,
     f = j + |X_j+1| / (|X_j| + |X_j+1|)
  2. log2 envelope kurtosis in the band (impacts make the envelope spiky; noise gives 1)
  3. the raw spectrum's energy at 1x, 2x, 3x (the two bins around h f) as log2 of its share of
     the total (imbalance, misalignment, looseness), and the 1x energy over f^4 (``unbalance``)
  4. in the envelope spectrum of the band, at the shaft 1x and at h x BPFO, BPFI, BSF for
     h = 1..harmonics: the largest bin within tolerance of h * order * f, as log2 of its ratio to
     the local noise floor (the lower median of floor_bins bins each side, past a one-bin gap)
  5. inner-race sidebands: the mean of the peaks at BPFI - 1x and BPFI + 1x over BPFI's floor
Output per channel: [kurtosis, raw 1x, 2x, 3x, unbalance, envelope 1x, BPFO h.., BPFI h.., BSF h..,
sidebands],
every value log2 in Q16 (``features_int.LOG_FRAC``). Mirrored line by line by ``bearing()`` in
firmware_templates/common/tinyml_features_int.c.

The band: a fixed filter bank (bands of fs/2 / {1, 1.5, 2, 3, 4, 6, 8} wide, half-overlapping),
scored by the spectral kurtosis of each band's envelope averaged over the training windows
(a fast kurtogram); bands must sit above the highest line read and be twice as wide as BPFI.
"""

from __future__ import annotations

import math

import numpy as np

from tinyml.data import features_int as fi
from tinyml.data.features import hz_to_bin_range
from tinyml.errors import InputError

RAW_HARMONICS = 3                       # 1x, 2x, 3x in the raw spectrum
ORDER_KEYS = ("bpfo", "bpfi", "bsf")    # envelope lines, after the shaft's 1x
SUBHARMONIC_DB = 3                      # a peak at half the largest one's bin within 2^-3 (-9 dB) is the 1x
SPEED_MARGIN = 0.25                     # the estimate searches the training speeds +-25 %
BANK_DIVISORS = (1, 1.5, 2, 3, 4, 6, 8)  # band widths fs/2 / d of the filter bank
KURTOGRAM_WINDOWS = 2000                # training windows scored (a seeded sample of more)
# the parameter table baked for C (weights of the op): fixed positions, then the lines
P_KMIN, P_KMAX, P_FIXED, P_DEFAULT, P_TOL, P_FLOOR, P_LINES, P_SIDEBAND = range(8)
HEADER = 8


def width(p: dict) -> int:
    """Values per channel."""
    return 3 + RAW_HARMONICS + len(ORDER_KEYS) * p["harmonics"] + 1


def names(p: dict) -> list[str]:
    h = range(1, p["harmonics"] + 1)
    return (["env_kurtosis", *[f"raw_{k}x" for k in range(1, RAW_HARMONICS + 1)], "unbalance", "env_1x"]
            + [f"{o}_{k}" for o in ORDER_KEYS for k in h] + ["bpfi_sidebands"])


# ---------------------------------------------------------------- training-time choices

def kurtogram(x: np.ndarray, fs: float, *, min_lo: float, min_width: float) -> tuple[list[float], float]:
    """The filter-bank band whose envelope is most impulsive on average over windows x [N, T, C]:
    ([lo, hi] in Hz, its mean spectral kurtosis E|z|^4 / E|z|^2^2 - 2 of the analytic band signal)."""
    n, t, c = x.shape
    if n > KURTOGRAM_WINDOWS:
        x = x[np.random.default_rng(0).choice(n, KURTOGRAM_WINDOWS, replace=False)]
    rows = np.asarray(x, np.float64).transpose(0, 2, 1).reshape(-1, t)
    spec = np.fft.fft(rows - rows.mean(axis=1, keepdims=True), axis=1)
    freqs = np.arange(t) * fs / t
    nyq = fs / 2
    best: tuple[float, list[float]] | None = None
    for d in BANK_DIVISORS:
        w = nyq / d
        lo = 0.0
        while lo + w <= nyq + 1e-9:
            hi = lo + w
            k0, k1 = hz_to_bin_range(lo, hi, t, fs)
            if lo >= min_lo and w >= min_width and k1 - k0 >= 3:
                keep = (freqs >= k0 * fs / t - 1e-9) & (freqs <= k1 * fs / t + 1e-9)
                z = np.fft.ifft(np.where(keep, spec, 0), axis=1)
                m2 = (np.abs(z) ** 2).mean(axis=1)
                m4 = (np.abs(z) ** 4).mean(axis=1)
                sk = float(np.mean(np.where(m2 > 0, m4 / np.maximum(m2, 1e-300) ** 2 - 2, 0.0)))
                if best is None or sk > best[0]:
                    best = (sk, [lo, hi])
            lo += w / 2
    if best is None:
        raise InputError(f"bearing: no band of the filter bank lies above {min_lo:.0f} Hz and is {min_width:.0f} Hz "
                         f"wide at fs {fs:g} Hz", "sample faster, or give the band in the spec")
    return best[1], best[0]


def resolve(spec: list[dict], x_train: np.ndarray, fs: float, *, rpm: np.ndarray | None,
            bearing: dict | None, rpm_range: list[float] | None = None) -> list[dict]:
    """Fill every ``bearing`` entry's training-time choices: the bearing's orders (from the entry's
    ``bearing`` name or file, else the dataset's), the speed range the estimate searches (the
    machine's operating range the dataset records, else the training windows' rpm +-SPEED_MARGIN)
    and the band (kurtogram over the training windows); ``fitted`` lists what was chosen here."""
    from tinyml.data.bearings import bearing_from_meta, load_bearing

    out = []
    for entry in spec:
        if entry.get("name") != "bearing":
            out.append(entry)
            continue
        e = dict(entry)
        fitted = list(e.get("fitted") or [])
        if e.get("orders") is None:
            b = load_bearing(e["bearing"]) if e.get("bearing") else bearing_from_meta({"bearing": bearing})
            if b is None:
                raise InputError("the bearing feature needs the bearing's geometry",
                                 "import with --bearing NAME|FILE, or give \"bearing\": NAME in the feature spec")
            fitted += ["orders"] if e.get("bearing") else ["bearing", "orders"]
            e["bearing"], e["orders"] = b.name, {k: b.orders()[k] for k in ("ftf", *ORDER_KEYS)}
        if e.get("rpm") is None and e.get("rpm_range") is None:
            fitted.append("rpm_range")
        if e.get("rpm") is None and e.get("rpm_range") is None and rpm_range is not None:
            e["rpm_range"] = [float(v) for v in rpm_range]
        elif e.get("rpm") is None and e.get("rpm_range") is None:
            known = None if rpm is None else np.asarray(rpm, np.float64)[np.isfinite(rpm)]
            if known is None or not known.size:
                raise InputError("the bearing feature needs the shaft speed: the training windows have none",
                                 "import with --rpm/--rpm-column, or give \"rpm\" or \"rpm_range\" in the feature spec")
            e["rpm_range"] = [float(known.min()) * (1 - SPEED_MARGIN), float(known.max()) * (1 + SPEED_MARGIN)]
        if e.get("band") is None:
            fitted.append("band")
            full = {"harmonics": 2, "rpm": None, "rpm_range": None, **e}
            top_hz = (full["rpm"] if full["rpm"] is not None else full["rpm_range"][1]) / 60.0
            bpfi_hz = max(full["orders"][k] for k in ORDER_KEYS) * top_hz
            e["band"], _ = kurtogram(np.asarray(x_train), fs, min_lo=full["harmonics"] * bpfi_hz,
                                     min_width=2 * bpfi_hz)
        e["fitted"] = sorted(set(fitted))
        out.append(e)
    return out


def unresolved(spec: list[dict] | None) -> list[dict] | None:
    """The spec as given before training: what ``resolve`` chose (listed in ``fitted``) reset, so a
    retraining on other data (a leave-one-group-out fold) chooses again from its own training windows."""
    if spec is None:
        return None
    return [{**e, **{k: None for k in e.get("fitted") or []}, "fitted": []} if e.get("name") == "bearing" else e
            for e in spec]


def check_resolved(p: dict) -> None:
    if p["orders"] is None or (p["rpm"] is None and p["rpm_range"] is None) or p["band"] is None:
        raise InputError("bearing feature: orders, speed and band are fixed at training time",
                         "train with this spec (`tinyml train --features bearing`), or give them in the spec")


def table(p: dict, t: int, fs: float) -> tuple[list[int], int, int]:
    """(the int32 parameter table baked for C, envelope band first bin, last bin)."""
    check_resolved(p)
    if t & (t - 1):
        raise InputError(f"bearing needs a power-of-two window (the FFT is radix-2), got {t} samples",
                         "use --window 256, 512, 1024 ...")
    half = t // 2
    k0, k1 = hz_to_bin_range(*p["band"], t, fs)
    if k1 < k0:
        raise InputError(f"bearing: no DFT bins in the band {p['band']} Hz at fs {fs:g} Hz", "choose a band below fs/2")
    to_bins = t / fs / 60.0
    if p["rpm"] is not None:
        kmin, kmax = 1, 2
        fixed = int(math.floor(p["rpm"] * to_bins * 65536 + 0.5))
        default = fixed
    else:
        lo, hi = p["rpm_range"]
        kmin = max(1, int(math.floor(lo * to_bins)))
        kmax = min(half - 1, int(math.ceil(hi * to_bins)))
        if kmax <= kmin:
            raise InputError(f"bearing: the speed range {lo:.0f}..{hi:.0f} rpm spans no DFT bins of "
                             f"{t}-sample windows at {fs:g} Hz", "use longer windows or give a fixed \"rpm\"")
        fixed, default = 0, int(math.floor((lo + hi) / 2 * to_bins * 65536 + 0.5))
    if default >= half << 16:
        raise InputError("bearing: the shaft speed is above the Nyquist frequency", "sample faster")
    lines = [65536] + [int(math.floor(p["orders"][k] * h * 65536 + 0.5))
                       for k in ORDER_KEYS for h in range(1, p["harmonics"] + 1)]
    tol = int(math.floor(p["tolerance"] * 65536 + 0.5))
    params = [kmin, kmax, fixed, default, tol, p["floor_bins"], len(lines), 1 + p["harmonics"], *lines]
    return params, k0, k1


# ---------------------------------------------------------------- the integer steps (mirrored in C)

def shaft_q16(power: np.ndarray, prm: list[int]) -> np.ndarray:
    """Shaft frequency in Q16 bins per row of a power spectrum [M, T/2 + 1] (step 1)."""
    m = power.shape[0]
    if prm[P_FIXED]:
        return np.full(m, prm[P_FIXED], np.int64)
    kmin, kmax = prm[P_KMIN], prm[P_KMAX]
    k = kmin + np.argmax(power[:, kmin:kmax + 1], axis=1)       # the first largest
    rows = np.arange(m)
    h = k >> 1                     # a range over 2:1 holds the 2x too: prefer a 1x within 9 dB of it
    sub = np.where(power[rows, h] >= power[rows, h + 1], h, h + 1)   # h + 1 <= k
    k = np.where((h >= kmin) & (power[rows, sub] >= power[rows, k] >> SUBHARMONIC_DB), sub, k)
    j = np.where(power[rows, k - 1] > power[rows, k + 1], k - 1, k)
    m0, m1 = fi.isqrt(power[rows, j]), fi.isqrt(power[rows, j + 1])
    total = m0 + m1
    return np.where(total > 0, (j << 16) + fi.ratio(m1, np.maximum(total, 1), 16), prm[P_DEFAULT])


def _bins(values: np.ndarray, idx: np.ndarray, ok: np.ndarray) -> np.ndarray:
    rows = np.arange(values.shape[0])[:, None]
    return np.where(ok, values[rows, np.clip(idx, 0, values.shape[1] - 1)], 0)


def peak_and_floor(epow: np.ndarray, pos: np.ndarray, prm: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Largest bin of [c - a, c + 1 + a] (c = floor(pos), a = tol * pos), and the lower median of
    floor_bins bins each side past a one-bin gap, bins limited to [1, T/2]; a floor with no bins is 1."""
    half = epow.shape[1] - 1
    c = pos >> 16
    a = fi.rshift_round(pos * prm[P_TOL], 32)
    span = int((2 * a + 2).max()) if a.size else 2
    idx = (c - a)[:, None] + np.arange(span)[None, :]
    ok = (idx <= (c + 1 + a)[:, None]) & (idx >= 1) & (idx <= half)
    peak = _bins(epow, idx, ok).max(axis=1)
    r = prm[P_FLOOR]
    ring = np.concatenate([(c - a - 1 - r)[:, None] + np.arange(r), (c + a + 3)[:, None] + np.arange(r)], axis=1)
    ok = (ring >= 1) & (ring <= half)
    vals = np.sort(np.where(ok, _bins(epow, ring, ok), np.iinfo(np.int64).max), axis=1)
    count = ok.sum(axis=1)
    floor = np.where(count > 0, vals[np.arange(len(c)), np.maximum(count - 1, 0) // 2], 1)
    return peak, floor


def envelope_kurtosis(env: np.ndarray, t: int) -> np.ndarray:
    """log2(T sum d^4 / (sum d^2)^2) in Q16 of the envelope magnitudes, cut to L bits so the sums fit (step 2)."""
    lim = (62 - 2 * int(fi.bitlen(np.int64(t)))) // 4
    sh = np.maximum(fi.bitlen(env.max(axis=1)) - lim, 0)[:, None]
    d = fi.rshift_round(env, sh)
    d2 = d * d
    s2, s4 = d2.sum(axis=1), (d2 * d2).sum(axis=1)
    k = fi.ratio(t * s4, np.maximum(s2 * s2, 1), 12)
    return np.where(s2 > 0, fi.log2_q16(k) - (12 << fi.LOG_FRAC), 0)


def raw_share(power: np.ndarray, total: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """log2 of (P[c] + P[c+1]) / total in Q16, c = floor(pos), bins past T/2 counting 0 (step 3)."""
    half = power.shape[1] - 1
    c = pos >> 16
    idx = np.stack([c, c + 1], axis=1)
    ok = (idx >= 1) & (idx <= half)
    got = _bins(power, idx, ok)
    return fi.log2_q16(fi.sat_add(got[:, 0], got[:, 1])) - fi.log2_q16(total)


def unbalance(power: np.ndarray, f: np.ndarray) -> np.ndarray:
    """log2(P[c] + P[c+1]) - 4 log2(f) in Q16 at the 1x (c = floor(f)): the 1x acceleration over
    the speed squared, so the unbalance m e itself (its force grows with w^2); the one value not
    level-invariant, as an unbalance is an absolute amount (step 3)."""
    half = power.shape[1] - 1
    c = f >> 16
    idx = np.stack([c, c + 1], axis=1)
    ok = (idx >= 1) & (idx <= half)
    got = _bins(power, idx, ok)
    return fi.log2_q16(fi.sat_add(got[:, 0], got[:, 1])) - 4 * fi.log2_q16(f)


def bearing_values(r: fi._Rows, lay: fi.Layout) -> np.ndarray:
    """[M, width] values (Q16 log2) of the rows of ``r``; ``lay.weights`` is ``table``'s parameter table."""
    prm = lay.weights
    sr, si = r.spectrum
    power = sr * sr + si * si
    f = shaft_q16(power, prm)
    er, ei, _, env = fi.envelope_spectrum(r, lay.bin_lo, lay.bin_hi)
    epow = er * er + ei * ei
    total = np.zeros(power.shape[0], np.int64)
    for k in range(1, power.shape[1]):
        total = fi.sat_add(total, power[:, k])
    cols = [envelope_kurtosis(env, r.t)]
    cols += [raw_share(power, total, fi.rshift_round(f * (h << 16), 16)) for h in range(1, RAW_HARMONICS + 1)]
    cols.append(unbalance(power, f))
    floor_sb = sb = np.ones(power.shape[0], np.int64)
    for i, mult in enumerate(prm[HEADER:HEADER + prm[P_LINES]]):
        pos = fi.rshift_round(f * mult, 16)
        peak, floor = peak_and_floor(epow, pos, prm)
        cols.append(fi.log2_q16(peak) - fi.log2_q16(floor))
        if i == prm[P_SIDEBAND]:
            lo, _ = peak_and_floor(epow, pos - f, prm)
            hi, _ = peak_and_floor(epow, pos + f, prm)
            floor_sb, sb = floor, fi.sat_add(lo, hi)
    cols.append(fi.log2_q16(sb) - fi.log2_q16(floor_sb) - (1 << fi.LOG_FRAC))
    return np.stack(cols, axis=1)
