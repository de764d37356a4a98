"""Sensors are data plus one C driver: ``firmware_templates/sensors/NAME.toml`` + ``DRIVER.c``.

``load_sensor`` reads a data file (bus, address, identity register, rates, ranges, channels,
units); ``plan_sensor`` checks it against the board (does it have such a bus, or the on-chip
sensor?) and the model (sampling rate, channel count), and refuses with the reason when the
sensor cannot deliver what the model was trained on; ``sensor_config_header`` turns a plan into
the ``tinyml_sensor_config.h`` the driver, the bus file and the sampler compile with. Nothing
here names a sensor or a board: a new sensor is a data file and a driver, a new board a
``[buses]`` table in its board file (docs/sensors.md).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from tinyml.errors import InputError
from tinyml.firmware.boards import Board
from tinyml.paths import builtin_root, template_dir

SAMPLING = ("polled", "fifo", "host")
RATE_TOLERANCE = 0.005   # a FIFO rate within 0.5 % of the training rate counts as that rate
RETRY_MS = 1000          # a failing sensor is probed again after this long
FIFO_READ_FRAMES = 32    # frames the sampler drains per call
_IDENT = re.compile(r"[A-Z][A-Z0-9_]{0,40}")


def sensors_dir() -> Path:
    return template_dir("sensors") or builtin_root() / "firmware_templates" / "sensors"


def buses_dir() -> Path:
    return template_dir("buses") or builtin_root() / "firmware_templates" / "buses"


@dataclass(frozen=True)
class Sensor:
    """One sensor's data file."""

    name: str
    description: str
    driver: str
    kind: str
    buses: tuple[str, ...]             # "i2c", "spi", "onchip", "host"
    channels: tuple[str, ...]
    unit: str
    units: dict[str, float]            # unit name -> factor from the native unit
    sampling: str                      # "polled", "fifo" or "host"
    rates: tuple[tuple[float, int], ...] = ()
    rate_divider: dict[str, int | float] = field(default_factory=dict)
    ranges: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    i2c_address: int | None = None
    i2c_addresses: tuple[int, ...] = ()
    onchip: str | None = None          # the board's hardware.onchip_temperature it needs
    constants: dict[str, int | float] = field(default_factory=dict)
    max_rate_hz: dict[str, float] = field(default_factory=dict)   # per bus kind (what the bus can carry)
    filters: tuple[tuple[float, int], ...] = ()                   # (bandwidth Hz, code): anti-alias choice
    verified: str = ""
    source: Path = Path()

    def rate_choices(self) -> list[tuple[float, int]]:
        """Every (rate in Hz, register code) the chip can run at."""
        if self.rate_divider:
            base, top = float(self.rate_divider["base_hz"]), int(self.rate_divider["max_divider"])
            return [(base / (1 + d), d) for d in range(top + 1)]
        return list(self.rates)

    def rates_text(self) -> str:
        if self.rate_divider:
            base = float(self.rate_divider["base_hz"])
            return f"{base:g} Hz / (1 + d), d = 0..{self.rate_divider['max_divider']}"
        if self.sampling == "polled":
            return f"up to {max(r for r, _ in self.rates):g} Hz"
        return ", ".join(f"{r:g}" for r, _ in self.rates) + " Hz"


def list_sensors() -> list[str]:
    folder = sensors_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def load_sensor(name: str) -> Sensor:
    """Read ``firmware_templates/sensors/NAME.toml``; every error names the file and the key."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,40}", name or ""):
        raise InputError(f"sensor name {name!r} is not a sensor", f"known sensors: {', '.join(list_sensors())}")
    path = sensors_dir() / f"{name}.toml"
    if not path.is_file():
        close = difflib.get_close_matches(name, list_sensors(), n=1)
        raise InputError(f"unknown sensor {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                         f"known sensors: {', '.join(list_sensors())} (docs/sensors.md)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"sensor file {path} is not valid TOML: {exc}", "fix the syntax (docs/sensors.md)") from exc
    return _parse(data, path)


def _parse(data: dict[str, Any], path: Path) -> Sensor:
    def need(key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in data or not isinstance(data[key], kind):
            raise InputError(f"sensor file {path}: {key} is missing or has the wrong type", "see docs/sensors.md")
        return data[key]

    if need("name", str) != path.stem:
        raise InputError(f"sensor file {path} declares name {data['name']!r}", f"name it {path.stem!r}")
    sampling = need("sampling", str)
    if sampling not in SAMPLING:
        raise InputError(f"sensor file {path}: sampling {sampling!r} is unknown", f"use one of: {', '.join(SAMPLING)}")
    driver = need("driver", str)
    if not (sensors_dir() / f"{driver}.c").is_file():
        raise InputError(f"sensor file {path}: driver {driver!r} has no {driver}.c beside it", "add the driver file")
    rates = tuple((float(r), int(c)) for r, c in data.get("rates", []))
    if sampling != "host" and not rates and "rate_divider" not in data:
        raise InputError(f"sensor file {path}: no rates", "add rates = [[HZ, CODE], ...] or [rate_divider]")
    constants = data.get("constants", {})
    for key in constants:
        if not _IDENT.fullmatch(key):
            raise InputError(f"sensor file {path}: constant {key!r} is not an upper-case C name", "rename it")
    return Sensor(name=data["name"], description=data.get("description", data["name"]), driver=driver,
                  kind=need("kind", str), buses=tuple(need("buses", list)), channels=tuple(need("channels", list)),
                  unit=need("unit", str), units={k: float(v) for k, v in data.get("units", {}).items()},
                  sampling=sampling, rates=rates, rate_divider=dict(data.get("rate_divider", {})),
                  ranges=dict(data.get("ranges", {})), identity=dict(data.get("identity", {})),
                  i2c_address=data.get("i2c_address"), i2c_addresses=tuple(data.get("i2c_addresses", ())),
                  onchip=data.get("onchip"), constants=dict(constants),
                  max_rate_hz={k: float(v) for k, v in data.get("max_rate_hz", {}).items()},
                  filters=tuple((float(b), int(c)) for b, c in data.get("filters", {}).get("bandwidths", [])),
                  verified=data.get("verified", ""),
                  source=path)


@dataclass(frozen=True)
class SensorPlan:
    """A sensor checked against a board and a model: what the firmware will do."""

    sensor: Sensor
    bus_name: str
    bus: dict[str, Any]
    rate_hz: float            # the rate the chip runs at (polled: samples taken per second)
    rate_code: int
    filter_code: int
    fs: float                 # the model's sampling rate
    speedup: float
    channel_map: tuple[int, ...]
    scale: float
    unit: str
    range_value: str | None
    range_code: int
    lsb: float
    address: int | None
    options: dict[str, str]
    native_channels: tuple[str, ...] = ()

    @property
    def channel_names(self) -> list[str]:
        return [self.native_channels[i] for i in self.channel_map]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.sensor.name, "driver": self.sensor.driver, "bus": self.bus_name,
                "bus_driver": self.bus.get("driver"), "address": self.address, "rate_hz": self.rate_hz,
                "fs": self.fs, "speedup": self.speedup, "unit": self.unit, "range": self.range_value,
                "channels": self.channel_names, "options": self.options}


OPTIONS = ("bus", "address", "range", "unit", "channels", "speedup")


def parse_options(pairs: list[str] | tuple[str, ...] | dict[str, Any]) -> dict[str, str]:
    """``k=v`` strings (the CLI) or a table ([sensor] in tinyml.toml) into checked options."""
    items: list[tuple[str, str]] = []
    if isinstance(pairs, dict):
        items = [(str(k), str(v)) for k, v in pairs.items()]
    else:
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq or not key.strip():
                raise InputError(f"--sensor-option {pair!r} is not KEY=VALUE", "e.g. --sensor-option range=4")
            items.append((key.strip(), value.strip()))
    out: dict[str, str] = {}
    for key, value in items:
        if key not in OPTIONS:
            close = difflib.get_close_matches(key, OPTIONS, n=1)
            raise InputError(f"unknown sensor option {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                             f"sensor options: {', '.join(OPTIONS)} (docs/sensors.md)")
        out[key] = value
    return out


def plan_sensor(sensor: Sensor, board: Board, pre: dict[str, Any], options: dict[str, str]) -> SensorPlan:
    """Check ``sensor`` on ``board`` for a model whose preprocessing is ``pre`` (window, channels,
    fs); refuse with the reason when it cannot work."""
    who = f"sensor {sensor.name}"
    model_channels = list(pre["channels"])
    fs = float(pre.get("fs") or 0.0)
    speedup = _number(options.get("speedup", "1"), "speedup")
    if speedup <= 0:
        raise InputError(f"sensor option speedup must be positive, got {speedup:g}", "e.g. speedup=60")
    bus_name, bus = _pick_bus(sensor, board, options.get("bus"))
    native = tuple(model_channels) if sensor.sampling == "host" else sensor.channels  # replay: the model's own
    if len(model_channels) > len(native):
        raise InputError(f"{who} has {len(native)} channel(s) ({', '.join(native)}); the model was "
                         f"trained on {len(model_channels)} ({', '.join(model_channels)})",
                         "choose a sensor with enough channels, or train on fewer")
    channel_map = _channel_map(native, sensor.name, model_channels, options.get("channels"))
    rate_hz, rate_code = _pick_rate(sensor, fs, speedup)
    bus_limit = sensor.max_rate_hz.get(str(bus.get("kind")))
    if bus_limit is not None and rate_hz > bus_limit * (1 + RATE_TOLERANCE):
        faster = [k for k, v in sensor.max_rate_hz.items() if v >= rate_hz and k in sensor.buses]
        raise InputError(f"sensor {sensor.name} on {bus.get('kind')} ({bus_name}) can be read at most at "
                         f"{bus_limit:g} Hz; the model needs {rate_hz:g} Hz",
                         f"wire it to {' or '.join(faster)}" if faster else "train on data sampled more slowly")
    filter_code = _pick_filter(sensor, rate_hz)
    unit = options.get("unit", sensor.unit)
    if unit not in sensor.units:
        raise InputError(f"{who} cannot report in {unit!r}", f"units: {', '.join(sensor.units)}")
    range_value, range_code, lsb = _pick_range(sensor, options.get("range"))
    address = None if bus.get("kind") != "i2c" else _pick_address(sensor, options.get("address"))
    if bus.get("kind") != "i2c" and "address" in options:
        raise InputError(f"sensor option address applies to I2C; {sensor.name} is on {bus_name} ({bus.get('kind')})",
                         "drop the address option")
    return SensorPlan(sensor=sensor, bus_name=bus_name, bus=bus, rate_hz=rate_hz, rate_code=rate_code,
                      filter_code=filter_code, fs=fs,
                      speedup=speedup, channel_map=channel_map, scale=sensor.units[unit], unit=unit,
                      range_value=range_value, range_code=range_code, lsb=lsb, address=address, options=options,
                      native_channels=native)


def _number(text: str, key: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"sensor option {key}={text!r} is not a number", f"e.g. {key}=4") from None
    if not math.isfinite(value):
        raise InputError(f"sensor option {key}={text!r} is not a finite number", f"e.g. {key}=4")
    return value


def _pick_bus(sensor: Sensor, board: Board, wanted: str | None) -> tuple[str, dict[str, Any]]:
    who = f"sensor {sensor.name}"
    if "host" in sensor.buses:
        return "host", {"kind": "host", "driver": "none"}
    if "onchip" in sensor.buses:
        have = board.hardware.get("onchip_temperature")
        if have != sensor.onchip:
            raise InputError(f"{who} is the on-chip sensor of {sensor.onchip}; board {board.name} has "
                             + (f"{have}" if have else "no on-chip temperature sensor"),
                             "pick the on-chip sensor of this board (docs/sensors.md) or an external one")
        return "onchip", {"kind": "onchip", "driver": "none"}
    usable = {name: bus for name, bus in board.buses.items() if bus.get("kind") in sensor.buses}
    if wanted is not None:
        if wanted not in board.buses:
            raise InputError(f"board {board.name} has no bus {wanted!r}",
                             f"its buses: {', '.join(board.buses) or 'none'} (board file [buses])")
        if wanted not in usable:
            raise InputError(f"bus {wanted} of {board.name} is {board.buses[wanted].get('kind')}; {who} speaks "
                             f"{' or '.join(sensor.buses)}", f"pick one of: {', '.join(usable) or 'none'}")
        return wanted, usable[wanted]
    if not usable:
        raise InputError(f"board {board.name} has no {' or '.join(sensor.buses)} bus for {who}",
                         "add one to the board file's [buses] table (docs/sensors.md), or pick another board")
    name = sorted(usable)[0]
    return name, usable[name]


def _channel_map(native: tuple[str, ...], sensor: str, model_channels: list[str], wanted: str | None
                 ) -> tuple[int, ...]:
    """Which sensor channel feeds each model channel: option ``channels=z,x,y``, else by name, else in order."""
    if wanted:
        names = [c.strip() for c in wanted.split(",")]
        if len(names) != len(model_channels):
            raise InputError(f"sensor option channels names {len(names)} channel(s); the model has "
                             f"{len(model_channels)} ({', '.join(model_channels)})",
                             "name one sensor channel per model channel, in the model's order")
        for n in names:
            if n not in native:
                raise InputError(f"sensor {sensor} has no channel {n!r}", f"its channels: {', '.join(native)}")
        return tuple(native.index(n) for n in names)
    if all(c in native for c in model_channels):
        return tuple(native.index(c) for c in model_channels)
    return tuple(range(len(model_channels)))


def _pick_rate(sensor: Sensor, fs: float, speedup: float) -> tuple[float, int]:
    """The chip rate for a model trained at ``fs`` (times ``speedup`` for compressed time)."""
    who = f"sensor {sensor.name}"
    if sensor.sampling == "host":
        return fs * speedup, 0
    want = fs * speedup
    if want <= 0:
        raise InputError(f"the model records no sampling rate, so {who} cannot be paced",
                         "train from a dataset with fs (tinyml data info shows it)")
    shown = f"{want:g} Hz" + (f" ({fs:g} Hz x speedup {speedup:g})" if speedup != 1 else "")
    choices = sensor.rate_choices()
    if sensor.sampling == "polled":
        fast_enough = [(r, c) for r, c in choices if r >= want * (1 - RATE_TOLERANCE)]
        if not fast_enough:
            raise InputError(f"{who} cannot sample at {shown}: it converts at most "
                             f"{max(r for r, _ in choices):g} times a second", "use a faster sensor, or train on "
                             "data sampled more slowly (lower speedup)")
        return want, min(fast_enough)[1]
    close = [(abs(r - want) / want, r, c) for r, c in choices]
    err, rate, code = min(close)
    if err > RATE_TOLERANCE:
        nearest = sorted(close)[:3]
        raise InputError(f"{who} cannot sample at {shown}: its FIFO runs at {sensor.rates_text()}",
                         "train on data at one of its rates (nearest: "
                         + ", ".join(f"{r:g} Hz" for _, r, _ in nearest) + ")")
    return rate, code


def _pick_filter(sensor: Sensor, rate_hz: float) -> int:
    """The widest low-pass bandwidth below Nyquist, so the chip filters what it cannot sample."""
    if not sensor.filters:
        return 0
    fitting = [(b, c) for b, c in sensor.filters if b < rate_hz / 2]
    return max(fitting)[1] if fitting else min(sensor.filters)[1]


def _pick_range(sensor: Sensor, wanted: str | None) -> tuple[str | None, int, float]:
    if not sensor.ranges:
        if wanted is not None:
            raise InputError(f"sensor {sensor.name} has no selectable range", "drop the range option")
        return None, 0, 1.0
    codes, lsb = sensor.ranges["codes"], sensor.ranges["lsb"]
    value = str(wanted if wanted is not None else sensor.ranges["default"])
    if value not in codes:
        raise InputError(f"sensor {sensor.name} has no range {value} {sensor.unit}",
                         f"ranges: {', '.join(codes)} ({sensor.unit})")
    return value, int(codes[value]), float(lsb[value])


def _pick_address(sensor: Sensor, wanted: str | None) -> int | None:
    if sensor.i2c_address is None:
        if wanted is not None:
            raise InputError(f"sensor {sensor.name} has no I2C address to choose", "drop the address option")
        return None
    if wanted is None:
        return int(sensor.i2c_address)
    try:
        address = int(wanted, 0)
    except ValueError:
        raise InputError(f"sensor option address={wanted!r} is not a number", "e.g. address=0x49") from None
    if address not in sensor.i2c_addresses:
        raise InputError(f"sensor {sensor.name} cannot answer at I2C address {address:#04x}",
                         "its addresses: " + ", ".join(f"{a:#04x}" for a in sensor.i2c_addresses))
    return address


def _c_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return f"{value:#x}u" if value >= 0 else str(value)
    if isinstance(value, float):
        return f"{value!r}f"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bus_defines(bus: dict[str, Any]) -> list[str]:
    """The board's bus entry as TINYML_BUS_* macros; pins like "PB8" become _PORT 1 and _PIN 8."""
    lines = []
    for key, value in sorted(bus.items()):
        if key in ("kind", "driver", "note"):
            continue
        name = f"TINYML_BUS_{key.upper()}"
        if not _IDENT.fullmatch(key.upper()):
            raise InputError(f"bus key {key!r} is not a plain name", "use letters, digits and '_' in [buses] keys")
        pin = re.fullmatch(r"P([A-K])(\d{1,2})", value) if isinstance(value, str) else None
        if pin:
            lines += [f"#define {name}_PORT {ord(pin.group(1)) - ord('A')}u", f"#define {name}_PIN {pin.group(2)}u"]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            lines.append(f"#define {name} {_c_value(value)}")
        else:
            raise InputError(f"bus key {key} = {value!r} is neither a number nor a pin like \"PB8\"",
                             "fix the board file's [buses] table (docs/sensors.md)")
    return lines


def sensor_config_header(plan: SensorPlan) -> str:
    """``tinyml_sensor_config.h``: every constant the sampler, the driver and the bus file use."""
    s = plan.sensor
    period_us = max(1, round(1e6 / plan.rate_hz)) if plan.rate_hz > 0 else 0
    ident = s.identity
    width = int(ident.get("width", 8))
    lines = [
        f"/* Sensor {s.name} ({s.description}) on {plan.bus_name}, generated by tinyml from",
        f" * firmware_templates/sensors/{s.name}.toml and the board's [buses] table. */",
        "#ifndef TINYML_SENSOR_CONFIG_H", "#define TINYML_SENSOR_CONFIG_H", "",
        f"#define TINYML_SENSOR_NAME {_c_value(s.name)}",
        f"#define TINYML_SENSOR_BUS_NAME {_c_value(plan.bus_name)}",
        f"#define TINYML_SENSOR_NATIVE_CHANNELS {len(plan.native_channels)}u /* {', '.join(plan.native_channels)} "
        f"in {s.unit} */",
        f"#define TINYML_SENSOR_CHANNELS {len(plan.channel_map)}u",
        "#define TINYML_SENSOR_CHANNEL_MAP {" + ", ".join(str(i) for i in plan.channel_map) + "}",
        "#define TINYML_SENSOR_CHANNEL_SCALE {" + ", ".join(_c_value(plan.scale) for _ in plan.channel_map)
        + f"}} /* {s.unit} -> {plan.unit} */",
        f"#define TINYML_SENSOR_POLLED {1 if s.sampling == 'polled' else 0}",
        f"#define TINYML_SENSOR_RATE_HZ {_c_value(float(plan.rate_hz))} /* model fs {plan.fs:g} Hz x speedup "
        f"{plan.speedup:g} */",
        f"#define TINYML_SENSOR_PERIOD_US {period_us}u",
        f"#define TINYML_SENSOR_RATE_CODE {_c_value(plan.rate_code)}",
        f"#define TINYML_SENSOR_FILTER_CODE {_c_value(plan.filter_code)}",
        f"#define TINYML_SENSOR_ON_SPI {1 if plan.bus.get('kind') == 'spi' else 0}",
        f"#define TINYML_SENSOR_BUS_ADDRESS {_c_value(plan.address or 0)}",
        f"#define TINYML_SENSOR_RANGE_CODE {_c_value(plan.range_code)} /* range {plan.range_value} */",
        f"#define TINYML_SENSOR_LSB {_c_value(plan.lsb)} /* {s.unit} per LSB */",
        f"#define TINYML_SENSOR_READ_FRAMES {1 if s.sampling == 'polled' else FIFO_READ_FRAMES}u",
        f"#define TINYML_SENSOR_RETRY_MS {RETRY_MS}u",
    ]
    if plan.address is not None:
        lines += [f"#define TINYML_SENSOR_I2C_ADDRESS {plan.address:#04x}u",
                  f'#define TINYML_SENSOR_ADDRESS_TEXT "{plan.address:#04x}"']
    if ident:
        lines += [f"#define TINYML_SENSOR_ID_REGISTER {int(ident['register']):#04x}u",
                  f"#define TINYML_SENSOR_ID_VALUE {int(ident['value']):#0{width // 4 + 2}x}u",
                  f'#define TINYML_SENSOR_ID_TEXT "{int(ident["value"]):#0{width // 4 + 2}x}"']
    lines += [f"#define TINYML_SENSOR_{k} {_c_value(v)}" for k, v in sorted(s.constants.items())]
    lines += _bus_defines(plan.bus)
    lines += ["", "#endif", ""]
    return "\n".join(lines)


def sensor_sources(plan: SensorPlan) -> list[Path]:
    """The C files a project with this sensor compiles besides the application."""
    s = sensors_dir()
    files = [s / "tinyml_sensor.c", s / "tinyml_bus.h", s / "tinyml_sensor_driver.h", s / "tinyml_sensor_regs.h",
             s / f"{plan.sensor.driver}.c"]
    driver = plan.bus.get("driver")
    if plan.bus.get("kind") in ("i2c", "spi"):
        bus_file = buses_dir() / f"{driver}.c"
        if not bus_file.is_file():
            raise InputError(f"bus {plan.bus_name} names driver {driver!r}, which has no file in {buses_dir()}",
                             "fix `driver` in the board file's [buses] table or add the bus file")
        files.append(bus_file)
    else:
        files.append(buses_dir() / "no_bus.c")
    return files
