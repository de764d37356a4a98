"""The stuck-sensor guard of an anomaly model: a reading that repeats for longer than any training window's.

Why: a frozen probe reads one value while the machine's temperature goes on moving. Among an autoencoder's
inputs (``flat_fraction``, ``flat_run``) that flatness drowns in the reconstruction's noise: ``flat_run`` in
the temperature preset found the one frozen probe the autoencoder missed and cost 15 false alarms on 81
synthetic logs (docs/benchmarks.md). Counted directly it separates: in 8 weeks of a synthetic 5-minute log
the longest run of equal neighbouring samples is 4-10 repeats, and at most 2 more in the 4 weeks after
(120 seeds), while a frozen hour is 11 repeats and a frozen probe stays so for 3-6 hours.

``train --stuck-guard RATIO`` records in model.json ``stuck_guard``: ``seen``, the most repeats (equal
neighbouring samples in a row, on any channel) in one normal training or validation window (the training split
alone, a few weeks shorter, set bounds that a month later's normal windows passed), counted on the device's integer
samples (the run's ``sample_shift``, so the device counts the same), and ``bound`` = max(1, floor(seen *
RATIO)). A window with r > bound repeats is anomalous, excess (r - bound) / bound, folded into the score as
the input guard's (``tinyml.train.guard.fold``). On the device ``tinyml_ifeat_stuck_over`` (tinyml_features_int.c)
counts r on the same int16 samples and ``decide`` (tinyml_app.c) folds r - bound steps of ``step_sum``. Such a window
is a sensor fault: the device labels it 2 (docs/protocol.md) and the alarm rule fires on it at once
(``tinyml.gateway.rules.AnomalyKofN``, in the gateway and in ``detect``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tinyml.data.features import longest_streak
from tinyml.errors import InputError

if TYPE_CHECKING:
    from tinyml.preprocess import Preprocess

RETRAIN = "re-run `tinyml train` with --stuck-guard"


def repeats(q: np.ndarray) -> np.ndarray:
    """Per int sample window [N, T, C], the most equal neighbouring samples in a row on any channel."""
    q = np.asarray(q, np.int64)
    if q.ndim == 2:
        q = q[:, :, None]
    same = q[:, 1:] == q[:, :-1]
    return np.max([longest_streak(same[:, :, c]) for c in range(q.shape[2])], axis=0, initial=0)


def samples(pre: Preprocess, windows: np.ndarray) -> np.ndarray:
    """The int samples [N, T, C] of float windows [N, T, C], as the device converts them."""
    from tinyml.data.features_int import to_samples

    return to_samples(np.asarray(windows, np.float32), pre.sample_shift)


def check_ratio(ratio: float) -> None:
    if not (math.isfinite(ratio) and ratio >= 1):
        raise InputError(f"--stuck-guard {ratio:g} is no ratio", "give how many times the longest run of repeated "
                         "samples in a training window a run may reach, >= 1, e.g. 1.5")


@dataclass(frozen=True, kw_only=True)
class StuckGuard:
    ratio: float
    window: int  # samples per window: the run the bound is counted in
    seen: int    # the most repeats in a normal training or validation window
    bound: int   # more repeats than this in a window: anomalous

    @classmethod
    def fit(cls, q: np.ndarray, ratio: float) -> StuckGuard:
        """From the normal windows' int samples [N, T, C]."""
        check_ratio(ratio)
        window = int(np.shape(q)[1])
        seen = int(repeats(q).max(initial=0))
        bound = max(1, math.floor(seen * ratio))
        if bound >= window - 1:
            raise InputError(f"--stuck-guard {ratio:g}: training windows already repeat a sample {seen} times in a "
                             f"row, and a window of {window} samples holds at most {window - 1} repeats, so the "
                             "guard could never fire", "import the data with a longer --window, or give a lower ratio")
        return cls(ratio=float(ratio), window=window, seen=seen, bound=bound)

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "window": self.window, "seen": self.seen, "bound": self.bound}

    @classmethod
    def from_info(cls, info: dict) -> StuckGuard | None:
        """model.json's stuck guard, or None for a run without one; a malformed or stale one is refused."""
        g = info.get("stuck_guard")
        if g is None:
            return None
        try:
            me = cls(ratio=float(g["ratio"]), window=int(g["window"]), seen=int(g["seen"]), bound=int(g["bound"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"model.json: its stuck_guard is malformed ({exc})", RETRAIN) from exc
        if not (me.ratio >= 1 and me.seen >= 0 and 1 <= me.bound < me.window - 1
                and me.bound == max(1, math.floor(me.seen * me.ratio))):
            raise InputError(f"model.json: its stuck_guard is malformed (bound {me.bound} for {me.seen} repeats "
                             f"seen, ratio {me.ratio:g}, window {me.window})", RETRAIN)
        if me.window != int(info.get("window") or -1):
            raise InputError(f"model.json: its stuck_guard counts windows of {me.window} samples, the model reads "
                             f"{info.get('window')} (stale)", RETRAIN)
        return me

    def over(self, r: np.ndarray) -> np.ndarray:
        """Repeats beyond the bound (0 within): the steps the device folds."""
        return np.maximum(0, np.asarray(r, np.int64) - self.bound)

    def excess(self, r: np.ndarray) -> np.ndarray:
        """(r - bound) / bound where r > bound, else 0: the excess ``guard.fold`` folds into a score."""
        return self.over(r) / float(self.bound)

    def step_sum(self, threshold_sum: int) -> int:
        """The device's sum per repeat beyond the bound: threshold / bound in the sum's units, at least 1 so that
        any excess lies above the threshold (``tinyml_guard_sum``)."""
        return max(1, threshold_sum // self.bound)

    def window_excess(self, pre: Preprocess | None, windows: np.ndarray) -> np.ndarray:
        """The excess of float windows [N, T, C] of a run with integer features (``pre``)."""
        return self.excess(repeats(samples(require_integer(pre), windows)))


def require_integer(pre: Preprocess | None) -> Preprocess:
    """The run's preprocessing, refused unless it converts windows to the device's integer samples."""
    if pre is None or not pre.integer or pre.mode != "features" or not pre.sample_shift:
        raise InputError("model.json: its stuck_guard counts the window's integer samples, and this run's features "
                         "are not integer window features", RETRAIN + " and --arithmetic integer --features ...")
    return pre
