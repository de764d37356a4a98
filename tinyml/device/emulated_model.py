"""What an emulated device computes: the model's int8 output, and label/score as firmware would.

Results come from the real TFLM Python interpreter. Because running it per frame would cap
a fleet at a few thousand results per second, ``DeviceModel`` runs it once at start over a
pool of synthetic sensor inputs (a "normal" pool and a "drifted" pool) and devices in run
mode draw results from those pools; only INPUT/INFER (validation) runs the interpreter on
the exact bytes a host sent.

Label and score follow docs/protocol.md: classifiers send the arg-max class and its
dequantised probability; anomaly detectors send the mean squared error of the dequantised
input and output and label = score > threshold (0xFF when no threshold is known; 2 where a stuck guard fires).

A run whose features keep state across windows (``daily_cycle``) has no pools to draw from: each run-mode
window is a fresh one, preprocessed with the device's own state (``series``); a slope guard's CUSUM
(``slope``, ``tinyml.train.slope_guard.SlopeState``) is carried beside it and folded in by ``with_slope``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyml.device.protocol import LABEL_SENSOR_FAULT, LABEL_UNDECIDED
from tinyml.errors import InputError
from tinyml.rundir import int8_model

if TYPE_CHECKING:
    from tinyml.data.features_series import Stream
    from tinyml.preprocess import Preprocess
    from tinyml.train.slope_guard import SlopeState

POOL_SIZE = 48


@dataclass(frozen=True)
class Outcome:
    """One inference as a device reports it."""

    label: int
    score: float
    output: tuple[int, ...]
    latency_us: int

    @property
    def output_bytes(self) -> bytes:
        """The raw int8 output tensor as the device holds it."""
        return bytes(v & 0xFF for v in self.output)


@dataclass(frozen=True)
class SensorSpec:
    """The emulated sensor behind a run's model: which physics, window length, rate and channels."""

    kind: str  # "vibration" or "temperature" (tinyml.data.synth)
    window: int
    fs: float
    channels: int

    @property
    def name(self) -> str:
        return f"synth-{self.kind}"


def sensor_spec(pre: Preprocess | None) -> SensorSpec | None:
    """The sensor a run was trained for (``pre``: its preprocessing), when the synthetic generators
    can play it (3 axes of vibration or 1 temperature channel); None otherwise."""
    if pre is None:
        return None
    kind = {3: "vibration", 1: "temperature"}.get(len(pre.channels))
    return SensorSpec(kind, pre.window, pre.fs, len(pre.channels)) if kind else None


def series_spec(pre: Preprocess | None) -> tuple[dict, int] | None:
    """A run's daily_cycle entry and its windows' span in ms (``features_series.window_span_ms``), when its
    features keep state across windows; None otherwise."""
    if pre is None or not pre.stateful:
        return None
    from tinyml.data.features import validate_spec
    from tinyml.data.features_series import NAME, window_span_ms

    entry = next(e for e in validate_spec(pre.feature_spec) if e["name"] == NAME)
    return entry, window_span_ms(pre.window, pre.fs)


def drift_windows(windows: np.ndarray) -> np.ndarray:
    """The drifted sensor: louder and shifted (a loosened mount, a failing bearing, a miscalibration)."""
    return (windows * 1.8 + 0.5 * np.std(windows, axis=(0, 1), keepdims=True)).astype(np.float32)


def _synthetic_windows(pre: Preprocess, count: int, seed: int) -> np.ndarray:
    """Raw sensor windows shaped like the run's training data, from the data package's generators."""
    from tinyml.data import synth

    per_class = max(2, count // 4)
    if len(pre.channels) == 3:
        ds = synth.synth_vibration(synth.VibrationOptions(per_class=per_class, window=pre.window, fs=pre.fs,
                                                          windows_per_recording=2, val=0.0, test=0.0, seed=seed))
    elif len(pre.channels) == 1:
        ds = synth.synth_temperature(synth.TemperatureOptions(per_class=per_class, window=pre.window, fs=pre.fs,
                                                              windows_per_recording=2, val=0.0, test=0.0, seed=seed))
    else:
        rng = np.random.default_rng(seed)
        return rng.normal(0.0, 1.0, (count, pre.window, len(pre.channels))).astype(np.float32)
    rng = np.random.default_rng(seed)
    return ds.x[rng.permutation(ds.n)[:count]]


class DeviceModel:
    """A loaded model plus pools of precomputed outcomes for run mode."""

    def __init__(self, model_path: str | Path, seed: int = 0, pool_size: int = POOL_SIZE):
        from tinyml.model import interpreters

        self.path = Path(model_path)
        self.model = int8_model(self.path)
        self.tflite, self.info = self.model.data, self.model.labels
        self.quant = self.model.quant
        self.model_hash = self.model.hash8
        self.arena_bytes = interpreters.safe_arena_size(self.tflite)
        self._interpreter = interpreters.tflm_interpreter(self.tflite, self.arena_bytes)
        self.input_bytes = int(np.prod(self.quant.in_shape))
        self.output_bytes = int(np.prod(self.quant.out_shape))
        self._pre = self.model.preprocess()  # None for a bare .tflite
        self.sensor = sensor_spec(self._pre)
        self.series = series_spec(self._pre)  # (daily_cycle entry, window span in ms) or None
        self.slope = self.model.slope()  # the slope guard's integer tables, or None
        self.stuck = self.model.stuck()  # the stuck guard, or None
        from tinyml.data.features_series import run_hop

        # samples between run-mode window starts: a stateful run's training hop (its firmware slides by a shorter one
        # and discards the samples between windows of a longer one), else the window
        self.hop = None if self._pre is None else run_hop(self._pre.feature_spec, self._pre.window, self._pre.fs)
        if self.series is not None and self.sensor is None:
            raise InputError("an emulated device runs a daily_cycle model on synthetic windows of 1 (temperature) "
                             "or 3 (vibration) channels", "emulate a run trained on such data")
        # the raw windows behind the pools' results (None without a sensor): what capture sends
        self.normal_windows: np.ndarray | None = None
        self.drifted_windows: np.ndarray | None = None
        normal, drifted = self._pool_inputs(seed, pool_size)
        self.normal_pool = [self.infer(x.tobytes(), w)
                            for x, w in zip(normal, self._raw(self.normal_windows, normal), strict=True)]
        self.drifted_pool = [self.infer(x.tobytes(), w)
                             for x, w in zip(drifted, self._raw(self.drifted_windows, drifted), strict=True)]

    @staticmethod
    def _raw(windows: np.ndarray | None, inputs: np.ndarray) -> list:
        """The raw window behind each input, or None each (no sensor: the device sees only inputs)."""
        return [None] * len(inputs) if windows is None else list(windows)

    def _quantize(self, windows: np.ndarray, stream: Stream | None = None) -> np.ndarray:
        from tinyml.model.interpreters import quantize_input

        q = self.quant
        assert self._pre is not None
        if self._pre.integer:  # the device's own int8 inputs
            if stream is None and self.series is not None:  # pools: one stream, a window per slot
                from tinyml.data.features_series import DAY, Stream

                stream = Stream(np.arange(len(windows)) * DAY / int(self.series[0]["slots"]))
            return self._pre.int8_inputs(windows, q.in_scale, q.in_zp, stream=stream).reshape(-1, *q.in_shape)
        return quantize_input(self._pre.apply(windows), q.in_scale, q.in_zp).reshape(-1, *q.in_shape)

    def _pool_inputs(self, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """int8 inputs for the normal and the drifted pool (drift: a louder, shifted sensor)."""
        q = self.quant
        if self._pre is not None:
            windows = _synthetic_windows(self._pre, n, seed)
            drifted = drift_windows(windows)
            if self.sensor is not None:
                self.normal_windows, self.drifted_windows = windows.astype(np.float32), drifted
            return self._quantize(windows), self._quantize(drifted)
        rng = np.random.default_rng(seed)
        shape = (n, *q.in_shape)
        normal = np.clip(np.round(rng.normal(q.in_zp, 20, shape)), -128, 127).astype(np.int8)
        drifted = np.clip(np.round(rng.normal(q.in_zp + 30, 40, shape)), -128, 127).astype(np.int8)
        return normal, drifted

    def fresh(self, condition: str, drifted: bool, rng: np.random.Generator,
              stream: Stream | None = None, kept: np.ndarray | None = None) -> tuple[np.ndarray, Outcome]:
        """A new window of the machine in ``condition`` read by the emulated sensor, and the result
        the model gives for it (TFLM on the exact window: capture streams both); ``stream`` places it
        for a preprocessing with state across windows (and carries that state on); ``kept``: the samples
        a sliding device keeps from its last window, followed by the fresh window's last ones."""
        from tinyml.data.synth import synth_windows

        assert self.sensor is not None
        s = self.sensor
        window = synth_windows(s.kind, condition, 1, s.window, s.fs, rng)
        if drifted:
            window = drift_windows(window)
        if kept is not None:
            window = np.concatenate([kept[None], window[:, len(kept):]], axis=1)
        return window[0], self.infer(self._quantize(window, stream)[0].tobytes(), window[0])

    def with_slope(self, window: np.ndarray, slot: int, state: SlopeState, outcome: Outcome) -> Outcome:
        """``outcome`` of the raw ``window`` [T, C] in ``slot`` with the slope guard's CUSUM (``state``, stepped by
        this window) folded in, as tinyml_app.c ``decide`` folds it."""
        from tinyml.train.guard import fold
        from tinyml.train.slope_guard import samples

        assert self._pre is not None and self.slope is not None and self.info.threshold is not None
        level = state.step(samples(self._pre, window[None])[0], slot)
        score = float(fold(np.array([outcome.score]), self.slope.excess(np.array([level])), self.info.threshold)[0])
        label = outcome.label if outcome.label == LABEL_SENSOR_FAULT else int(score > self.info.threshold)
        return Outcome(label, score, outcome.output, outcome.latency_us)

    def infer(self, input_bytes: bytes, window: np.ndarray | None = None) -> Outcome:
        """Run TFLM on one raw int8 input tensor, as the device would after INPUT/INFER; ``window``: the raw
        window [T, C] it was computed from, which a stuck guard counts."""
        from tinyml.model.interpreters import dequantize
        from tinyml.train.guard import int8_scores

        q = self.quant
        x = np.frombuffer(input_bytes, np.int8).reshape(1, *q.in_shape)
        start = time.perf_counter()
        self._interpreter.set_input(x, 0)
        self._interpreter.invoke()
        out = np.asarray(self._interpreter.get_output(0), np.int8).reshape(-1)
        latency_us = max(1, int((time.perf_counter() - start) * 1e6))
        y = dequantize(out, q.out_scale, q.out_zp)
        if self.info.task == "classifier":
            label = int(np.argmax(out))
            score = float(y[label])
        else:
            error = np.mean((dequantize(x.reshape(-1), q.in_scale, q.in_zp) - y) ** 2)
            score = float(int8_scores(self.model, x.reshape(1, -1), np.array([error]))[0])  # its input guard too
            label = LABEL_UNDECIDED if self.info.threshold is None else int(score > self.info.threshold)
            if self.stuck is not None and window is not None and self.info.threshold is not None:
                from tinyml.train.guard import fold

                excess = self.stuck.window_excess(self._pre, np.asarray(window)[None])
                score = float(fold(np.array([score]), excess, self.info.threshold)[0])
                label = LABEL_SENSOR_FAULT if excess[0] > 0 else label
        return Outcome(label, score, tuple(int(v) for v in out), latency_us)
