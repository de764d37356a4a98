"""Turn dataset windows into model inputs exactly as training did.

One ``Preprocess`` is fitted on the training split and saved as ``preprocess.json``; predict,
quantize, validation and the emulator load it back, so every consumer feeds the model the same
numbers. Two modes:
  raw       per-channel standardisation of the windows (cnn1d), input [T, C]
  features  ``compute_features`` with the saved spec, then per-feature standardisation
            (mlp, autoencoder), input [F]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml.errors import InputError
from tinyml.train.artifacts import PREPROCESS_JSON, read_json, write_json

MIN_STD = 1e-6  # a constant channel must not divide by zero


@dataclass(frozen=True)
class Preprocess:
    mode: str                      # "raw" or "features"
    window: int                    # samples per window (T)
    channels: list[str]
    fs: float
    mean: np.ndarray               # per channel (raw) or per feature (features)
    std: np.ndarray
    feature_spec: list[dict] | None = None

    @classmethod
    def fit(cls, x_train: np.ndarray, mode: str, channels: list[str], fs: float,
            feature_spec: list[dict] | None = None) -> Preprocess:
        """Fix the normalisation constants on the training windows."""
        x_train = np.asarray(x_train, np.float32)
        if mode == "raw":
            values = x_train.reshape(-1, x_train.shape[-1])
        elif mode == "features":
            values = compute_feature_matrix(x_train, feature_spec, fs)
        else:
            raise InputError(f"unknown preprocessing mode {mode!r}", "use 'raw' or 'features'")
        mean = values.mean(axis=0)
        std = np.maximum(values.std(axis=0), MIN_STD)
        return cls(mode, int(x_train.shape[1]), list(channels), float(fs),
                   mean.astype(np.float32), std.astype(np.float32), feature_spec)

    def apply(self, x_windows: np.ndarray) -> np.ndarray:
        """Windows [N, T, C] -> float32 model inputs ([N, T, C] or [N, F])."""
        x = np.asarray(x_windows, np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.window, len(self.channels)):
            raise InputError(
                f"windows have shape {tuple(x.shape[1:])} but the model was trained on "
                f"({self.window}, {len(self.channels)})",
                "window the data the same way as the training data (same --window and channels)")
        if self.mode == "features":
            x = compute_feature_matrix(x, self.feature_spec, self.fs)
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_json(self) -> dict:
        return {"mode": self.mode, "window": self.window, "channels": self.channels, "fs": self.fs,
                "mean": self.mean.tolist(), "std": self.std.tolist(), "feature_spec": self.feature_spec}

    @classmethod
    def from_json(cls, obj: dict) -> Preprocess:
        try:
            return cls(str(obj["mode"]), int(obj["window"]), [str(c) for c in obj["channels"]],
                       float(obj["fs"]), np.asarray(obj["mean"], np.float32),
                       np.asarray(obj["std"], np.float32), obj.get("feature_spec"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"preprocess.json is incomplete or malformed ({exc})",
                             "re-run `tinyml train` to recreate it") from exc

    @classmethod
    def from_run(cls, run_dir: str | Path) -> Preprocess:
        return cls.from_json(read_json(Path(run_dir) / PREPROCESS_JSON, "preprocessing constants"))

    def save(self, run_dir: str | Path) -> Path:
        return write_json(Path(run_dir) / PREPROCESS_JSON, self.to_json())


def compute_feature_matrix(x: np.ndarray, spec: list[dict] | None, fs: float) -> np.ndarray:
    """Features [N, F] from windows with the data package's feature code (the single source of truth)."""
    from tinyml.data.features import compute_features

    if spec is None:
        raise InputError("feature preprocessing needs a feature spec", "pass --features PRESET_OR_FILE")
    return np.asarray(compute_features(x, fs, spec), np.float32)
