"""The input envelope guard of an anomaly model: every model input within its training range plus a margin.

Why: an autoencoder reconstructs a value that moves along a direction normal data also takes (a slow drift
of the daily-cycle residual, the start of a runaway) nearly as well as a normal one, so its error stays low
while an input leaves everything seen in training. The guard catches that, and costs one comparison per
input on the device.

``train --guard-margin SD`` records in model.json ``guard``: per standardised model input (1 unit = 1 training
standard deviation) ``low`` = training min - margin and ``high`` = training max + margin. Beyond the envelope
by ``e`` units (the largest excess over inputs; an input the feature leaves unbounded, null in model.json, never
counts: ``features.guarded_columns``), the anomaly score becomes max(reconstruction error,
threshold * (1 + e)): above the threshold, growing with the excess, so the gateway, drift check, validate and
detect need no new field. On the device (and in Python for an int8 model) the check runs on the int8 inputs:
the bounds become int8 ``guard_bounds_int8`` (a bound beyond the int8 range never fires), ``e`` counts int8
steps (``excess_int8``) and the folded sum is ``guarded_sum`` in ``decide`` (tinyml_app.c, tinyml_guard.c),
the same integers on both. Runs without ``guard`` score as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tinyml.errors import InputError

if TYPE_CHECKING:
    from tinyml.rundir import Int8Model, Model


@dataclass(frozen=True)
class Guard:
    margin: float
    low: np.ndarray   # per flattened model input, standardised units
    high: np.ndarray

    @classmethod
    def fit(cls, train_inputs: np.ndarray, margin: float, guarded: np.ndarray | None = None) -> Guard:
        """The envelope of the training split's model inputs, widened by ``margin`` standard deviations;
        inputs not ``guarded`` (per flattened input; default all) are unbounded."""
        check_margin(margin)
        x = np.asarray(train_inputs, np.float64).reshape(len(train_inputs), -1)
        keep = np.ones(x.shape[1], bool) if guarded is None else np.asarray(guarded, bool)
        return cls(float(margin), np.where(keep, x.min(axis=0) - margin, -np.inf),
                   np.where(keep, x.max(axis=0) + margin, np.inf))

    def to_json(self) -> dict:
        # full floats (JSON round-trips them): the run's own scores and every reader use the same bounds; null for
        # an unbounded input
        return {"margin_sd": self.margin, "low": [float(v) if math.isfinite(v) else None for v in self.low],
                "high": [float(v) if math.isfinite(v) else None for v in self.high]}

    @classmethod
    def from_info(cls, info: dict) -> Guard | None:
        """model.json's guard, or None for a run without one (trained before the guard, or without it)."""
        g = info.get("guard")
        if g is None:
            return None
        try:
            guard = cls(float(g["margin_sd"]), _bounds(g["low"], -np.inf), _bounds(g["high"], np.inf))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"model.json: its guard is malformed ({exc})", "re-run `tinyml train`") from exc
        width = math.prod(int(v) for v in info.get("input_shape") or [guard.low.size])
        if guard.low.shape != (width,) or guard.high.shape != (width,) or not np.all(guard.low <= guard.high):
            raise InputError(f"model.json: its guard has {guard.low.size} bounds for {width} model inputs",
                             "re-run `tinyml train`")
        return guard

    def excess(self, inputs: np.ndarray) -> np.ndarray:
        """Per window, how far (standardised units) the farthest input lies beyond its bounds; 0 inside."""
        x = np.asarray(inputs, np.float64).reshape(len(inputs), -1)
        return np.maximum(0.0, np.maximum(x - self.high, self.low - x)).max(axis=1, initial=0.0)

    def bounds_int8(self, in_scale: float, in_zp: int) -> tuple[np.ndarray, np.ndarray]:
        """The bounds on int8 inputs q ((q - zp) * scale in real units): q inside iff lo <= q <= hi. Computed
        in float64 here once; the firmware gets these integers, so both sides compare the same numbers."""
        lo = np.ceil(self.low / in_scale + in_zp)
        hi = np.floor(self.high / in_scale + in_zp)
        return np.clip(lo, -128, 127).astype(np.int64), np.clip(hi, -128, 127).astype(np.int64)


def _bounds(values: list, unbounded: float) -> np.ndarray:
    """model.json's bounds as floats, null as ``unbounded``; anything else not a finite number is refused."""
    out = np.array([unbounded if v is None else float(v) for v in values], np.float64)
    if not np.all(np.isfinite(out) | (out == unbounded)):
        raise ValueError("a bound is not a number")
    return out


def check_margin(margin: float) -> None:
    if not (math.isfinite(margin) and margin >= 0):
        raise InputError(f"--guard-margin {margin:g} is no margin", "give the training standard deviations (>= 0) "
                         "an input may lie beyond its training range, e.g. 1")


def excess_int8(q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per window of int8 inputs [N, F], the int8 steps the farthest input lies beyond its bounds (0 inside)."""
    q = np.asarray(q, np.int64).reshape(len(q), -1)
    return np.maximum(0, np.maximum(q - hi, lo - q)).max(axis=1, initial=0)


def fold(scores: np.ndarray, excess: np.ndarray, threshold: float) -> np.ndarray:
    """The guarded score: max(score, threshold * (1 + excess)) where an input is outside, else the score."""
    scores = np.asarray(scores, np.float64)
    return np.where(excess > 0, np.maximum(scores, threshold * (1.0 + excess)), scores)


def step_sum(threshold_sum: int, in_scale: float) -> int:
    """The device's sum per int8 step of excess: threshold * in_scale in the sum's units, at least 1 so that
    any excess lies above the threshold."""
    return max(1, math.floor(threshold_sum * in_scale))


def guarded_sum(error_sum: int, excess: int, threshold_sum: int, step: int) -> int:
    """The device's integer score (``decide`` in tinyml_app.c): the reconstruction error sum, raised to
    threshold_sum + excess * step when an input is outside (saturating at 2^64 - 1 as the C does)."""
    if excess <= 0:
        return error_sum
    return max(error_sum, min(threshold_sum + excess * step, 2**64 - 1))


def guarded_scores(model: Model, info: dict, inputs: np.ndarray, scores: np.ndarray,
                   int8_inputs: Callable[[float, int], np.ndarray] | None = None, *,
                   windows: np.ndarray | None = None) -> np.ndarray:
    """A run's anomaly scores with its guard folded in (unchanged without one): on the float inputs for
    model.keras, on the int8 inputs (``int8_inputs``: an integer run's own, else quantized) for a .tflite; and
    its stuck guard (``tinyml.train.stuck_guard``) on the raw ``windows`` [N, T, C] the inputs came from."""
    from tinyml.train.stuck_guard import StuckGuard

    guard, stuck = Guard.from_info(info), StuckGuard.from_info(info)
    threshold = model.threshold
    if threshold is None:
        return scores
    if stuck is not None and windows is not None:
        scores = fold(scores, stuck.window_excess(model.preprocess(), windows), threshold)
    if guard is None:
        return scores
    if model.file is None or model.file.suffix != ".tflite":
        return fold(scores, guard.excess(inputs), threshold)
    from tinyml.model import interpreters

    m = model.int8()
    x_q = (int8_inputs(m.in_scale, m.in_zp) if int8_inputs is not None
           else interpreters.quantize_input(inputs, m.in_scale, m.in_zp))
    return fold_int8(guard, m, x_q, scores)


def int8_scores(model: Int8Model, inputs_q: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """An int8 model's anomaly scores with its guard folded in as the device folds it, from its int8 inputs (the
    slope guard, which needs the windows in order, is folded by the callers that have them: ``hil.decide``, the
    emulator)."""
    return fold_int8(model.guard(), model, inputs_q, scores)


def fold_int8(guard: Guard | None, model: Int8Model, inputs_q: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``guard`` folded in on the int8 inputs, as the device folds it."""
    if guard is None:
        return np.asarray(scores, np.float64)
    excess = excess_int8(inputs_q, *guard.bounds_int8(model.in_scale, model.in_zp))
    return fold(scores, excess * model.in_scale, float(model.threshold))
