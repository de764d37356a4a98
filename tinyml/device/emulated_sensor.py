"""An emulated TMP105 on QEMU's mps2-an386 I2C bus, its temperature driven from the host.

QEMU 7.2 emulates the TI TMP105 (``-device tmp105,address=0x48``); it lands on the board's
last SBCon I2C controller (0x4002a000, ``i2c0`` in boards/qemu-mps2-an386.toml), and its
``temperature`` property (millidegrees Celsius) can be set over QMP while the guest runs.
``TemperatureDriver`` plays a temperature profile into it from a thread: a noisy normal
level, then the fault the test or the demo asks for, so the firmware's own I2C driver reads
what a real probe would see.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tinyml.device.qmp import Qmp

SENSOR_ID = "sensor"
SENSOR_PATH = f"/machine/peripheral/{SENSOR_ID}"
UPDATE_S = 0.05  # well below the firmware's sample period, so no sample sees a stale value twice


def i2c_device_args(qmp_socket: str | Path, device: str = "tmp105", address: int = 0x48) -> tuple[str, ...]:
    """QEMU arguments: ``device`` at ``address`` on the default I2C bus, and a QMP socket."""
    extra = ",rom-size=256" if device == "at24c-eeprom" else ""
    return ("-device", f"{device},address={address:#04x},id={SENSOR_ID}{extra}",
            "-qmp", f"unix:{qmp_socket},server=on,wait=off")


def normal(level: float = 24.0, noise: float = 0.07, seed: int = 1) -> Callable[[float], float]:
    """A machine at a steady load: a level with sensor noise (as the synthetic normal data)."""
    rng = random.Random(seed)
    return lambda t: level + 0.3 * math.sin(t / 40.0) + rng.gauss(0.0, noise)


def ramp(start: float, after: Callable[[float], float], rise: float = 10.0, over_s: float = 10.0
         ) -> Callable[[float], float]:
    """A runaway from ``start`` seconds on: ``rise`` degC after ``over_s`` s, accelerating (t^2)."""
    return lambda t: after(t) + (rise * ((t - start) / over_s) ** 2 if t > start else 0.0)


class TemperatureDriver:
    """Sets the emulated TMP105 to ``profile(seconds since start)`` every UPDATE_S in a thread."""

    def __init__(self, qmp: Qmp, profile: Callable[[float], float]):
        self.qmp, self.profile = qmp, profile
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()
        self.error: BaseException | None = None

    def set(self, degc: float) -> None:
        milli = max(-40000, min(125000, round(degc * 1000)))
        self.qmp.set_property(SENSOR_PATH, "temperature", milli)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> TemperatureDriver:
        self.set(self.profile(0.0))
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.wait(UPDATE_S):
                self.set(self.profile(self.now()))
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
