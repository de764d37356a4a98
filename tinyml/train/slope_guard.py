"""The slope guard of a temperature anomaly model: the thermal lag's drive slope per time of day, accumulated.

Why: at a shift's switching times normal windows lie as far from the daily profile as a slow drift gets,
so no bound on the level residual finds drifts and runaways without false alarms. The physics separates
them: through a first-order thermal lag (time constant tau) a window that holds no switch reads
a + b t + c exp(-t / tau), a load switch at s inside it adds d (1 - exp(-(t - s) / tau)), and the drive's
slope b is the ambient's, the same at a time of day every day (weather adds a little), while a drift or a
runaway adds its own slope to it. So per window the slope b of the better of the two fits (the switch
model, scanned over s, only when it explains much more: F > ``f_min``), judged against its median and
spread at that slot of the day on the training windows, z = (b - median) / spread (the median the highest
of the slots within ``slack_h`` hours either way: a logger's clock set back or forward by that much shifts
every slot, and where the usual slope changes fast, as in the afternoon, that alone looked like a drift), accumulated
by a one-sided CUSUM S = max(0, S + z - k), restarted in each recording; a window with S > h is anomalous
(excess (S - h) / h, folded into the score as the input guard's, ``tinyml.train.guard.fold``). tau is fitted
once on the training windows with the largest range (the transients after switches), on a grid.

``train --slope-guard`` records it in model.json ``slope_guard``; ``detect`` applies it. It runs on the
host only: firmware, validate, replay and the emulator refuse a run that has one (``refuse_on_device``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyml.data.features_series import slots_for, stream_slots
from tinyml.errors import InputError

TAU_GRID_H = np.arange(10, 181, 5) / 60.0
POOL = 2  # the spread of a slot pools the slopes of the slots within this many either side
RETRAIN = "re-run `tinyml train` with --slope-guard"


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
    def fit(cls, windows: np.ndarray, starts: np.ndarray, *, fs: float, hop: int, settings: Settings) -> SlopeGuard:
        """From normal training windows [N, T] (one channel) and their start times (s since the epoch)."""
        settings.check()
        window = int(windows.shape[1])
        if window < 6:
            raise InputError(f"--slope-guard fits 5 terms per window; a window of {window} samples is too short",
                             "import the data with a longer --window")
        slots = slots_for(hop / fs)
        tau = fit_tau(np.asarray(windows, np.float64), np.arange(window) / fs / 3600.0)
        me = cls(tau_h=tau, window=window, fs=fs, hop=hop, median=np.zeros(slots), spread=np.ones(slots),
                 settings=settings)
        b, sl = me.slopes(windows), stream_slots(starts, slots)
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
                or not (math.isfinite(me.tau_h) and me.tau_h > 0)):
            raise InputError(f"model.json: its slope_guard is malformed ({me.median.size} medians, "
                             f"{me.spread.size} spreads for {slots} slots, tau {me.tau_h:g} h)", RETRAIN)
        if me.window != int(info.get("window") or -1) or me.fs != float(info.get("fs") or -1):
            raise InputError(f"model.json: its slope_guard was fitted on windows of {me.window} samples at "
                             f"{me.fs:g} Hz, the model reads {info.get('window')} at {info.get('fs')} Hz (stale)",
                             RETRAIN)
        return me

    def slopes(self, windows: np.ndarray) -> np.ndarray:
        t_h = self.t_h
        b, ss, best_b, best_ss = fits(np.asarray(windows, np.float64), t_h, self.tau_h)
        f = (ss - best_ss) / np.maximum(best_ss, 1e-12) * (len(t_h) - 5)
        return np.where(f > self.settings.f_min, best_b, b)

    def excess(self, windows: np.ndarray, starts: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Per window in file order: (S - h) / h where the CUSUM S is above h, else 0; S restarts where
        ``which`` (the recording) changes."""
        k, h = self.settings.k, self.settings.h
        sl = stream_slots(starts, self.slots)
        j = round(self.settings.slack_h * 3600.0 * self.fs / self.hop)
        median = np.max([self.median[(sl + d) % self.slots] for d in range(-j, j + 1)], axis=0)
        z = (self.slopes(windows) - median) / self.spread[sl]
        out, s = np.zeros(len(z)), 0.0
        for i, zi in enumerate(z):
            s = max(0.0, (0.0 if i and which[i] != which[i - 1] else s) + zi - k)
            out[i] = (s - h) / h + 1e-9 if s > h else 0.0
        return out


def refuse_on_device(info: dict) -> None:
    """A run with a slope guard cannot run on a device yet: every path that computes a device's decisions
    (firmware, validate, replay, the emulator) stops here rather than decide differently from ``detect``."""
    if info.get("slope_guard") is not None:
        raise InputError("this run's slope guard runs only on the host yet",
                         "retrain without --slope-guard to put it on a device")
