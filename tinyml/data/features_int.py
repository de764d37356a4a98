"""Window features and per-window preprocessing in integer arithmetic (the default for new runs).

Why integers: the float64 path (``features.py``) costs about 10 M instructions per 256x3 window
on a Cortex-M4F (software doubles) and does not link on an FPU-less lx106. Here every step is
int16/int32/int64 arithmetic with rounding and saturation defined once in this module and
mirrored line by line in ``firmware_templates/common/tinyml_features_int.c``; host and device
therefore agree bit for bit on every intermediate value, not just after int8 quantization.

The pipeline, per window:
  1. samples: each float32 sample times 2**sample_shift[c] (exact: a power of two), rounded
     half away from zero, saturated to +-32767 (``to_samples``; done on the IEEE bits, so no
     float unit is needed; NaN becomes 0)
  2. features: int64 values in per-feature fixed point (``feature_values``); a column's real
     value is ``v * scale + offset`` (``column_maps``), close to the float64 feature
  3. quantization into the model's input: ``q = clamp(zp + rshift_round(sat32(v - off) * M, sh))``
     with (off, M, sh) folded from the standardisation constants and the model's input scale
     (``requant_params``)
``per_window`` (cnn1d) works on the same int16 samples (``per_window_int8``).

Conventions shared with C: ``rshift_round`` rounds half up (add half, arithmetic shift),
``div_round`` rounds half away from zero, ``ratio`` normalises before dividing so nothing
overflows int64, sums that could overflow saturate at ``CAP``. Windows are limited to
``MAX_WINDOW`` samples so every bound in the comments holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinyml.data import features_series as series
from tinyml.data.features import (
    FEATURES,
    envelope_layout,
    fft_layout,
    longest_streak,
    rolling_positions,
    validate_spec,
)
from tinyml.data.features_series import Stream
from tinyml.errors import InputError

SAMPLE_MAX = 32767            # samples saturate symmetrically: |x| <= 32767
MAX_WINDOW = 2048             # bounds below assume T <= 2^11
TWIDDLE_BITS = 30             # FFT twiddles in Q30
WEIGHT_BITS = 30              # least-squares weights are < 2^30
CAP = (1 << 62) - 1           # saturation bound of int64 sums and feature values
LOG_FRAC = 16                 # log2 values in Q16
HEADROOM = 1.0                # sample_shift: the largest power-of-two gain that keeps the training peak in range ...
# ... or this many times it for a data kind whose level wanders past the training peak: a temperature logged over
# weeks warms with the season (the training weeks' peak saturated afternoons a month later: flat, stuck-looking
# windows), and its sensors' 0.0625 deg C steps are far coarser than int16 at a quarter of the gain. Vibration
# keeps the whole range: quiet windows need the counts (docs/training.md).
KIND_HEADROOM = {"temperature": 4.0}
LN2 = math.log(2.0)
ARITHMETIC = "integer"        # preprocess.json "arithmetic" of runs using this module


# ---------------------------------------------------------------- rounding and saturation (mirrored in C)

def bitlen(u: np.ndarray) -> np.ndarray:
    """Number of significant bits of non-negative int64 values (0 for 0)."""
    u = np.asarray(u, np.int64).copy()
    n = np.zeros(u.shape, np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        big = u >= (np.int64(1) << s)
        u = np.where(big, u >> s, u)
        n += np.where(big, s, 0)
    return n + (u > 0)


def rshift_round(a: np.ndarray, sh) -> np.ndarray:
    """a / 2^sh rounded half up (sh >= 0): add half, arithmetic shift."""
    a = np.asarray(a, np.int64)
    sh = np.asarray(sh, np.int64)
    half = np.where(sh > 0, np.int64(1) << np.maximum(sh - 1, 0), 0)
    return (a + half) >> sh


def shift_sat(a: np.ndarray, sh) -> np.ndarray:
    """a * 2^sh for sh of either sign: rounded like ``rshift_round`` below, saturated at +-CAP above."""
    a = np.asarray(a, np.int64)
    sh = np.asarray(sh, np.int64)
    down = rshift_round(a, np.minimum(np.maximum(-sh, 0), 62))
    up_sh = np.minimum(np.maximum(sh, 0), 62)
    limit = np.int64(CAP) >> up_sh
    up = np.where(np.abs(a) > limit, np.sign(a) * CAP, a << up_sh)
    return np.where(sh >= 0, up, down)


def div_round(a: np.ndarray, b) -> np.ndarray:
    """a / b rounded half away from zero (b > 0)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    q = (np.abs(a) + b // 2) // b
    return np.where(a < 0, -q, q)


def ratio(num: np.ndarray, den: np.ndarray, frac: int) -> np.ndarray:
    """num * 2^frac / den rounded (num >= 0, den > 0), without overflow: num is shifted up as far
    as 62 bits allow and den down by the rest; at most CAP."""
    num = np.asarray(num, np.int64)
    den = np.asarray(den, np.int64)
    up = np.minimum(frac, 62 - bitlen(num))
    n = num << up
    d = den >> (frac - up)
    safe = np.maximum(d, 1)
    q = (n + safe // 2) // safe
    return np.where(d == 0, np.where(num == 0, 0, CAP), np.minimum(q, CAP))


def sat_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b for 0 <= a, b <= CAP, saturated at CAP."""
    return np.minimum(np.asarray(a, np.int64) + np.asarray(b, np.int64), CAP)


def isqrt32(n: np.ndarray) -> np.ndarray:
    """floor(sqrt(n)) for 0 <= n < 2^32, digit by digit (16 steps)."""
    n = np.asarray(n, np.int64).copy()
    res = np.zeros(n.shape, np.int64)
    bit = np.int64(1) << 30
    for _ in range(16):
        take = n >= res + bit
        n = np.where(take, n - (res + bit), n)
        res = np.where(take, (res >> 1) + bit, res >> 1)
        bit >>= 2
    return res


def isqrt(n: np.ndarray) -> np.ndarray:
    """sqrt(n) for 0 <= n < 2^63 to 16 significant bits: n is cut to 32 bits by an even shift."""
    n = np.asarray(n, np.int64)
    sh = np.maximum(bitlen(n) - 32, 0)
    sh = sh + (sh & 1)
    return isqrt32(n >> sh) << (sh >> 1)


def log2_q16(u: np.ndarray) -> np.ndarray:
    """log2(max(u, 1)) in Q16 for 0 <= u < 2^63: the exponent, then 16 fraction bits by squaring."""
    u = np.maximum(np.asarray(u, np.int64), 1)
    e = bitlen(u) - 1
    m = np.where(e >= 31, u >> np.maximum(e - 31, 0), u << np.maximum(31 - e, 0)).astype(np.uint64)
    frac = np.zeros(u.shape, np.int64)
    for i in range(LOG_FRAC - 1, -1, -1):
        m = (m * m) >> np.uint64(31)
        big = m >= np.uint64(1 << 32)
        m = np.where(big, m >> np.uint64(1), m)
        frac |= np.where(big, np.int64(1) << i, 0)
    return (e << LOG_FRAC) | frac


def sat8(v: np.ndarray) -> np.ndarray:
    return np.clip(v, -128, 127).astype(np.int8)


def requant(v: np.ndarray, off: np.ndarray, mult: np.ndarray, shift: np.ndarray, zp: int) -> np.ndarray:
    """int8 model input from int64 values: clamp(zp + rshift_round(sat32(v - off) * M, sh))."""
    d = np.clip(np.asarray(v, np.int64) - np.asarray(off, np.int64), -(1 << 31), (1 << 31) - 1)
    r = np.clip(rshift_round(d * np.asarray(mult, np.int64), shift), -256, 256)
    return sat8(r + zp)


def requant_params(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, sh) with M * 2^-sh ~= real > 0, M < 2^31, 0 <= sh <= 62; a factor too large for that
    saturates every non-zero difference, one too small gives 0."""
    mult, shift = [], []
    for r in np.asarray(real, np.float64).ravel():
        if not (math.isfinite(r) and r > 0):
            raise InputError(f"bad quantization multiplier {r}", "re-run `tinyml train` and `tinyml quantize`")
        m, e = math.frexp(r)              # r = m * 2^e, 0.5 <= m < 1
        mq = int(math.floor(m * (1 << 31) + 0.5))
        if mq == 1 << 31:
            mq, e = 1 << 30, e + 1
        sh = 31 - e
        if sh < 0:
            mq, sh = (1 << 31) - 1, 0
        elif sh > 62:
            mq, sh = 0, 0
        mult.append(mq)
        shift.append(sh)
    return np.asarray(mult, np.int64), np.asarray(shift, np.int64)


# ---------------------------------------------------------------- samples

def sample_shifts(x_train: np.ndarray, *, headroom: float = HEADROOM) -> list[int]:
    """Per channel, the largest power-of-two gain that keeps ``headroom`` times the training maximum in range."""
    peak = np.abs(np.asarray(x_train, np.float64)).max(axis=(0, 1)) if np.size(x_train) else np.zeros(0)
    out = []
    for p in np.atleast_1d(peak):
        if not (math.isfinite(p) and p > 0):
            out.append(0)
            continue
        out.append(int(np.clip(math.floor(math.log2(SAMPLE_MAX / (headroom * p))), -100, 100)))
    return out


def to_samples(x: np.ndarray, shifts: list[int]) -> np.ndarray:
    """float32 windows [N, T, C] -> int64 samples round_half_away(x * 2^shift[c]) in +-SAMPLE_MAX.

    Computed on the IEEE-754 bits (value = mantissa * 2^exponent), so the C twin needs no FPU.
    """
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.int64)
    neg = (bits >> 31) & 1
    ex = (bits >> 23) & 0xFF
    man = np.where(ex == 0, bits & 0x7FFFFF, (bits & 0x7FFFFF) | 0x800000)
    e = np.where(ex == 0, 1, ex) - 150 + np.asarray(shifts, np.int64)
    down = np.minimum(np.maximum(-e, 0), 40)
    small = np.where(down > 0, (man + ((np.int64(1) << down) >> 1)) >> down, man)
    mag = np.where(e >= 0, np.where((e > 15) | (man > (SAMPLE_MAX >> np.clip(e, 0, 15))), SAMPLE_MAX,
                                    man << np.clip(e, 0, 15)), np.minimum(small, SAMPLE_MAX))
    mag = np.where(ex == 0xFF, np.where((bits & 0x7FFFFF) != 0, 0, SAMPLE_MAX), mag)
    return np.where(neg == 1, -mag, mag)


# ---------------------------------------------------------------- the FFT (x: int64 rows [M, T])

def twiddles_q30(t: int) -> tuple[list[int], list[int]]:
    """round(cos, sin(2 pi m / T) * 2^30) for m < T/2: the C config embeds these integers."""
    half = max(1, t // 2)
    c = [int(math.floor(math.cos(2.0 * math.pi * m / t) * (1 << TWIDDLE_BITS) + 0.5)) for m in range(half)]
    s = [int(math.floor(math.sin(2.0 * math.pi * m / t) * (1 << TWIDDLE_BITS) + 0.5)) for m in range(half)]
    return c, s


def bit_reversal(t: int) -> list[int]:
    """The radix-2 input permutation: index i holds input bit-reversed(i) (identity unless T is a power of two)."""
    if t & (t - 1):
        return list(range(t))
    bits = t.bit_length() - 1
    return [int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(t)]


def fft_q(re: np.ndarray, im: np.ndarray, *, inverse: bool = False, table: int | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled radix-2 FFT of int rows [M, N] with Q30 twiddles; t = rshift_round(b * w, 30).
    ``table``: the window T whose twiddle and bit-reversal tables serve (N = T or T/2).

    The caller keeps sum(|re| + |im|) below 2^30, which bounds every intermediate below 2^31.
    """
    m, t = re.shape
    big = table or t
    cos_q, sin_q = (np.asarray(v, np.int64)[::big // t] for v in twiddles_q30(big))
    rev = np.asarray(bit_reversal(big), np.int64)[:t] >> (big // t - 1)
    re, im = np.ascontiguousarray(re.T[rev]), np.ascontiguousarray(im.T[rev])
    length = 2
    while length <= t:
        half, step = length // 2, t // length
        wr = cos_q[np.arange(half) * step][:, None]
        wi = (sin_q if inverse else -sin_q)[np.arange(half) * step][:, None]
        vr, vi = re.reshape(t // length, length, m), im.reshape(t // length, length, m)
        br, bi = vr[:, half:], vi[:, half:]
        tr = rshift_round(br * wr - bi * wi, TWIDDLE_BITS)
        ti = rshift_round(br * wi + bi * wr, TWIDDLE_BITS)
        ar, ai = vr[:, :half].copy(), vi[:, :half].copy()
        vr[:, half:] = ar - tr
        vi[:, half:] = ai - ti
        vr[:, :half] = ar + tr
        vi[:, :half] = ai + ti
        length *= 2
    return re.T, im.T


def rfft_q(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Twice the spectrum of real rows [M, T], bins 0..T/2 ([M, T/2 + 1] each), at half the cost:
    the T/2-point FFT of z = x[even] + i x[odd], then 2X_k = A - i W^k B with A = Z_k + conj Z_{T/2-k},
    B = Z_k - conj Z_{T/2-k}, W = e^(-2 pi i / T), the product rounded like a butterfly's.
    The caller keeps sum(|x|) below 2^29, so |2X| stays below 2^30."""
    m, t = x.shape
    h = t // 2
    zr, zi = fft_q(x[:, 0::2], x[:, 1::2], table=t)
    k = np.arange(h + 1)
    ar = zr[:, k % h] + zr[:, (h - k) % h]
    ai = zi[:, k % h] - zi[:, (h - k) % h]
    br = zr[:, k % h] - zr[:, (h - k) % h]
    bi = zi[:, k % h] + zi[:, (h - k) % h]
    cos_q, sin_q = twiddles_q30(t)
    wr = np.asarray(cos_q + [-(1 << TWIDDLE_BITS)], np.int64)[k]
    wi = -np.asarray(sin_q + [0], np.int64)[k]
    tr = rshift_round(wr * bi + wi * br, TWIDDLE_BITS)
    ti = rshift_round(wr * br - wi * bi, TWIDDLE_BITS)
    return ar + tr, ai - ti


def block_shift(total: np.ndarray, bits: int = 30) -> np.ndarray:
    """Per row, the shift that brings a sum of magnitudes into [2^(bits-1), 2^bits) (0 for an all-zero row)."""
    total = np.asarray(total, np.int64)
    return np.where(total > 0, bits - bitlen(total), 0)


def band_powers(re: np.ndarray, im: np.ndarray, edges: list[int]) -> np.ndarray:
    """Saturating sum of re^2 + im^2 over bins [edges[b], edges[b+1])."""
    power = re * re + im * im
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        e = np.zeros(re.shape[0], np.int64)
        for k in range(a, b):
            e = sat_add(e, power[:, k])
        out.append(e)
    return np.stack(out, axis=1)


# ---------------------------------------------------------------- the features

@dataclass(frozen=True)
class Layout:
    """Everything about a spec entry that depends only on T and fs: decided once, baked into C."""

    edges: list[int] | None = None        # band bin edges or rolling-mean end positions
    bin_lo: int = 0
    bin_hi: int = 0
    weights: list[int] | None = None      # least-squares weights (rate_of_change, curvature); bearing: its parameters
    wshift: int = 0                        # their output shift


def lsq_weights(t: int, kind: str) -> tuple[list[int], int]:
    """Integer least-squares weights: rate_of_change gives the slope per sample in Q16, curvature
    the quadratic coefficient (time scaled to [-1, 1]) in Q8; (weights, shift to apply to the sum)."""
    half = (t - 1) / 2.0
    c = [n - half for n in range(t)]
    if kind == "rate_of_change":
        denom = sum(v * v for v in c)
        real = [v / denom for v in c]
        out_frac = 16
    else:
        mean_sq = sum(v * v for v in c) / t
        q = [v * v - mean_sq for v in c]
        denom = sum(v * v for v in q)
        real = [0.0] * t if denom == 0 else [v / denom * half * half for v in q]
        out_frac = 8
    peak = max(abs(v) for v in real)
    bits = WEIGHT_BITS - 1 if peak == 0 else WEIGHT_BITS - 1 - math.ceil(math.log2(peak))
    bits = max(out_frac, min(bits, 62))
    return [int(math.floor(v * 2.0 ** bits + 0.5)) for v in real], bits - out_frac


def layout(entry: dict, t: int, fs: float) -> Layout:
    name = entry["name"]
    if name == "fft_bands":
        lo, hi, ranges = fft_layout(entry, t, fs)
        return Layout([a for a, _ in ranges] + [ranges[-1][1]], lo, hi)
    if name == "envelope_bands":
        k0, k1, _, ranges = envelope_layout(entry, t, fs)
        return Layout([a for a, _ in ranges] + [ranges[-1][1]], k0, k1)
    if name == "rolling_mean":
        return Layout(rolling_positions(entry, t))
    if name in ("rate_of_change", "curvature"):
        w, sh = lsq_weights(t, name)
        return Layout(weights=w, wshift=sh)
    if name == "bearing":
        from tinyml.data.features_bearing import table

        params, k0, k1 = table(entry, t, fs)
        return Layout(None, k0, k1, weights=params)
    return Layout()


class _Rows:
    """One batch of channel rows [M, T] with the sums and spectra several features share."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.t = x.shape[1]
        self.log2t = self.t.bit_length() - 1
        self._cache: dict[str, object] = {}

    def get(self, key: str, make: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def s1(self) -> np.ndarray:
        return self.get("s1", lambda: self.x.sum(axis=1))

    @property
    def s2(self) -> np.ndarray:
        return self.get("s2", lambda: (self.x * self.x).sum(axis=1))

    @property
    def mean_q8(self) -> np.ndarray:
        return self.get("mean_q8", lambda: div_round(self.s1 << 8, self.t))

    @property
    def rms_q8(self) -> np.ndarray:
        return self.get("rms_q8", lambda: isqrt(div_round(self.s2 << 16, self.t)))

    @property
    def moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sums of d^2, d^3, d^4 with d = 16 x - 16 mean, block-scaled to L bits so T * d^4 sums fit."""
        def make():
            d = (self.x << 4) - div_round(self.s1 << 4, self.t)[:, None]
            lim = (62 - 2 * int(bitlen(np.int64(self.t)))) // 4
            sh = np.maximum(bitlen(np.abs(d).max(axis=1)) - lim, 0)[:, None]
            d = rshift_round(d, sh)
            d2 = d * d
            return d2.sum(axis=1), (d2 * d).sum(axis=1), (d2 * d2).sum(axis=1)
        return self.get("moments", make)

    @property
    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """Bins 0..T/2 of the spectrum: rfft_q of x * 2^(14 - log2 T), so |X| < 2^30 and X / T = X_int / 2^15."""
        return self.get("spectrum", lambda: rfft_q(self.x << (14 - self.log2t)))


def _rms(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    return r.rms_q8[:, None]


def _peak(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    return np.abs(r.x).max(axis=1)[:, None]


def _crest(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    rms = r.rms_q8
    peak = np.abs(r.x).max(axis=1)
    return np.where(rms > 0, ratio(peak << 8, np.maximum(rms, 1), 12), 0)[:, None]


def _kurtosis(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    m2, _, m4 = r.moments
    return np.where(m2 > 0, ratio(r.t * m4, np.maximum(m2 * m2, 1), 12) - 3 * 4096, 0)[:, None]


def _skewness(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    m2, m3, _ = r.moments
    den = np.maximum(m2, 1)
    mag = rshift_round(ratio(np.abs(m3), den, 16) * isqrt(ratio(np.full_like(m2, r.t), den, 48)), 28)
    return np.where(m2 > 0, np.where(m3 < 0, -mag, mag), 0)[:, None]


def _mean(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    return r.mean_q8[:, None]


def _std(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    a = r.t * r.s2 - r.s1 * r.s1
    return div_round(isqrt(a) << 8, r.t)[:, None]


def _min(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    return r.x.min(axis=1)[:, None]


def _max(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    return r.x.max(axis=1)[:, None]


def _band_out(energy: np.ndarray, exponent: np.ndarray, use_log: bool) -> np.ndarray:
    """energy * 2^exponent (counts^2) as a Q16 log2, or in Q30."""
    exponent = np.asarray(exponent, np.int64)[:, None]
    if use_log:
        return log2_q16(energy) + (exponent << LOG_FRAC)
    return shift_sat(energy, exponent + 30)


def _fft_bands(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    re, im = r.spectrum
    return _band_out(band_powers(re, im, lay.edges), np.full(r.x.shape[0], -30), e["log"])


def envelope_spectrum(r: _Rows, bin_lo: int, bin_hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The envelope of the band of bins [bin_lo, bin_hi] and its spectrum: (re, im of twice the
    spectrum of the de-meaned envelope, bins 0..T/2; the exponent of its power in counts^2; the
    envelope magnitudes [M, T]). Block floating point: both FFT inputs are scaled to their bound."""
    t = r.t
    sr, si = r.spectrum
    re, im = np.zeros_like(r.x), np.zeros_like(r.x)
    re[:, bin_lo:bin_hi + 1] = sr[:, bin_lo:bin_hi + 1]
    im[:, bin_lo:bin_hi + 1] = si[:, bin_lo:bin_hi + 1]
    e1 = block_shift((np.abs(re) + np.abs(im)).sum(axis=1))[:, None]
    zr, zi = fft_q(shift_sat(re, e1), shift_sat(im, e1), inverse=True)
    env = isqrt(zr * zr + zi * zi)
    d = env - div_round(env.sum(axis=1), t)[:, None]
    e2 = block_shift(np.abs(d).sum(axis=1), 29)[:, None]   # rfft_q input: sum below 2^29
    er, ei = rfft_q(shift_sat(d, e2))                       # twice the spectrum: 4x the power
    return er, ei, -2 * (14 + e1[:, 0] + e2[:, 0]) - 2 * r.log2t - 2, env


def _envelope_bands(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    er, ei, exponent, _ = envelope_spectrum(r, lay.bin_lo, lay.bin_hi)
    return _band_out(band_powers(er, ei, lay.edges), exponent, e["log"])


def _bearing(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    from tinyml.data.features_bearing import bearing_values  # it builds on this module

    return bearing_values(r, lay)


def _weighted(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    acc = (r.x * np.asarray(lay.weights, np.int64)).sum(axis=1)
    return rshift_round(acc, lay.wshift)[:, None]


def _rolling_mean(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    w = e["width"]
    cols = [div_round(r.x[:, end - w + 1:end + 1].sum(axis=1) << 8, w) - (r.mean_q8 if e["relative"] else 0)
            for end in lay.edges]
    return np.stack(cols, axis=1)


def _diff_max(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    return np.abs(r.x[:, 1:] - r.x[:, :-1]).max(axis=1)[:, None]


def _flat_fraction(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    same = np.count_nonzero(r.x[:, 1:] == r.x[:, :-1], axis=1).astype(np.int64)
    return ratio(same, np.full_like(same, r.t - 1), 16)[:, None]


def _flat_run(r: _Rows, e: dict, lay: Layout) -> np.ndarray:
    best = longest_streak(r.x[:, 1:] == r.x[:, :-1])
    return ratio(best, np.full_like(best, r.t - 1), 16)[:, None]


# name -> (function, Q fraction bits, sample-unit power, log): real = v * 2^-frac * 2^(-s*power) (+ log offset)
INT_FEATURES: dict[str, tuple[Callable[[_Rows, dict, Layout], np.ndarray], int, int, bool]] = {
    "rms": (_rms, 8, 1, False), "peak": (_peak, 0, 1, False), "crest": (_crest, 12, 0, False),
    "kurtosis": (_kurtosis, 12, 0, False), "skewness": (_skewness, 12, 0, False),
    "mean": (_mean, 8, 1, False), "std": (_std, 8, 1, False), "min": (_min, 0, 1, False),
    "max": (_max, 0, 1, False), "fft_bands": (_fft_bands, 30, 2, True),
    "envelope_bands": (_envelope_bands, 30, 2, True), "rate_of_change": (_weighted, 16, 1, False),
    "rolling_mean": (_rolling_mean, 8, 1, False), "diff_max": (_diff_max, 0, 1, False),
    "flat_fraction": (_flat_fraction, 16, 0, False), "flat_run": (_flat_run, 16, 0, False), "curvature": (_weighted, 8, 1, False),
    "bearing": (_bearing, LOG_FRAC, 0, False),
    "daily_cycle": (None, 8, 1, False),  # features_series.py, Q8 like mean
}


def check_window(t: int, spec: list[dict] | None = None) -> None:
    if not 4 <= t <= MAX_WINDOW:
        raise InputError(f"integer features and per_window need windows of 4..{MAX_WINDOW} samples, got {t}",
                         f"use --window up to {MAX_WINDOW}")
    if spec is not None and t & (t - 1) and any(e["name"] in ("fft_bands", "envelope_bands", "bearing") for e in spec):
        raise InputError(f"band features need a power-of-two window (the FFT is radix-2), got {t} samples",
                         "use --window 64, 128, 256, 512 ... or drop this feature")


def feature_values(q: np.ndarray, fs: float, spec: list[dict], stream: Stream | None = None) -> np.ndarray:
    """int64 features [N, F] of int samples [N, T, C] (columns as ``features.feature_names``); ``stream``
    places the windows in time for features with state across windows (``features_series.py``)."""
    full = validate_spec(spec)
    n, t, c = q.shape
    check_window(t, full)
    rows = _Rows(np.asarray(q, np.int64).transpose(0, 2, 1).reshape(n * c, t))
    cols = []
    for entry in full:
        if entry["name"] == series.NAME:
            cols.append(series.stream_features(q, stream, entry))
            continue
        fn = INT_FEATURES[entry["name"]][0]
        vals = np.clip(fn(rows, entry, layout(entry, t, fs)), -CAP, CAP)
        cols.append(vals.reshape(n, c * vals.shape[1]))
    return np.concatenate(cols, axis=1)


def column_maps(spec: list[dict], shifts: list[int], fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Per output column (scale, offset): the real feature is v * scale + offset (logs: natural log)."""
    scale, offset = [], []
    for entry in validate_spec(spec):
        _, frac, power, is_log = INT_FEATURES[entry["name"]]
        width = FEATURES[entry["name"]].width(entry)
        for s in shifts:
            if is_log and entry["log"]:
                sc, off = LN2 / (1 << LOG_FRAC), -2.0 * s * LN2
            else:
                sc, off = 2.0 ** (-frac - s * power), 0.0
            if entry["name"] == "rate_of_change":
                sc *= fs
            scale += [sc] * width
            offset += [off] * width
    return np.asarray(scale, np.float64), np.asarray(offset, np.float64)


def real_features(q: np.ndarray, fs: float, spec: list[dict], shifts: list[int],
                  stream: Stream | None = None) -> np.ndarray:
    """The integer features as float64 in the float path's units (what training standardises)."""
    scale, offset = column_maps(spec, shifts, fs)
    return feature_values(q, fs, spec, stream).astype(np.float64) * scale + offset


def feature_requant(spec: list[dict], shifts: list[int], fs: float, mean: np.ndarray, std: np.ndarray,
                    in_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(off, M, sh) per column so that requant(v) = round(((v * scale + offset) - mean) / std / in_scale) + zp."""
    scale, offset = column_maps(spec, shifts, fs)
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    off = np.clip(np.floor((mean - offset) / scale + 0.5), -CAP, CAP).astype(np.int64)
    mult, shift = requant_params(scale / (std * in_scale))
    return off, mult, shift


def features_int8(x: np.ndarray, fs: float, spec: list[dict], shifts: list[int], mean: np.ndarray,
                  std: np.ndarray, in_scale: float, zp: int, stream: Stream | None = None) -> np.ndarray:
    """The model's int8 inputs [N, F] from float32 windows, exactly as the device computes them."""
    v = feature_values(to_samples(x, shifts), fs, spec, stream)
    return requant(v, *feature_requant(spec, shifts, fs, mean, std, in_scale), zp)


# ---------------------------------------------------------------- per_window (cnn1d)

def _window_moments(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window and channel: S1, and sqrt(T * S2 - S1^2) = T * std floored at 1 ([N, C] each)."""
    q = np.asarray(q, np.int64)
    t = q.shape[1]
    s1 = q.sum(axis=1)
    a = t * (q * q).sum(axis=1) - s1 * s1
    return s1, np.maximum(isqrt(a), 1), a


def level_values(q: np.ndarray) -> np.ndarray:
    """log2(T * std) in Q16 per window and channel [N, C] (std floored at 1/T counts)."""
    return log2_q16(_window_moments(q)[1])


def levels_real(q: np.ndarray, shifts: list[int]) -> np.ndarray:
    """Natural log of the std in signal units [N, C] (what the level channel standardises)."""
    t = q.shape[1]
    return (level_values(q) / float(1 << LOG_FRAC) - math.log2(t) - np.asarray(shifts, np.float64)) * LN2


def per_window_real(q: np.ndarray, shifts: list[int], level_mean: np.ndarray, level_std: np.ndarray) -> np.ndarray:
    """Float model inputs [N, T, 2C]: shape (x - mean) / std and the standardised log level."""
    t = q.shape[1]
    s1, sa, _ = _window_moments(q)
    shape = (t * np.asarray(q, np.int64) - s1[:, None, :]) / sa[:, None, :].astype(np.float64)
    level = (levels_real(q, shifts) - np.asarray(level_mean, np.float64)) / np.asarray(level_std, np.float64)
    return np.concatenate([shape, np.broadcast_to(level[:, None, :], shape.shape)], axis=2).astype(np.float32)


def per_window_params(t: int, shifts: list[int], level_mean: np.ndarray, level_std: np.ndarray,
                      in_scale: float) -> dict:
    """Constants of ``per_window_int8``: the shape gain G = 2^K / in_scale and the level requant."""
    if not (math.isfinite(in_scale) and 2.0**-20 <= in_scale <= 2.0**20):
        raise InputError(f"model input scale {in_scale} is outside what per_window supports (2^-20..2^20)",
                         "re-run `tinyml quantize` on the run")
    k = 20 - math.floor(math.log2(1.0 / in_scale))
    gain = int(math.floor(2.0 ** k / in_scale + 0.5))
    lm, ls = np.asarray(level_mean, np.float64), np.asarray(level_std, np.float64)
    scale = LN2 / (1 << LOG_FRAC)
    offset = -(math.log2(t) + np.asarray(shifts, np.float64)) * LN2
    off = np.floor((lm - offset) / scale + 0.5).astype(np.int64)
    mult, shift = requant_params(scale / (ls * in_scale))
    return {"gain": gain, "gain_shift": k + 30, "level_off": off, "level_mult": mult, "level_shift": shift}


def shape_multiplier(sa: np.ndarray, gain: int, gain_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """(m < 2^31, L) with m * 2^L ~= 2^32 / (input scale * sa): see ``per_window_int8``."""
    r = ratio(np.full_like(sa, gain), sa, 30)                           # 2^gain_shift / (scale * sa), < 2^52
    m = shift_sat(r, 32 - gain_shift)
    lift = np.maximum(bitlen(m) - 31, 0)
    return m >> lift, lift


def per_window_int8(x: np.ndarray, shifts: list[int], level_mean: np.ndarray, level_std: np.ndarray,
                    in_scale: float, zp: int) -> np.ndarray:
    """int8 model inputs [N, T, 2C] from float32 windows, exactly as the device computes them.

    Shape: per window and channel m = 2^32 / (input scale * T std) in fixed point
    (ratio(G, T std, 30) moved to 2^32), cut to 31 bits by L; then per sample one 32x32-bit
    multiply: q = clamp(zp + ((T x - S1) * 2^L * m + 2^31) >> 32). |T x - S1| / (T std) <= sqrt(T)
    keeps (T x - S1) * 2^L below 2^28.
    """
    q = to_samples(x, shifts)
    n, t, c = q.shape
    check_window(t)
    p = per_window_params(t, shifts, level_mean, level_std, in_scale)
    s1, sa, _ = _window_moments(q)
    m, lift = shape_multiplier(sa, p["gain"], p["gain_shift"])          # [N, C]
    num = (t * q - s1[:, None, :]) << lift[:, None, :]
    shape = sat8(np.clip((num * m[:, None, :] + (1 << 31)) >> 32, -256, 256) + zp)
    level = requant(log2_q16(sa), p["level_off"], p["level_mult"], p["level_shift"], zp)  # [N, C]
    return np.concatenate([shape, np.broadcast_to(level[:, None, :], shape.shape)], axis=2)
