"""Turn dataset windows into model inputs exactly as training did.

One ``Preprocess`` is fitted on the training split and saved as ``preprocess.json``; predict,
quantize, validation and the emulator load it back, so every consumer feeds the model the same
numbers. Three modes:
  per_window  each channel of each window standardised by its own mean and std (the waveform's
              shape), plus log(std) of each channel (its level) standardised with training
              constants as C extra channels, constant along time (cnn1d), input [T, 2C]
  raw         per-channel standardisation with training constants, input [T, C] (earlier cnn1d
              runs)
  features    ``compute_features`` with the saved spec, then per-feature standardisation
              (mlp, autoencoder), input [F]

Arithmetic: new runs compute features and per_window in integers (``arithmetic: "integer"``,
tinyml/data/features_int.py): the samples become int16 with a per-channel power-of-two gain
(``sample_shift``, fixed here on the training split), every step is fixed point, and the
device's C twin gives the same int8 model inputs bit for bit (``int8_inputs``). Runs written
before that have no "arithmetic" key and keep the float64 path below ("float64").

Why per_window: a machine's vibration level spans decades across operating points (the fan
data: 0.02 g to 2 g), so one fixed scale leaves quiet windows a few int8 steps. Shape and
log level each fill the int8 range. Its arithmetic is specified to the operation so that the
firmware's C twin (tinyml_run.c.j2) gives the same float32 inputs: sums in float64 in time
order, sqrt and log in float64, cast to float32, level standardised in float32 (float64 runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml.data.features_series import Stream
from tinyml.errors import InputError
from tinyml.outputs import write_json

MIN_STD = 1e-6  # a constant channel must not divide by zero
MODES = ("per_window", "raw", "features")
ARITHMETICS = ("integer", "float64")


@dataclass(frozen=True)
class Preprocess:
    mode: str                      # one of MODES
    window: int                    # samples per window (T)
    channels: list[str]
    fs: float
    mean: np.ndarray               # per channel (raw: of samples, per_window: of log levels) or per feature
    std: np.ndarray
    feature_spec: list[dict] | None = None
    arithmetic: str = "float64"    # "integer" (features_int.py) or "float64" (runs from before)
    sample_shift: list[int] | None = None  # integer: per-channel sample gain 2^shift

    @classmethod
    def fit(cls, x_train: np.ndarray, mode: str, channels: list[str], fs: float,
            feature_spec: list[dict] | None = None, *, arithmetic: str = "integer",
            stream: Stream | None = None, headroom: float = 1.0) -> Preprocess:
        """Fix the normalisation constants (and, in integers, the sample gains) on the training windows
        (``stream``: their times, for features with state across windows; ``headroom``: how many times the
        training peak the samples keep in range, ``features_int.KIND_HEADROOM``)."""
        x_train = np.asarray(x_train, np.float32)
        if arithmetic not in ARITHMETICS:
            raise InputError(f"unknown preprocessing arithmetic {arithmetic!r}",
                             f"use one of: {', '.join(ARITHMETICS)}")
        if mode == "raw":
            arithmetic = "float64"  # raw mode is kept for earlier runs only
        shifts = None
        if arithmetic == "integer" and mode in ("per_window", "features"):
            from tinyml.data import features_int

            shifts = features_int.sample_shifts(x_train, headroom=headroom)
        if mode == "raw":
            values = x_train.reshape(-1, x_train.shape[-1])
        elif mode == "per_window" and shifts is not None:
            from tinyml.data import features_int

            values = features_int.levels_real(features_int.to_samples(x_train, shifts), shifts)
        elif mode == "per_window":
            values = window_levels(x_train)
        elif mode == "features":
            values = compute_feature_matrix(x_train, feature_spec, fs, shifts, stream)
        else:
            raise InputError(f"unknown preprocessing mode {mode!r}", f"use one of: {', '.join(MODES)}")
        mean = values.mean(axis=0)
        std = np.maximum(values.std(axis=0), MIN_STD)
        return cls(mode, int(x_train.shape[1]), list(channels), float(fs),
                   mean.astype(np.float32), std.astype(np.float32), feature_spec, arithmetic, shifts)

    @property
    def integer(self) -> bool:
        """True when the device computes this preprocessing in integers from raw windows."""
        return self.arithmetic == "integer" and self.mode in ("per_window", "features")

    def _check_windows(self, x: np.ndarray) -> None:
        if x.ndim != 3 or x.shape[1:] != (self.window, len(self.channels)):
            raise InputError(
                f"windows have shape {tuple(x.shape[1:])} but the model was trained on "
                f"({self.window}, {len(self.channels)})",
                "window the data the same way as the training data (same --window and channels)")

    @property
    def stateful(self) -> bool:
        """True when a window's inputs depend on the windows before it (``features_series.py``)."""
        return self.mode == "features" and any(e.get("name") == "daily_cycle" for e in self.feature_spec or [])

    def int8_inputs(self, x_windows: np.ndarray, in_scale: float, in_zp: int, *,
                    stream: Stream | None = None) -> np.ndarray:
        """The model's int8 inputs [N, input values] exactly as the device computes them (integer runs)."""
        from tinyml.data import features_int

        if not self.integer:
            raise InputError(f"this run preprocesses in {self.arithmetic} ({self.mode}): the host quantizes "
                             "its float inputs", "use quantize_input(apply(x)) for it")
        x = np.asarray(x_windows, np.float32)
        self._check_windows(x)
        if self.mode == "features":
            q = features_int.features_int8(x, self.fs, self.feature_spec, self.sample_shift, self.mean, self.std,
                                           in_scale, in_zp, stream)
        else:
            q = features_int.per_window_int8(x, self.sample_shift, self.mean, self.std, in_scale, in_zp)
        return q.reshape(q.shape[0], -1)

    def apply(self, x_windows: np.ndarray, *, stream: Stream | None = None) -> np.ndarray:
        """Windows [N, T, C] -> float32 model inputs ([N, T, 2C], [N, T, C] or [N, F]); ``stream`` places them
        in time for features with state across windows."""
        x = np.asarray(x_windows, np.float32)
        self._check_windows(x)
        if self.mode == "per_window" and self.integer:
            from tinyml.data import features_int

            return features_int.per_window_real(features_int.to_samples(x, self.sample_shift), self.sample_shift,
                                                self.mean, self.std)
        if self.mode == "per_window":
            return per_window_inputs(x, self.mean, self.std)
        if self.mode == "features":
            x = compute_feature_matrix(x, self.feature_spec, self.fs, self.sample_shift if self.integer else None,
                                       stream)
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_json(self) -> dict:
        out = {"mode": self.mode, "window": self.window, "channels": self.channels, "fs": self.fs,
               "mean": self.mean.tolist(), "std": self.std.tolist(), "feature_spec": self.feature_spec,
               "arithmetic": self.arithmetic}
        if self.sample_shift is not None:
            out["sample_shift"] = list(self.sample_shift)
        return out

    @classmethod
    def from_json(cls, obj: dict) -> Preprocess:
        if isinstance(obj, dict) and obj.get("mode") not in MODES:
            raise InputError(f"preprocess.json has unknown mode {obj.get('mode')!r}",
                             f"modes are {', '.join(MODES)}; re-run `tinyml train` to recreate it")
        arithmetic = obj.get("arithmetic", "float64") if isinstance(obj, dict) else None
        if arithmetic not in ARITHMETICS:
            raise InputError(f"preprocess.json has unknown arithmetic {arithmetic!r}",
                             f"arithmetics are {', '.join(ARITHMETICS)}; re-run `tinyml train` to recreate it")
        try:
            pre = cls(str(obj["mode"]), int(obj["window"]), [str(c) for c in obj["channels"]],
                      float(obj["fs"]), np.asarray(obj["mean"], np.float32),
                      np.asarray(obj["std"], np.float32), obj.get("feature_spec"), arithmetic,
                      None if obj.get("sample_shift") is None else [int(v) for v in obj["sample_shift"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"preprocess.json is incomplete or malformed ({exc})",
                             "re-run `tinyml train` to recreate it") from exc
        if pre.mode == "features" and pre.feature_spec is not None:
            from tinyml.data.features import feature_names

            width = len(feature_names(pre.feature_spec, pre.channels))
            if width != pre.mean.size or width != pre.std.size:
                raise InputError(f"preprocess.json: its feature spec gives {width} values but it standardises "
                                 f"{pre.mean.size} (written by another version of the features)",
                                 "re-run `tinyml train` to recreate it")
        if pre.integer and (pre.sample_shift is None or len(pre.sample_shift) != len(pre.channels)
                            or any(abs(v) > 100 for v in pre.sample_shift)):
            raise InputError("preprocess.json: integer arithmetic needs one sample_shift per channel",
                             "re-run `tinyml train` to recreate it")
        return pre

    @classmethod
    def from_run(cls, run_dir: str | Path) -> Preprocess:
        """A run's preprocess.json, checked against its model.json (``tinyml.rundir``)."""
        from tinyml.rundir import open_model

        return open_model(run_dir, bare=False).preprocess()

    def save(self, run_dir: str | Path) -> Path:
        """Write RUN_DIR/preprocess.json."""
        from tinyml.rundir import PREPROCESS_JSON

        return write_json(Path(run_dir) / PREPROCESS_JSON, self.to_json())


def compute_feature_matrix(x: np.ndarray, spec: list[dict] | None, fs: float,
                           sample_shift: list[int] | None = None, stream: Stream | None = None) -> np.ndarray:
    """Features [N, F] from windows with the data package's feature code (the single source of truth):
    the integer features (in real units) when ``sample_shift`` is given, else the float64 ones."""
    from tinyml.data.features import compute_features

    if spec is None:
        raise InputError("feature preprocessing needs a feature spec", "pass --features PRESET_OR_FILE")
    if sample_shift is not None:
        from tinyml.data import features_int

        return features_int.real_features(features_int.to_samples(x, sample_shift), fs, spec,
                                          sample_shift, stream).astype(np.float32)
    return np.asarray(compute_features(x, fs, spec), np.float32)


def window_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-window, per-channel mean and std [N, 1, C] in float64, summed in time order (as the C
    twin loops), the std floored at MIN_STD."""
    x = np.asarray(x, np.float64)
    total = np.zeros((x.shape[0], 1, x.shape[2]))
    for t in range(x.shape[1]):
        total[:, 0] += x[:, t]
    mean = total / x.shape[1]
    squares = np.zeros_like(total)
    for t in range(x.shape[1]):
        d = x[:, t] - mean[:, 0]
        squares[:, 0] += d * d
    return mean, np.maximum(np.sqrt(squares / x.shape[1]), MIN_STD)


def window_levels(x: np.ndarray) -> np.ndarray:
    """log(std) of every channel of every window [N, C], float32."""
    return np.log(window_stats(x)[1][:, 0]).astype(np.float32)


def per_window_inputs(x: np.ndarray, level_mean: np.ndarray, level_std: np.ndarray) -> np.ndarray:
    """[N, T, 2C]: each channel standardised within its window, then its standardised log level."""
    mean, std = window_stats(x)
    shape = ((np.asarray(x, np.float64) - mean) / std).astype(np.float32)
    level = (np.log(std).astype(np.float32) - np.asarray(level_mean, np.float32)) / np.asarray(level_std, np.float32)
    return np.concatenate([shape, np.broadcast_to(level, shape.shape)], axis=2)
