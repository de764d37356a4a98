"""An offline candidate detector for issue 17, measured by ``series_detect.py --slope-cusum`` (not in the product).

Why: at the shift's switching times normal windows lie as far from the daily profile as a slow drift gets,
so no bound on the level residual finds drifts and runaways without false alarms. The physics separates
them: through a first-order thermal lag (time constant tau) a window that holds no switch reads
a + b t + c exp(-t / tau), a load switch at s inside it adds d (1 - exp(-(t - s) / tau)), and the drive's
slope b is the ambient's, the same at a time of day every day (weather adds a little), while a drift or a
runaway adds its own slope to it. So per window the slope b of the better of the two fits (the switch
model, scanned over s, only when it explains much more: F > ``f_min``), judged against its median and
spread at that slot of the day on the training windows, z = (b - median) / spread, and accumulated
by a one-sided CUSUM S = max(0, S + z - k), restarted in each recording; a window with S > h is anomalous
(excess (S - h) / h, folded into the score as the input guard's). tau is fitted once on the training windows
with the largest range (the transients after switches), on a grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyml.data.features_series import slots_for, stream_slots

TAU_GRID_H = np.arange(10, 181, 5) / 60.0


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


@dataclass(frozen=True, kw_only=True)
class SlopeCusum:
    tau_h: float
    t_h: np.ndarray      # sample times within a window, hours
    slots: int
    median: np.ndarray   # per slot of the day, deg/h
    spread: np.ndarray
    f_min: float = 100.0
    k: float = 1.5
    h: float = 16.0

    @classmethod
    def fit(cls, windows: np.ndarray, starts: np.ndarray, *, fs: float, hop: int, pool: int = 2,
            **settings: float) -> SlopeCusum:
        """From normal training windows [N, T] (one channel) and their start times (s since the epoch)."""
        t_h = np.arange(windows.shape[1]) / fs / 3600.0
        tau = fit_tau(windows, t_h)
        slots = slots_for(hop / fs)
        me = cls(tau_h=tau, t_h=t_h, slots=slots, median=np.zeros(slots), spread=np.ones(slots), **settings)
        b, sl = me.slopes(windows), stream_slots(starts, slots)
        median = np.array([np.median(b[sl == k]) if np.any(sl == k) else 0.0 for k in range(slots)])
        dev = np.abs(b - median[sl])
        spread = np.array([1.4826 * np.median(dev[np.isin(sl, [(k + j) % slots for j in range(-pool, pool + 1)])])
                           for k in range(slots)])
        return cls(tau_h=tau, t_h=t_h, slots=slots, median=median, spread=np.maximum(spread, 1e-6), **settings)

    def slopes(self, windows: np.ndarray) -> np.ndarray:
        b, ss, best_b, best_ss = fits(np.asarray(windows, np.float64), self.t_h, self.tau_h)
        f = (ss - best_ss) / np.maximum(best_ss, 1e-12) * (len(self.t_h) - 5)
        return np.where(f > self.f_min, best_b, b)

    def excess(self, windows: np.ndarray, starts: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Per window in file order: (S - h) / h where the CUSUM S is above h, else 0."""
        sl = stream_slots(starts, self.slots)
        z = (self.slopes(windows) - self.median[sl]) / self.spread[sl]
        out, s = np.zeros(len(z)), 0.0
        for i, zi in enumerate(z):
            s = max(0.0, (0.0 if i and which[i] != which[i - 1] else s) + zi - self.k)
            out[i] = (s - self.h) / self.h + 1e-9 if s > self.h else 0.0
        return out
