"""Bearing kinematics as data: a bearing's geometry and the shaft speed give its defect frequencies.

A bearing is one TOML file in ``bearings/`` (``TINYML_HOME/bearings`` for a user's own, or a
path to a ``.toml``): the number of rolling elements, ball and pitch diameters and the contact
angle. Why data: where a defect sits (outer race, inner race, ball, cage) sets the frequency of
its impacts, as a multiple ("order") of the shaft speed that follows from this geometry alone;
its size mostly sets their amplitude. Features read at these orders therefore carry the physics
across speeds and defect sizes (``features_bearing.py``).

Orders, with d the ball and D the pitch diameter, phi the contact angle, n the elements:
  FTF  = 1/2 (1 - d/D cos phi)                 cage (fundamental train)
  BPFO = n/2 (1 - d/D cos phi)                 ball pass, outer race
  BPFI = n/2 (1 + d/D cos phi)                 ball pass, inner race
  BSF  = D/(2d) (1 - (d/D cos phi)^2)          ball spin; a ball defect strikes both races, so
                                                its line is usually at 2 x BSF
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomllib

from tinyml.errors import InputError
from tinyml.paths import data_dirs

ORDER_NAMES = ("ftf", "bpfo", "bpfi", "bsf")
SEAL_SUFFIX = re.compile(r"-(2RS\w*|RS\w*|2Z\w*|ZZ\w*|Z)$")  # seals and shields do not change the geometry


@dataclass(frozen=True)
class Bearing:
    name: str
    rolling_elements: int
    ball_diameter_mm: float
    pitch_diameter_mm: float
    contact_angle_deg: float = 0.0
    description: str = ""

    def orders(self) -> dict[str, float]:
        """FTF, BPFO, BPFI and BSF as multiples of the shaft speed."""
        r = self.ball_diameter_mm / self.pitch_diameter_mm * math.cos(math.radians(self.contact_angle_deg))
        n = self.rolling_elements
        return {"ftf": 0.5 * (1 - r), "bpfo": n / 2 * (1 - r), "bpfi": n / 2 * (1 + r),
                "bsf": self.pitch_diameter_mm / (2 * self.ball_diameter_mm) * (1 - r * r)}

    def frequencies(self, rpm: float) -> dict[str, float]:
        """The characteristic frequencies in Hz at a shaft speed in rpm."""
        return {k: v * rpm / 60.0 for k, v in self.orders().items()}

    def to_json(self) -> dict:
        """What a dataset records: the geometry and the orders it gives."""
        return {"name": self.name, "rolling_elements": self.rolling_elements,
                "ball_diameter_mm": self.ball_diameter_mm, "pitch_diameter_mm": self.pitch_diameter_mm,
                "contact_angle_deg": self.contact_angle_deg, "orders": self.orders()}


def _base(name: str) -> str:
    return SEAL_SUFFIX.sub("", name.strip().upper())


def bearing_files() -> dict[str, Path]:
    """Known bearings by file name (first folder wins: TINYML_HOME, then the built-in ones)."""
    out: dict[str, Path] = {}
    for d in data_dirs("bearings"):
        for path in sorted(d.glob("*.toml")):
            out.setdefault(path.stem, path)
    return out


def load_bearing(name_or_path: str | Path) -> Bearing:
    """A bearing by name (``6205-2RS``; ``6205`` or ``6205-ZZ`` find it too) or a path to a ``.toml``."""
    text = str(name_or_path)
    if text.endswith(".toml"):
        path = Path(text)
        if not path.is_file():
            raise InputError(f"bearing file not found: {path}", "give a path to an existing bearing .toml")
    else:
        files = bearing_files()
        path = files.get(text) or next((p for stem, p in files.items() if _base(stem) == _base(text)), None)
        if path is None or "/" in text or "\\" in text:
            raise InputError(f"unknown bearing {text!r}; known bearings: {', '.join(files) or 'none'}",
                             "pass a path to your own bearing .toml (keys in docs/architecture.md)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"bearing file {path} is not valid TOML: {exc}", "fix the syntax") from exc
    return parse_bearing(data, str(path), default_name=path.stem)


def parse_bearing(data: object, where: str, *, default_name: str = "bearing") -> Bearing:
    """Check a bearing table (from a file or a dataset's record)."""
    hint = "keys: rolling_elements, ball_diameter_mm, pitch_diameter_mm, contact_angle_deg (docs/architecture.md)"
    if not isinstance(data, dict):
        raise InputError(f"{where}: a bearing must be a table", hint)
    unknown = sorted(set(data) - {"name", "description", "rolling_elements", "ball_diameter_mm",
                                  "pitch_diameter_mm", "contact_angle_deg", "orders"})
    if unknown:
        raise InputError(f"{where}: unknown bearing key {unknown[0]!r}", hint)

    def number(key: str, default: float | None = None) -> float:
        v = data.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"{where}: {key} must be a number, got {v!r}", hint)
        return float(v)

    n = data.get("rolling_elements")
    if isinstance(n, bool) or not isinstance(n, int) or not 3 <= n <= 200:
        raise InputError(f"{where}: rolling_elements must be a whole number 3..200, got {n!r}", hint)
    d, pd, angle = number("ball_diameter_mm"), number("pitch_diameter_mm"), number("contact_angle_deg", 0.0)
    if not 0 < d < pd:
        raise InputError(f"{where}: need 0 < ball_diameter_mm < pitch_diameter_mm, got {d} and {pd}", hint)
    if not 0 <= angle < 90:
        raise InputError(f"{where}: contact_angle_deg must be in [0, 90), got {angle}", hint)
    name, desc = data.get("name", default_name), data.get("description", "")
    if not isinstance(name, str) or not isinstance(desc, str):
        raise InputError(f"{where}: name and description must be strings", hint)
    return Bearing(name, n, d, pd, angle, desc)


def bearing_from_meta(meta: dict) -> Bearing | None:
    """The bearing a dataset recorded (``meta["bearing"]``), or None."""
    entry = meta.get("bearing") if isinstance(meta, dict) else None
    return None if entry is None else parse_bearing(entry, "dataset meta")


# ---------------------------------------------------------------- the shaft speed of a recording

ESTIMATE_HARMONICS = 3     # 1x, 2x, 3x vote for the shaft frequency
ESTIMATE_ZOOM = 8          # zero padding: spectrum points per natural bin


def estimate_shaft_hz(signal: np.ndarray, fs: float, lo_hz: float, hi_hz: float) -> float:
    """The shaft frequency of one recording [T] or [T, C] from its spectrum's 1x peak in [lo_hz, hi_hz].

    Hann window, zero padding to ESTIMATE_ZOOM points per bin, the channels' power summed, and
    each candidate scored by the power at 1x, 2x and 3x (a strong 2x of misalignment does not
    win over its own 1x), then the peak refined by a parabola through the log power. Accuracy
    (tests/test_bearings.py): within 0.3 % for 2 s at 20-60 Hz with the 1x 20 dB over
    broadband noise; the error falls with the recording's length (resolution fs / T).
    """
    x = np.asarray(signal, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    t = x.shape[0]
    if t < 16 or not (0 < lo_hz < hi_hz < fs / 2):
        raise InputError(f"cannot estimate the shaft speed in {lo_hz:g}..{hi_hz:g} Hz from {t} samples at {fs:g} Hz",
                         "give the speed with --rpm or --rpm-column, or a range below fs/2 with --rpm-range")
    n = 1 << int(math.ceil(math.log2(t * ESTIMATE_ZOOM)))
    x = (x - x.mean(axis=0)) * np.hanning(t)[:, None]
    power = (np.abs(np.fft.rfft(x, n, axis=0)) ** 2).sum(axis=1)
    df = fs / n
    k = np.arange(int(math.ceil(lo_hz / df)), int(math.floor(hi_hz / df)) + 1)
    if k.size < 3:
        raise InputError(f"the recording is too short to resolve {lo_hz:g}..{hi_hz:g} Hz",
                         "give the speed with --rpm or use longer recordings")
    score = sum(power[np.minimum(h * k, power.size - 1)] for h in range(1, ESTIMATE_HARMONICS + 1))
    i = int(k[int(np.argmax(score))])
    near = np.arange(max(i - ESTIMATE_ZOOM, 1), min(i + ESTIMATE_ZOOM, power.size - 2) + 1)
    i = int(near[int(np.argmax(power[near]))])   # the 1x peak itself, near the best comb
    a, b, c = np.log(power[i - 1:i + 2] + 1e-300)
    den = a - 2 * b + c
    delta = 0.5 * (a - c) / den if den < 0 else 0.0
    return float((i + np.clip(delta, -0.5, 0.5)) * df)
