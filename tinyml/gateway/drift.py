"""Drift of a device's score distribution against a baseline: PSI or Kolmogorov-Smirnov.

The baseline is the list of scores saved at training time (model.json ``score_baseline``)
or, without one, the first results the device sent. The statistic is computed over a
rolling window of the latest scores; the alert fires above one threshold and clears
below a lower one, so it does not flap.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tinyml.gateway.rules import Transition

PSI_FLOOR = 1e-4  # share given to empty bins so the logarithm stays finite


def psi(baseline: Sequence[float], recent: Sequence[float], bins: int = 10) -> float:
    """Population stability index of ``recent`` against ``baseline`` over baseline-quantile bins.

    Values below the baseline's minimum or above its maximum get bins of their own, so a
    shift is seen even when the baseline is (nearly) constant. Conventional reading:
    < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
    """
    base = np.asarray(baseline, dtype=np.float64)
    new = np.asarray(recent, dtype=np.float64)
    inner = np.quantile(base, np.linspace(0, 1, bins + 1)[:-1])  # starts at the minimum
    edges = np.unique(np.append(inner, np.nextafter(base.max(), np.inf)))
    expected = np.bincount(np.searchsorted(edges, base, side="right"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, new, side="right"), minlength=len(edges) + 1)
    e = np.maximum(expected / base.size, PSI_FLOOR)
    a = np.maximum(actual / new.size, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def ks(baseline: Sequence[float], recent: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    return _ks_sorted(np.sort(np.asarray(baseline, dtype=np.float64)), recent)


def _ks_sorted(base: np.ndarray, recent: Sequence[float]) -> float:
    """``ks`` for a baseline already sorted into an array (a device's baseline rarely changes)."""
    new = np.sort(np.asarray(recent, dtype=np.float64))
    points = np.concatenate([base, new])
    cdf_base = np.searchsorted(base, points, side="right") / base.size
    cdf_new = np.searchsorted(new, points, side="right") / new.size
    return float(np.max(np.abs(cdf_base - cdf_new)))


STATISTICS = {"psi": psi, "ks": ks}


@dataclass(frozen=True, kw_only=True)
class DriftConfig:
    """Drift monitoring settings (gateway.toml ``[drift]``).

    KS is the default: its noise on a 200-score window is small against 0.2. PSI over 10
    quantile bins is noisier on small windows; use ``window`` >= 500 with ``threshold`` 0.25.
    """

    method: str = "ks"
    threshold: float = 0.2
    clear: float = 0.1
    window: int = 200
    baseline_n: int = 500
    every: int = 20

    def __post_init__(self) -> None:
        if self.method not in STATISTICS:
            raise ValueError(f"drift method must be one of {sorted(STATISTICS)}")
        if not 0 <= self.clear < self.threshold:
            raise ValueError("need 0 <= clear < threshold")
        if min(self.window, self.baseline_n, self.every) < 1:
            raise ValueError("window, baseline_n and every must be positive")


class DriftMonitor:
    """One device's drift state: its baseline, its latest scores and whether drift is flagged."""

    name = "drift"

    def __init__(self, config: DriftConfig, baseline: Sequence[float] | None = None):
        self.config = config
        self.fixed_baseline = baseline is not None and len(baseline) > 0
        self.baseline: list[float] = list(baseline) if self.fixed_baseline else []
        self.recent: deque[float] = deque(maxlen=config.window)
        self.since_check = 0
        self.value: float | None = None
        self.firing = False
        self._sorted: tuple[list[float], int, np.ndarray] | None = None  # (baseline, its length, sorted copy)

    def observe(self, score: float) -> Transition | None:
        if len(self.baseline) < self.config.baseline_n and not self.fixed_baseline:
            self.baseline.append(score)
            return None
        self.recent.append(score)
        self.since_check += 1
        if len(self.recent) < self.config.window or self.since_check < self.config.every:
            return None
        self.since_check = 0
        self.value = self._statistic()
        label = f"{self.config.method.upper()} {self.value:.3f}"
        if not self.firing and self.value > self.config.threshold:
            self.firing = True
            return Transition(self.name, True, self.value,
                              f"score distribution drifted: {label} > {self.config.threshold:g}")
        if self.firing and self.value < self.config.clear:
            self.firing = False
            return Transition(self.name, False, self.value,
                              f"score distribution back to baseline: {label} < {self.config.clear:g}")
        return None

    def _statistic(self) -> float:
        """The configured statistic; KS against a sorted baseline array kept between checks."""
        if self.config.method != "ks":
            return STATISTICS[self.config.method](self.baseline, self.recent)
        cached = self._sorted
        if cached is None or cached[0] is not self.baseline or cached[1] != len(self.baseline):
            cached = self._sorted = (self.baseline, len(self.baseline),
                                     np.sort(np.asarray(self.baseline, dtype=np.float64)))
        return _ks_sorted(cached[2], self.recent)
