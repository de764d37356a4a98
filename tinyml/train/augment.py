"""Training-time augmentation of raw windows, for models that must hold up under shift.

A model is trained on the faults and operating points someone could record, and deployed where
faults grow, speeds change, sensors are noisier and every machine rings at its own resonance.
Each augmentation adds copies of the training windows with one such change drawn at random:

- ``gain``: the vibration (each channel minus its window mean, so gravity stays) scaled by a
  factor drawn log-uniformly in [1/gain, gain]: a larger or smaller fault, another load.
- ``speed``: the window resampled (linear interpolation) by a factor drawn log-uniformly in
  [1/(1+speed), 1+speed]: every shaft order and fault frequency moves with it. Resampling also
  moves the structure's resonance, which a real speed change does not; ``resonance`` covers that.
- ``snr``: white noise added per channel at this signal-to-noise ratio in dB (of the window's
  vibration power): a noisier sensor or mounting.
- ``resonance``: a peaking filter (RBJ biquad) at a random frequency in [0.05, 0.45] fs,
  Q in [2, 10], raising that band by up to this many dB: another housing resonance.

Draws come from one generator seeded by the run's seed, so a run is reproducible; with every
option at its default nothing is added and training is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from tinyml.errors import OptionError

SEED_SALT = 0x617567  # keeps augmentation draws apart from Keras's stream for the same seed


@dataclass(frozen=True, kw_only=True)
class Augment:
    gain: float = 1.0
    speed: float = 0.0
    snr: float | None = None
    resonance: float = 0.0
    copies: int = 1

    @property
    def active(self) -> bool:
        return self.gain > 1.0 or self.speed > 0.0 or self.snr is not None or self.resonance > 0.0

    def check(self, prefix: str = "augment_") -> None:
        if not (math.isfinite(self.gain) and 1.0 <= self.gain <= 100.0):
            raise OptionError(f"{prefix}gain", f"must be a factor in [1, 100], got {self.gain}", "e.g. 2 (1: off)")
        if not 0.0 <= self.speed < 1.0:
            raise OptionError(f"{prefix}speed", f"must be a fraction in [0, 1), got {self.speed}", "e.g. 0.2 (0: off)")
        if self.snr is not None and not -20.0 <= self.snr <= 80.0:
            raise OptionError(f"{prefix}snr", f"must be in [-20, 80] dB, got {self.snr}", "e.g. 20")
        if not 0.0 <= self.resonance <= 40.0:
            raise OptionError(f"{prefix}resonance", f"must be in [0, 40] dB, got {self.resonance}", "e.g. 12 (0: off)")
        if not 1 <= self.copies <= 20:
            raise OptionError(f"{prefix}copies", f"must be in [1, 20], got {self.copies}", "e.g. 1")

    def record(self) -> dict | None:
        """What model.json keeps: the settings, or None when nothing was augmented."""
        return asdict(self) if self.active else None


def augment(x: np.ndarray, y: np.ndarray, fs: float, a: Augment, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training windows [N, T, C] and labels followed by ``a.copies`` augmented copies of each."""
    if not a.active:
        return x, y
    rng = np.random.default_rng((seed, SEED_SALT))
    x = np.asarray(x, np.float32)
    copies = []
    for _ in range(a.copies):
        c = x.astype(np.float64)
        if a.speed > 0:
            c = _resample(c, np.exp(rng.uniform(-1, 1, len(c)) * math.log1p(a.speed)), rng)
        if a.resonance > 0:
            c = _resonate(c, fs, rng, a.resonance)
        mean = c.mean(axis=1, keepdims=True)
        if a.gain > 1:
            c = mean + (c - mean) * np.exp(rng.uniform(-1, 1, (len(c), 1, 1)) * math.log(a.gain))
        if a.snr is not None:
            power = ((c - mean) ** 2).mean(axis=1, keepdims=True)
            c = c + rng.standard_normal(c.shape) * np.sqrt(power / 10 ** (a.snr / 10))
        copies.append(c.astype(np.float32))
    return np.concatenate([x, *copies]), np.concatenate([y] * (a.copies + 1))


def _resample(x: np.ndarray, rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each window read at ``rate`` times its speed: slower ones from a random start inside the
    window, faster ones mirrored at the end (continuous, no jump)."""
    n, t, _ = x.shape
    out = np.empty_like(x)
    steps = np.arange(t, dtype=np.float64)
    for i in range(n):
        r = rates[i]
        start = rng.uniform(0, (1 - r) * (t - 1)) if r < 1 else 0.0
        pos = start + r * steps
        period = 2 * (t - 1)
        pos = np.mod(pos, period)
        pos = np.where(pos > t - 1, period - pos, pos)
        lo = np.minimum(np.floor(pos).astype(int), t - 2)
        frac = (pos - lo)[:, None]
        out[i] = x[i, lo] * (1 - frac) + x[i, lo + 1] * frac
    return out


def _resonate(x: np.ndarray, fs: float, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """Each window through its own peaking biquad (RBJ audio cookbook), warmed up on the window
    mirrored in time so that the filter's start-up transient does not sit in the output."""
    n, t, c = x.shape
    f0 = rng.uniform(0.05, 0.45, n) * fs
    q = rng.uniform(2, 10, n)
    amp = 10 ** (rng.uniform(0, max_db, n) / 40)
    w0 = 2 * np.pi * f0 / fs
    alpha = np.sin(w0) / (2 * q)
    a0 = 1 + alpha / amp
    b = np.stack([1 + alpha * amp, -2 * np.cos(w0), 1 - alpha * amp]) / a0   # [3, N]
    a = np.stack([-2 * np.cos(w0), 1 - alpha / amp]) / a0                   # [2, N]
    sig = np.concatenate([x[:, ::-1], x], axis=1)
    out = np.zeros_like(sig)
    x1 = x2 = y1 = y2 = np.zeros((n, c))
    bb = [v[:, None] for v in b]
    aa = [v[:, None] for v in a]
    for k in range(sig.shape[1]):
        xk = sig[:, k]
        yk = bb[0] * xk + bb[1] * x1 + bb[2] * x2 - aa[0] * y1 - aa[1] * y2
        out[:, k] = yk
        x2, x1, y2, y1 = x1, xk, y1, yk
    return out[:, t:]
