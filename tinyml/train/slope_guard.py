"""The slope guard of a temperature anomaly model: the thermal lag's drive slope per time of day, accumulated.

Why: at a shift's switching times normal windows lie as far from the daily profile as a slow drift gets,
so no bound on the level residual finds drifts and runaways without false alarms. The physics separates
them: through a first-order thermal lag (time constant tau) a window that holds no switch reads
a + b t + c exp(-t / tau), a load switch at s inside it adds d (1 - exp(-(t - s) / tau)), and the drive's
slope b is the ambient's, the same at a time of day every day (weather adds a little), while a drift or a
runaway adds its own slope to it. So per window the slope b of the better of the two fits (the switch
model, scanned over the window's inner positions, only when it explains much more: F > ``f_min``), judged
against its median and spread at that slot of the day on the training windows, z = (b - median) / spread
(the median the highest of the slots within ``slack_h`` hours either way: a logger's clock set back or
forward by that much shifts every slot, and where the usual slope changes fast, as in the afternoon, that
alone looked like a drift), accumulated by a one-sided CUSUM S = max(0, S + z - k); a window with S > h is
anomalous (excess (S - h) / h, folded into the score as the input guard's, ``tinyml.train.guard.fold``).
tau is fitted once on the training windows with the largest range (the transients after switches), on a
grid, in float64 (``fits``, training only).

In integers, one definition for every consumer (``detect``, ``validate``/``replay``'s host labels, the
emulator) and mirrored line by line by firmware_templates/common/tinyml_slope.c (``Tables``, baked into
``tinyml_slope_config.h`` by ``tinyml.data.slope_c``): each window's int16 samples q as the device holds
them (the run's integer features' ``sample_shift``), taken relative to its first sample (x = q - q[0]: a
constant changes no fit), projected on orthonormal rows in Q30: RSS_plain = x.x - sum_j (q_j.x)^2 over the
plain fit's basis, and for each switch position s the switch column orthogonalised to it, q4_s, so
RSS_s = RSS_plain - (q4_s.x)^2; the best switch is the first argmax |q4_s.x| and it is taken when
(q4.x)^2 (T - 5) > f_min RSS_best, compared by cross-multiplication after shifting both sides to 23 bits.
The slope is the chosen fit's weight row (Q``slope_bits``) dotted with x; z = (b - med[slot]) * inv[slot]
>> sh[slot] in Q16 with the per-slot constants from model.json's floats; S in Q16, saturated at 2^47.

The CUSUM restarts with the series state: at a new stream (boot, SERIES reset, the first TIME: as
``tinyml_series_reset`` and the Python stream starts) and at a window whose slot of the day is not the one
after the previous window's (a gap the device sees from its clock; ``restarts``). ``detect`` uses the same
rule, each window's slot from its start time as ``features_series.stream_slots`` computes it.

``train --slope-guard`` records the floats in model.json ``slope_guard`` (the integer tables are derived
from them and the run's ``sample_shift`` wherever they are needed, so nothing can go stale between them);
it needs integer ``daily_cycle`` features (the device's raw window and its slot of the day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tinyml.data.features_int import bitlen, rshift_round
from tinyml.data.features_series import slots_for, stream_slots
from tinyml.errors import InputError

if TYPE_CHECKING:
    from tinyml.preprocess import Preprocess

TAU_GRID_H = np.arange(10, 181, 5) / 60.0
POOL = 2  # the spread of a slot pools the slopes of the slots within this many either side
RETRAIN = "re-run `tinyml train` with --slope-guard"
WINDOW_MAX = 256       # the bounds below hold for windows of at most 2^8 samples
BASIS_BITS = 30        # orthonormal rows (entries <= 1) in Q30
PROJ_BITS = 10         # projections q.x in Q10 of a sample step, their squares Q20
Z_BITS = 16            # z, k, h and S in Q16
F_BITS = 8             # f_min in Q8
F_KEEP = 23            # both sides of the F comparison shifted to this many bits before multiplying
S_MAX = 1 << 47        # the CUSUM saturates here (2^31 z)
Z_MAX = 1 << 40        # one window's z saturates here
D_MAX = 1 << 31        # b - med, shifted, saturates here before its multiply by inv (< 2^31)
MED_MAX = 1 << 56


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What ``train --slope-guard`` takes (the defaults: chosen on seeds 0-2 and 15-20, docs/benchmarks.md)."""
    k: float = 0.75       # z per window the CUSUM forgets
    h: float = 8.0        # the CUSUM's alarm level
    f_min: float = 100.0  # the F statistic a switch fit needs to replace the plain fit
    slack_h: float = 1.0  # hours either way the clock may be off: z against the lowest median within them

    def check(self) -> None:
        for name, value, low in (("slope-k", self.k, 0.0), ("slope-f-min", self.f_min, 0.0),
                                 ("slope-slack", self.slack_h, 0.0)):
            if not (math.isfinite(value) and value >= low):
                raise InputError(f"--{name} {value:g} is out of range", f"give a number >= {low:g}")
        if not (math.isfinite(self.h) and self.h > 0):
            raise InputError(f"--slope-h {self.h:g} is out of range", "give the CUSUM's alarm level, above 0, e.g. 8")


def _design(t: np.ndarray, tau: float, switch: float | None = None) -> np.ndarray:
    cols = [np.ones_like(t), t, np.exp(-t / tau)]
    if switch is not None:
        cols.append(np.where(t > switch, 1 - np.exp(-(t - switch) / tau), 0.0))
    return np.stack(cols, axis=1)


def _fit(x: np.ndarray, t: np.ndarray, tau: float, switch: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Slope b and residual sum of squares per window [N, T] of the model with or without a switch at ``switch``."""
    a = _design(t, tau, switch)
    coef = x @ np.linalg.pinv(a).T
    return coef[:, 1], ((x - coef @ a.T) ** 2).sum(axis=1)


def fits(x: np.ndarray, t: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per window: slope and residual SS without a switch, then of the best switch position."""
    b, ss = _fit(x, t, tau)
    best_b, best_ss = b.copy(), ss.copy()
    for s in t[1:-2]:
        b2, ss2 = _fit(x, t, tau, s)
        better = ss2 < best_ss
        best_b[better], best_ss[better] = b2[better], ss2[better]
    return b, ss, best_b, best_ss


def fit_tau(x: np.ndarray, t: np.ndarray) -> float:
    """The lag's time constant (hours) that best explains the 10 % of windows with the largest range."""
    r = np.ptp(x, axis=1)
    sel = x[r > np.percentile(r, 90)]
    return float(TAU_GRID_H[int(np.argmin([fits(sel, t, tau)[3].sum() for tau in TAU_GRID_H]))])


def _gram_schmidt(cols: list[list[float]]) -> tuple[list[list[float]], list[list[float]]]:
    """Orthonormal rows Q and upper-triangular R (A = Q^T R, columns ``cols``), in float64 with correctly
    rounded sums (``math.fsum``), so that the integer tables are the same on every machine."""
    q: list[list[float]] = []
    r = [[0.0] * len(cols) for _ in cols]
    for j, col in enumerate(cols):
        v = list(col)
        for i, qi in enumerate(q):
            r[i][j] = math.fsum(a * b for a, b in zip(qi, col, strict=True))
            v = [a - r[i][j] * b for a, b in zip(v, qi, strict=True)]
        r[j][j] = math.sqrt(math.fsum(a * a for a in v))
        q.append([a / r[j][j] for a in v])
    return q, r


def _slope_row(q: list[list[float]], r: list[list[float]]) -> list[float]:
    """The least-squares slope (column 1's coefficient) as a row: e_1^T R^-1 Q."""
    y = [0.0] * len(q)
    for j in range(len(q)):
        y[j] = ((1.0 if j == 1 else 0.0) - math.fsum(y[i] * r[i][j] for i in range(j))) / r[j][j]
    return [math.fsum(y[j] * q[j][n] for j in range(len(q))) for n in range(len(q[0]))]


def _reciprocal(spread: float) -> tuple[int, int]:
    """(inv, sh) with inv * 2^-sh = 2^16 / spread, 2^30 <= inv < 2^31 and 0 <= sh <= 93 (a spread beyond
    either end, which no real slope has, saturates: z then reads smaller)."""
    m, e = math.frexp(2.0**Z_BITS / spread)  # m in [0.5, 1)
    inv, sh = math.floor(m * 2**31 + 0.5), 31 - e
    if inv == 2**31:
        inv, sh = 2**30, sh - 1
    if sh < 0:
        return 2**31 - 1, 0
    return (inv, sh) if sh <= 93 else (2**30, 93)


def _fixed(values: list[float], bits: int) -> np.ndarray:
    return np.array([math.floor(math.ldexp(v, bits) + 0.5) for v in values], np.int64)


@dataclass(frozen=True)
class Tables:
    """The slope guard in integers (module docstring): every constant ``scores`` and tinyml_slope.c use."""
    window: int
    slots: int
    basis: np.ndarray          # [3, T] Q30: orthonormal rows of the plain fit (1, t, exp(-t / tau))
    switch: np.ndarray         # [T - 3, T] Q30: the switch column at t[1..T-3], orthogonalised, unit length
    slope: np.ndarray          # [T] the plain fit's slope row: counts per hour per count, Q slope_bits
    switch_slope: np.ndarray   # [T - 3, T] the slope row of the fit with the switch there
    slope_bits: int
    med: np.ndarray            # [slots] the usual slope (the highest within the slack), Q slope_bits
    inv: np.ndarray            # [slots] z per slope unit: inv * 2^-sh = 2^16 / spread (inv < 2^31)
    sh: np.ndarray             # [slots]
    k: int                     # Q16
    h: int                     # Q16, >= 1
    f_min: int                 # Q8, < 2^31 (an f_min above 2^23 reads as 2^23)

    def slopes(self, q: np.ndarray) -> np.ndarray:
        """int64 slope (counts per hour, Q slope_bits) of int sample windows [N, T]: the plain fit's, or the best
        switch fit's where its F statistic exceeds f_min.

        Bounds (T <= 2^8, |x| = |q - q[0]| < 2^16): |row . x| < 2^30 * 2^16 * 2^8 = 2^54 (every row entry
        < 2^30); x.x < 2^40, so (x.x) << 20 < 2^60, and each projection squared (Q20) is at most that plus
        rounding; both sides of the F comparison are below 2^23 * 2^16 and 2^23 * 2^31."""
        x = np.asarray(q, np.int64)
        x = x - x[:, :1]
        n, t = x.shape
        energy = (x * x).sum(axis=1) << (2 * PROJ_BITS)
        p = rshift_round(x @ self.basis.T, BASIS_BITS - PROJ_BITS)
        rss = np.maximum(0, energy - (p * p).sum(axis=1))
        p4 = rshift_round(x @ self.switch.T, BASIS_BITS - PROJ_BITS)
        best = np.argmax(p4 * p4, axis=1)
        a = p4[np.arange(n), best] ** 2
        rss_best = np.maximum(0, rss - a)
        r = np.maximum(0, bitlen(np.maximum(a, rss_best)) - F_KEEP)
        take = (a >> r) * ((t - 5) << F_BITS) > (rss_best >> r) * self.f_min
        return np.where(take, (x * self.switch_slope[best]).sum(axis=1), x @ self.slope)

    def z(self, q: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """int64 z (Q16) of int sample windows [N, T] in slots [N]: (b - med) * inv >> sh. |b - med| < 2^54 +
        2^56 < 2^57; shifted to sh - 31 bits and saturated at 2^31 before its multiply by inv < 2^31 (< 2^62;
        adding half a step before the last shift stays below 2^63)."""
        b = self.slopes(q)
        s = np.asarray(slots, np.int64)
        sh = self.sh[s]
        pre = np.minimum(np.maximum(sh - 31, 0), 62)
        d = np.clip(rshift_round(b - self.med[s], pre), -D_MAX, D_MAX)
        return np.clip(rshift_round(d * self.inv[s], sh - pre), -Z_MAX, Z_MAX)

    def cusum(self, z: np.ndarray, restart: np.ndarray) -> np.ndarray:
        """S (Q16) after each window: max(0, S + z - k), at most S_MAX, from 0 where ``restart``."""
        out, s = np.zeros(len(z), np.int64), 0
        for i, zi in enumerate(z.tolist()):
            s = out[i] = self.next_level(0 if restart[i] else s, zi)
        return out

    def next_level(self, s: int, z: int) -> int:
        return min(S_MAX, max(0, s + z - self.k))

    def run(self, q: np.ndarray, slots: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        """S after each of the int sample windows [N, T] of one device in order, in their slots, where ``fresh``
        marks a new stream (``restarts``)."""
        return self.cusum(self.z(q, slots), restarts(slots, fresh, self.slots))

    def over(self, s: np.ndarray) -> np.ndarray:
        """How far S lies above h (Q16, 0 below): the device folds min(this, 2^32 - 1) steps."""
        return np.maximum(0, np.asarray(s, np.int64) - self.h)

    def excess(self, s: np.ndarray) -> np.ndarray:
        """(S - h) / h where S > h, else 0: the excess ``guard.fold`` folds into a score."""
        return self.over(s) / float(self.h)

    def step_sum(self, threshold_sum: int) -> int:
        """The device's sum per Q16 step of S above h: threshold / h in the sum's units, at least 1 so that any
        excess lies above the threshold (``tinyml_guard_sum``)."""
        return max(1, threshold_sum // self.h)


class SlopeState:
    """One device's CUSUM, window by window (the emulator's run loop; ``tinyml_slope_state``): it restarts after
    ``reset`` (a new stream) and where a window's slot is not the one after the last."""

    def __init__(self, tables: Tables):
        self.tables, self.level, self.last = tables, 0, None

    def reset(self) -> None:
        self.level, self.last = 0, None

    def step(self, q: np.ndarray, slot: int) -> int:
        """S after the int sample window q [T] in ``slot``."""
        t = self.tables
        fresh = self.last is None or slot != (self.last + 1) % t.slots
        self.level = t.next_level(0 if fresh else self.level, int(t.z(np.asarray(q)[None], np.array([slot]))[0]))
        self.last = slot
        return self.level


def restarts(slots: np.ndarray, fresh: np.ndarray, per_day: int) -> np.ndarray:
    """Where the CUSUM starts afresh: at a new stream (``fresh``) and at a window whose slot of the day is not
    the one after the previous window's (a gap the device sees from its clock)."""
    s = np.asarray(slots, np.int64)
    out = np.asarray(fresh, bool).copy()
    if len(out):
        out[0] = True
        out[1:] |= s[1:] != (s[:-1] + 1) % per_day
    return out


@dataclass(frozen=True, kw_only=True)
class SlopeGuard:
    tau_h: float
    window: int          # samples per window, at fs
    fs: float
    hop: int             # samples between window starts: a slot is hop / fs of the day
    median: np.ndarray   # per slot of the day, the training windows' slope (units per hour)
    spread: np.ndarray   # per slot, 1.4826 MAD of the slope pooled over +-POOL slots
    settings: Settings

    @property
    def slots(self) -> int:
        return len(self.median)

    @property
    def t_h(self) -> np.ndarray:
        return np.arange(self.window) / self.fs / 3600.0

    @classmethod
    def fit(cls, windows: np.ndarray, starts: np.ndarray, *, fs: float, hop: int, sample_shift: int,
            settings: Settings) -> SlopeGuard:
        """From normal training windows [N, T] (one channel, data units) and their start times (s since the epoch),
        the slopes as the integers compute them with the run's ``sample_shift``."""
        from tinyml.data.features_int import to_samples

        settings.check()
        window = int(windows.shape[1])
        if not 6 <= window <= WINDOW_MAX:
            raise InputError(f"--slope-guard fits 5 terms per window in integers; a window of {window} samples is "
                             f"outside 6-{WINDOW_MAX}", "import the data with another --window")
        slots = slots_for(hop / fs)
        tau = fit_tau(np.asarray(windows, np.float64), np.arange(window) / fs / 3600.0)
        me = cls(tau_h=tau, window=window, fs=fs, hop=hop, median=np.zeros(slots), spread=np.ones(slots),
                 settings=settings)
        tables = me.tables(sample_shift)
        sl = stream_slots(starts, slots)
        q = to_samples(np.asarray(windows, np.float32)[:, :, None], [sample_shift])[:, :, 0]
        b = np.ldexp(tables.slopes(q).astype(np.float64), -(tables.slope_bits + sample_shift))
        unseen = slots - len(np.unique(sl))
        if unseen:
            raise InputError(f"--slope-guard judges each window against its time of day: {unseen} of the {slots} "
                             "slots of the day have no training window", "train on more days of history")
        median = np.array([np.median(b[sl == k]) for k in range(slots)])
        dev = np.abs(b - median[sl])
        spread = np.array([1.4826 * np.median(dev[np.isin(sl, [(k + j) % slots for j in range(-POOL, POOL + 1)])])
                           for k in range(slots)])
        return cls(tau_h=tau, window=window, fs=fs, hop=hop, median=median, spread=np.maximum(spread, 1e-6),
                   settings=settings)

    def to_json(self) -> dict:
        s = self.settings
        return {"tau_h": self.tau_h, "window": self.window, "fs": self.fs, "hop": self.hop,
                "k": s.k, "h": s.h, "f_min": s.f_min, "slack_h": s.slack_h,
                "median": [float(v) for v in self.median], "spread": [float(v) for v in self.spread]}

    @classmethod
    def from_info(cls, info: dict) -> SlopeGuard | None:
        """model.json's slope guard, or None for a run without one; a malformed or stale one is refused."""
        g = info.get("slope_guard")
        if g is None:
            return None
        try:
            me = cls(tau_h=float(g["tau_h"]), window=int(g["window"]), fs=float(g["fs"]), hop=int(g["hop"]),
                     median=np.asarray(g["median"], np.float64), spread=np.asarray(g["spread"], np.float64),
                     settings=Settings(k=float(g["k"]), h=float(g["h"]), f_min=float(g["f_min"]),
                                       slack_h=float(g.get("slack_h", 0.0))))  # runs before the slack had none
            me.settings.check()
            slots = slots_for(me.hop / me.fs)
        except (KeyError, TypeError, ValueError, InputError) as exc:
            raise InputError(f"model.json: its slope_guard is malformed ({exc})", RETRAIN) from exc
        if (me.median.shape != (slots,) or me.spread.shape != (slots,) or not np.all(np.isfinite(me.median))
                or not np.all(me.spread > 0) or not np.all(np.isfinite(me.spread))
                or not (math.isfinite(me.tau_h) and me.tau_h > 0) or not 6 <= me.window <= WINDOW_MAX):
            raise InputError(f"model.json: its slope_guard is malformed ({me.median.size} medians, "
                             f"{me.spread.size} spreads for {slots} slots, tau {me.tau_h:g} h, "
                             f"window {me.window})", RETRAIN)
        if me.window != int(info.get("window") or -1) or me.fs != float(info.get("fs") or -1):
            raise InputError(f"model.json: its slope_guard was fitted on windows of {me.window} samples at "
                             f"{me.fs:g} Hz, the model reads {info.get('window')} at {info.get('fs')} Hz (stale)",
                             RETRAIN)
        return me

    def tables(self, sample_shift: int) -> Tables:
        """The integer tables for samples q = x * 2^sample_shift (the run's integer features' gain)."""
        t = self.t_h
        cols = [[1.0] * self.window, [float(v) for v in t], [math.exp(-v / self.tau_h) for v in t]]
        q, r = _gram_schmidt(cols)
        plain = _slope_row(q, r)
        switch, switch_slope = [], []
        for s in t[1:-2]:
            q4, r4 = _gram_schmidt(cols + [[1.0 - math.exp(-(v - s) / self.tau_h) if v > s else 0.0 for v in t]])
            switch.append(q4[3])
            switch_slope.append(_slope_row(q4, r4))
        peak = max(abs(v) for row in [plain, *switch_slope] for v in row)
        bits = 29 - math.ceil(math.log2(peak))
        if bits < 0:
            raise InputError(f"model.json: its slope_guard's slope weights ({peak:g} per sample) do not fit 30 bits",
                             RETRAIN)
        j = round(self.settings.slack_h * 3600.0 * self.fs / self.hop)
        top = np.max([np.roll(self.median, -d) for d in range(-j, j + 1)], axis=0)  # top[k] = max median[k +- j]
        med = np.array([max(-MED_MAX, min(MED_MAX, math.floor(math.ldexp(float(v), sample_shift + bits) + 0.5)))
                        for v in top], np.int64)
        inv, sh = zip(*(_reciprocal(math.ldexp(float(v), sample_shift + bits)) for v in self.spread), strict=True)
        return Tables(window=self.window, slots=self.slots, basis=np.stack([_fixed(v, BASIS_BITS) for v in q]),
                      switch=np.stack([_fixed(v, BASIS_BITS) for v in switch]), slope=_fixed(plain, bits),
                      switch_slope=np.stack([_fixed(v, bits) for v in switch_slope]), slope_bits=bits,
                      med=med, inv=np.array(inv, np.int64), sh=np.array(sh, np.int64),
                      k=min(S_MAX, math.floor(self.settings.k * 2**Z_BITS + 0.5)),
                      h=max(1, min(S_MAX - 1, math.floor(self.settings.h * 2**Z_BITS + 0.5))),
                      f_min=min(2**31 - 1, math.floor(self.settings.f_min * 2**F_BITS + 0.5)))


def run_tables(info: dict, pre: Preprocess | None) -> Tables | None:
    """The integer slope guard of a run (model.json ``info``, its preprocessing), or None without one; refused
    when the run's features are not the integer daily_cycle ones it reads its samples and slots from."""
    g = SlopeGuard.from_info(info)
    if g is None:
        return None
    if pre is None or not (pre.integer and pre.stateful) or not pre.sample_shift:
        raise InputError("model.json: its slope_guard reads the window's integer samples and slot of the day, and "
                         "this run's features are not integer daily_cycle ones", RETRAIN + " and --features "
                         "temperature-series")
    return g.tables(pre.sample_shift[0])


def samples(pre: Preprocess, windows: np.ndarray) -> np.ndarray:
    """The int samples [N, T] of the first channel of float windows [N, T, C], as the device converts them."""
    from tinyml.data.features_int import to_samples

    return to_samples(np.asarray(windows, np.float32)[:, :, :1], pre.sample_shift[:1])[:, :, 0]
