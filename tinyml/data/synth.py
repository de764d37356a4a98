"""Physics-based synthetic sensor data: rotating-machine vibration and machine temperature.

Both generators are seeded and reproducible, vary the operating point per recording,
give every recording a group id and split by group, so that windows of one recording
never sit on both sides of train/val/test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from tinyml import optioncheck as oc
from tinyml.data.bearings import load_bearing
from tinyml.data.dataset import Dataset
from tinyml.data.split import check_split, split_by_group
from tinyml.errors import InputError, OptionError

VIBRATION_CLASSES = ["healthy", "imbalance", "misalignment", "looseness", "bearing_outer", "bearing_inner"]
TEMPERATURE_CLASSES = ["normal", "step", "runaway", "stuck"]

# The machine's bearing: a deep-groove 6205 (bearings/6205-2RS.toml), BPFO ~3.58 and BPFI ~5.42 x shaft speed.
BEARING = load_bearing("6205-2RS")
BPFO_ORDER = BEARING.orders()["bpfo"]
BPFI_ORDER = BEARING.orders()["bpfi"]
SEVERITY = {"low": 0.4, "medium": 1.0, "high": 2.5}  # fault amplitude factor of each fault-size level


@dataclass(frozen=True, kw_only=True)
class VibrationOptions:
    per_class: int = 200          # windows per class
    window: int = 256             # samples per window
    fs: float = 2560.0            # Hz: Nyquist 1280 Hz holds the resonance band, envelope shows BPFO/BPFI
    rpm: float = 1500.0           # nominal shaft speed; each recording varies it by +-rpm_spread
    rpm_spread: float = 0.2
    windows_per_recording: int = 8
    val: float = 0.15
    test: float = 0.15
    seed: int = 0
    # Operating conditions as levels, each recording at one (for shift benchmarks: train on some
    # levels, test on others). None keeps the continuous draws below and records no column.
    severities: list[str] | None = None   # fault size: low, medium, high (fault amplitude x0.4, x1, x2.5)
    speeds: list[float] | None = None     # shaft speeds in rpm (each recording within +-1 % of its level)
    loads: list[float] | None = None      # load in % of rated: bearing impact force, slip, load zone
    resonances: list[float] | None = None  # housing resonance in Hz (within +-3 %) that fault impacts ring
    noise: list[float] | None = None      # sensor noise in g rms

    def check(self) -> None:
        _check_common(self)
        oc.positive(self, "rpm")
        if not 0 <= self.rpm_spread < 1:
            raise OptionError("rpm_spread", f"must be a fraction in [0, 1), got {self.rpm_spread}", "e.g. 0.2")
        for key in ("severities", "speeds", "loads", "resonances", "noise"):
            levels = getattr(self, key)
            if levels is not None and (not levels or len(set(levels)) != len(levels)):
                raise OptionError(key, f"must list distinct levels, got {levels}", "e.g. low,medium,high")
        bad = sorted(set(self.severities or []) - set(SEVERITY))
        if bad:
            raise OptionError("severities", f"unknown level(s) {', '.join(bad)}", f"use {', '.join(SEVERITY)}")
        for key, low, high in (("speeds", 1e-3, None), ("loads", 0, 100), ("resonances", 1e-3, self.fs / 2 / 1.03),
                               ("noise", 0, None)):
            for v in getattr(self, key) or []:
                if not math.isfinite(v) or v < low or (high is not None and v > high):
                    where = f"in [{low:g}, {high:g}]" if high is not None else f"at least {low:g}"
                    raise OptionError(key, f"level {v:g} is not {where}",
                                      "resonances must stay below fs/2" if key == "resonances" else
                                      "loads are percent of rated (0-100)" if key == "loads" else "use positive values")

    def levels(self) -> dict[str, list]:
        """The level lists given, by group column name."""
        return {k: v for k, v in (("severity", self.severities), ("speed", self.speeds), ("load", self.loads),
                                  ("resonance", self.resonances), ("noise", self.noise)) if v is not None}

    def rpm_range(self) -> list[float]:
        """The machine's operating speed range: the speed levels' (with their +-1 %), else rpm +- rpm_spread."""
        slip = 0.97 if self.loads else 1.0  # full load slows the shaft by up to 3 %
        if self.speeds:
            return [min(self.speeds) * 0.99 * slip, max(self.speeds) * 1.01]
        return [self.rpm * (1 - self.rpm_spread) * slip, self.rpm * (1 + self.rpm_spread)]


@dataclass(frozen=True, kw_only=True)
class TemperatureOptions:
    per_class: int = 150
    window: int = 128             # samples: about two hours at one sample per minute
    fs: float = 1.0 / 60.0        # Hz: one sample per minute, like a typical machine temperature logger
    windows_per_recording: int = 6
    val: float = 0.15
    test: float = 0.15
    seed: int = 0

    def check(self) -> None:
        _check_common(self)


def _check_common(o: VibrationOptions | TemperatureOptions) -> None:
    oc.at_least(o, "per_class", 1)
    oc.at_least(o, "window", 8)
    oc.at_least(o, "windows_per_recording", 1)
    oc.positive(o, "fs")
    oc.split_fractions(o)


def _recordings(per_class: int, wpr: int) -> list[int]:
    """Window counts of the recordings of one class (the last may be shorter)."""
    full, rest = divmod(per_class, wpr)
    return [wpr] * full + ([rest] if rest else [])


def _split_hint(o: VibrationOptions | TemperatureOptions) -> str:
    """What to change, in synth's own flags, when the recordings of a class cannot fill every split."""
    need = 1 + (o.val > 0) + (o.test > 0)  # whole recordings: one per side at least
    wpr = o.windows_per_recording
    hint = (f"each split takes whole recordings of --windows-per-recording {wpr} windows: "
            f"use --per-class {(need - 1) * wpr + 1} or more")
    if o.per_class >= need:
        hint += f", or --windows-per-recording {(o.per_class - 1) // (need - 1)}"
    return hint + ", or --val 0 --test 0"


# ---------------------------------------------------------------- vibration

def _impacts(t: np.ndarray, rate: float, f_n: float, zeta: float,
             amp: float | Callable[[np.ndarray], np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Train of decaying resonance bursts a*exp(-zeta*w_n*tau)*sin(w_d*tau), one per fault impact.

    Impacts repeat at ``rate`` Hz with 1-2 % random timing slip (rolling elements slide);
    ``amp`` is the impact amplitude, or a function of the impact times for modulated faults.
    """
    duration = t[-1] + 1 / rate
    n_imp = int(duration * rate) + 2
    times = np.cumsum(rng.normal(1.0, 0.015, n_imp).clip(0.9, 1.1) / rate) - rng.uniform(0, 1 / rate)
    amps = amp(times) if callable(amp) else np.full(times.shape, amp)
    w_n = 2 * np.pi * f_n
    w_d = w_n * np.sqrt(1 - zeta**2)
    out = np.zeros_like(t)
    ring = 5.0 / (zeta * w_n)  # a burst has decayed below 1 % after this long
    for t0, a in zip(times, amps, strict=True):
        sel = (t >= t0) & (t < t0 + ring)
        tau = t[sel] - t0
        out[sel] += a * np.exp(-zeta * w_n * tau) * np.sin(w_d * tau)
    return out


@dataclass(frozen=True)
class Condition:
    """One recording's operating point when the options give levels (None: the default draw)."""

    severity: float = 1.0           # fault amplitude factor
    rpm: float | None = None
    load: float | None = None       # percent of rated
    resonance: float | None = None  # Hz
    noise: float | None = None      # g rms


def _conditions(o: VibrationOptions, index: int, rng: np.random.Generator) -> tuple[Condition, dict[str, str]]:
    """The operating point of a class's ``index``-th recording: the levels in mixed radix (severity
    fastest), so every combination occurs once the class has enough recordings; and its group columns."""
    picked: dict[str, float | str] = {}
    for name, levels in o.levels().items():
        picked[name] = levels[index % len(levels)]
        index //= len(levels)
    jitter = {"speed": rng.uniform(0.99, 1.01), "resonance": rng.uniform(0.97, 1.03)} if picked else {}
    cond = Condition(severity=SEVERITY[picked["severity"]] if "severity" in picked else 1.0,
                     rpm=picked["speed"] * jitter["speed"] if "speed" in picked else None,
                     load=picked.get("load"), noise=picked.get("noise"),
                     resonance=picked["resonance"] * jitter["resonance"] if "resonance" in picked else None)
    return cond, {k: v if isinstance(v, str) else f"{v:g}" for k, v in picked.items()}


def _vibration_recording(cls: str, n: int, o: VibrationOptions, rng: np.random.Generator,
                         c: Condition = Condition()) -> tuple[np.ndarray, float]:
    """One continuous 3-axis recording [n, 3] in g: x, y radial (y vertical, 1 g gravity), z axial,
    and its shaft speed in rpm.

    Physics, per class:
    - every machine: residual unbalance gives a 1x rotating force (x and y 90 deg apart),
      amplitude growing with speed squared (centrifugal force m*e*w^2); a little 2x; broadband noise.
    - imbalance: the 1x radial component is 4-9x larger; axial stays small.
    - misalignment: strong 2x radial plus large axial 1x and 2x (angular misalignment bends the coupling).
    - looseness: the part rattles once per revolution, so the response is a clipped/rectified 1x,
      rich in harmonics (2x..10x) and sub-harmonics (0.5x), with random phases.
    - bearing outer race: a ball passing the fixed defect strikes it at BPFO = 3.59 x shaft; each strike
      rings the housing resonance f_n (700-1100 Hz at the default fs) with damping 3-6 %; constant amplitude
      because the defect stays in the load zone.
    - bearing inner race: strikes at BPFI = 5.42 x shaft, amplitude-modulated at the shaft speed because the
      defect rotates in and out of the load zone.
    - sensor: per-axis gain error (+-3 %) and slow gain drift, white noise, occasional spikes
      (EMI, 0.1-0.3 g) and dropouts (a bus hiccup: a few stale reads repeat the last sample).
      Outliers stay moderate on purpose: they set the int8 input range, and a range blown up
      by rare glitches would leave the small healthy signals only a few quantization steps.

    A ``Condition`` with levels (``VibrationOptions.levels``) replaces the default draws: fault
    size scales every fault's amplitude; load L (% of rated) slows an induction motor by up to
    3 % slip, scales the bearing impact force (0.5 + L/100) and the misalignment forces
    (0.7 + 0.6 L/100), and widens the load zone, so an inner-race defect is modulated less
    (depth 0.45 (1 - 0.5 L/100)). Random draws happen in the same order either way, so a level
    changes only what it names.
    """
    fs = o.fs
    f_r = o.rpm / 60.0 * rng.uniform(1 - o.rpm_spread, 1 + o.rpm_spread)
    load = 1.0 if c.load is None else c.load / 100.0
    if c.rpm is not None:
        f_r = c.rpm / 60.0
    if c.load is not None:
        f_r *= 1 - 0.03 * load
    t = np.arange(n) / fs
    w = 2 * np.pi * f_r
    speed2 = (f_r / (o.rpm / 60.0)) ** 2
    ph = rng.uniform(0, 2 * np.pi, 8)
    base1x = rng.uniform(0.02, 0.05) * speed2
    x = base1x * np.cos(w * t + ph[0]) + 0.01 * np.cos(2 * w * t + ph[1])
    y = base1x * np.sin(w * t + ph[0]) + 0.01 * np.sin(2 * w * t + ph[1])
    z = 0.2 * base1x * np.cos(w * t + ph[2])
    f_n = rng.uniform(0.27, 0.43) * fs
    if c.resonance is not None:
        f_n = c.resonance
    zeta = rng.uniform(0.03, 0.06)
    sev = c.severity
    if cls == "imbalance":
        excess = rng.uniform(3.0, 8.0)
        a = base1x * (excess if sev == 1.0 else 1 + (excess - 1) * sev)  # fault size scales the excess over 1x
        x += a * np.cos(w * t + ph[0])
        y += a * np.sin(w * t + ph[0])
    elif cls == "misalignment":
        force = sev * (1.0 if c.load is None else 0.7 + 0.6 * load)
        a2 = rng.uniform(0.04, 0.12) * speed2 * force
        x += a2 * np.cos(2 * w * t + ph[3])
        y += a2 * np.cos(2 * w * t + ph[4])
        z += rng.uniform(0.05, 0.12) * speed2 * force * np.cos(w * t + ph[5]) + a2 * 0.8 * np.cos(2 * w * t + ph[6])
    elif cls == "looseness":
        rattle = np.zeros_like(t)
        for h in range(1, 11):
            rattle += rng.uniform(0.4, 1.0) / h**0.6 * np.cos(h * w * t + rng.uniform(0, 2 * np.pi))
        rattle += rng.uniform(0.2, 0.5) * np.cos(0.5 * w * t + ph[7])
        rattle *= rng.uniform(0.05, 0.12) * speed2 * sev
        x += rattle * rng.uniform(0.6, 1.0)
        y += np.clip(rattle, 0, None) * 1.5
    elif cls in ("bearing_outer", "bearing_inner"):
        severity = rng.uniform(0.15, 0.4) * sev * (1.0 if c.load is None else 0.5 + load)
        if cls == "bearing_outer":
            burst = _impacts(t, BPFO_ORDER * f_r, f_n, zeta, severity, rng)
        else:
            load_phase = rng.uniform(0, 2 * np.pi)
            depth = 0.45 if c.load is None else 0.45 * (1 - 0.5 * load)
            burst = _impacts(t, BPFI_ORDER * f_r, f_n, zeta,
                             lambda ts: severity * (1 - depth + depth * np.cos(w * ts + load_phase)), rng)
        x += burst * rng.uniform(0.5, 1.0)
        y += burst
        z += burst * rng.uniform(0.1, 0.3)
    sig = np.stack([x, y + 1.0, z], axis=1)
    gain = rng.uniform(0.97, 1.03, 3) * (1 + np.outer(t / t[-1], rng.uniform(-0.02, 0.02, 3)))
    noise = rng.uniform(0.01, 0.03)
    sig = sig * gain + rng.normal(0, noise if c.noise is None else c.noise, sig.shape)
    for _ in range(rng.poisson(0.3 * n / o.window)):  # EMI spikes: single samples, any axis
        sig[rng.integers(n), rng.integers(3)] += rng.choice([-1, 1]) * rng.uniform(0.1, 0.3)
    for _ in range(rng.poisson(0.1 * n / o.window)):  # dropouts: a few stale reads repeat the last sample
        s = rng.integers(1, n)
        sig[s:s + rng.integers(2, 8)] = sig[s - 1]
    return sig, f_r * 60.0


def synth_vibration(o: VibrationOptions = VibrationOptions()) -> Dataset:
    """Windows of 3-axis accelerometer data for six machine conditions (see ``_vibration_recording``)."""
    o.check()
    if o.rpm_range()[1] / 60 * BPFI_ORDER * 2 > o.fs / 2:
        flag = "--speeds" if o.speeds else "--rpm"
        raise InputError(f"{flag} {max(o.speeds) if o.speeds else o.rpm:g} does not fit --fs {o.fs:g}: bearing fault "
                         "harmonics would alias", f"lower {flag} or raise --fs (fs should exceed about 20x the shaft "
                         "frequency)")

    def make(cls: str, index: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float, dict[str, str]]:
        cond, columns = _conditions(o, index, rng)
        return (*_vibration_recording(cls, n, o, rng, cond), columns)

    return _assemble(VIBRATION_CLASSES, o, make, ["x", "y", "z"], "vibration", "healthy", "vibration")


# ---------------------------------------------------------------- temperature

def _temperature_recording(cls: str, n: int, o: TemperatureOptions, windows: int,
                           rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One continuous temperature trace [n, 1] in deg C, an anomaly injected into every window.

    Physics: ambient follows a daily sine (2-5 deg C around 18-26 deg C); the machine runs
    load cycles (levels held 20-90 min) and heats with a first-order thermal lag
    dT/dt = (T_amb + R*load - T)/tau (tau 30-90 min, the housing time constant of a small
    motor or gearbox; R 8-20 deg C at full load). The sensor
    drifts slowly (+-0.5 deg C/day), adds noise (0.05-0.1 deg C) and reads in 0.0625 deg C steps
    (DS18B20-like).
    Anomalies: ``step`` a sudden offset of 1.5-5 deg C (a loose probe, a calibration jump);
    ``runaway`` a temperature that accelerates upwards (t^2, 8-20 deg C by the window end, the
    range where bearing-temperature alarms trip) as before a bearing or winding failure;
    ``stuck`` the reading freezes at one value.
    A first-order lag only decelerates towards its set point, so sustained acceleration is what
    tells a runaway from a load change; a lag as fast as the load holds would fill the normal
    traces with steep rises that hide small runaways.
    """
    dt = 1.0 / o.fs
    t = np.arange(n) * dt
    t0 = rng.uniform(0, 86400)
    amb = rng.uniform(18, 26) + rng.uniform(2, 5) * np.sin(2 * np.pi * (t + t0) / 86400)
    load = np.empty(n)
    i = 0
    while i < n:
        hold = max(1, int(rng.uniform(20, 90) * 60 / dt))
        load[i:i + hold] = rng.choice([0.0, 0.3, 0.6, 1.0])
        i += hold
    tau, rise = rng.uniform(1800, 5400), rng.uniform(8, 20)
    temp = np.empty(n)
    temp[0] = amb[0] + rise * load[0]
    alpha = 1 - np.exp(-dt / tau)
    for k in range(1, n):
        temp[k] = temp[k - 1] + alpha * (amb[k] + rise * load[k] - temp[k - 1])
    temp += rng.uniform(-0.5, 0.5) * t / 86400 + rng.normal(0, rng.uniform(0.05, 0.1), n)
    w = o.window
    for k in range(windows if cls != "normal" else 0):
        start = k * w + int(rng.uniform(0.2, 0.7) * w)
        end = (k + 1) * w
        if cls == "step":
            temp[start:end] += rng.choice([-1, 1]) * rng.uniform(1.5, 5.0)
        elif cls == "runaway":
            ramp = ((np.arange(end - start) + 1) / (end - start)) ** 2
            temp[start:end] += rng.uniform(8.0, 20.0) * ramp
        elif cls == "stuck":
            temp[start:end] = temp[start]
    return (np.round(temp / 0.0625) * 0.0625)[:, None], float("nan")


def synth_temperature(o: TemperatureOptions = TemperatureOptions()) -> Dataset:
    """Windows of machine temperature, normal and three anomaly kinds (normal_class "normal")."""
    o.check()
    return _assemble(TEMPERATURE_CLASSES, o,
                     lambda cls, index, n, rng: (*_temperature_recording(cls, n, o, n // o.window, rng), {}),
                     ["temp"], "temperature", "normal", "temperature")


# ---------------------------------------------------------------- shared assembly

def _assemble(classes: list[str], o: VibrationOptions | TemperatureOptions, make, channels: list[str],
              kind: str, normal_class: str, generator: str) -> Dataset:
    """Generate each recording, cut it into consecutive windows, then split by recording.
    ``make(cls, index, n, rng)`` gives a recording [n, C], its shaft speed (NaN for none) and its
    group columns {name: value}."""
    rng = np.random.default_rng(o.seed)
    xs, ys, gs, rpms = [], [], [], []
    columns: dict[str, list[str]] = {}
    for ci, cls in enumerate(classes):
        for ri, count in enumerate(_recordings(o.per_class, o.windows_per_recording)):
            rec, rpm, values = make(cls, ri, count * o.window, rng)
            xs.append(rec.reshape(count, o.window, rec.shape[1]))
            ys += [ci] * count
            rpms += [rpm] * count
            gs += [f"{cls}-{ri:03d}"] * count
            for k, v in values.items():
                columns.setdefault(k, []).extend([v] * count)
    x, y, groups = np.concatenate(xs).astype(np.float32), np.array(ys), np.array(gs)
    try:
        split = split_by_group(groups, y, o.val, o.test, o.seed)
        check_split(split, o.val > 0, o.test > 0)
    except InputError:
        have = len(_recordings(o.per_class, o.windows_per_recording))
        raise InputError(f"--per-class {o.per_class} makes {have} recording(s) per class, too few to give "
                         "train, val and test whole recordings", _split_hint(o)) from None
    meta = {"generator": f"tinyml.data.synth.{generator}", "options": asdict(o)}
    rpm = np.array(rpms, np.float64)
    if kind == "vibration":  # the machine: its bearing and operating speed range
        meta["bearing"] = BEARING.to_json()
        meta["rpm_range"] = o.rpm_range()
    return Dataset(x, y, classes, channels, o.fs, split, groups, kind, normal_class, meta,
                   rpm=None if np.isnan(rpm).all() else rpm, columns={k: np.array(v) for k, v in columns.items()})


# ---------------------------------------------------------------- single windows (emulated sensors)

SENSOR_CLASSES = {"vibration": VIBRATION_CLASSES, "temperature": TEMPERATURE_CLASSES}


def synth_windows(kind: str, condition: str, count: int, window: int, fs: float,
                  rng: np.random.Generator) -> np.ndarray:
    """``count`` consecutive windows [count, window, C] of one machine condition, from the same
    physics as the datasets above: what an emulated device's sensor reads."""
    classes = SENSOR_CLASSES.get(kind)
    if classes is None or condition not in classes:
        raise InputError(f"no {kind} condition {condition!r}",
                         f"use one of: {', '.join(classes or [])}" if classes else "use vibration or temperature")
    if kind == "vibration":
        o = VibrationOptions(window=window, fs=fs)
        rec, _ = _vibration_recording(condition, count * window, o, rng)
    else:
        t = TemperatureOptions(window=window, fs=fs)
        rec, _ = _temperature_recording(condition, count * window, t, count, rng)
    return rec.reshape(count, window, rec.shape[1]).astype(np.float32)
