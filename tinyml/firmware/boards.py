"""Boards are data: one TOML file per board in ``boards/``, read into a :class:`Board`.

Adding a board means adding a file; nothing here names a board. ``load_board`` also takes
a path to a ``.toml`` file, so a user can keep private boards outside the checkout.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from tinyml.errors import InputError
from tinyml.paths import boards_dirs

# Protocol latency_unit codes (docs/protocol.md, RESULT.latency_unit).
LATENCY_UNITS = {"cycles": 0, "ticks": 1, "us": 2, "instructions": 3}
FLASH_METHODS = {"qemu", "esptool", "uf2", "openocd", "pyocd"}
BUILDERS = {"make", "idf.py", "pico-sdk"}


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    family: str
    cpu: str
    template: str
    emulated: bool
    flash_bytes: int
    ram_bytes: int
    stack_bytes: int
    flash_origin: int | None
    ram_origin: int | None
    builder: str
    cc: str
    size_tool: str | None
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    toolchain_package: str
    idf_target: str | None
    hardware: dict[str, Any]
    flash: dict[str, Any]
    baud: int
    usb_vid_pid: tuple[str, ...]
    latency_unit: str
    instructions_per_tick: float | None
    emulator_command: tuple[str, ...] = ()
    emulator_package: str = ""
    codegen_target: str = "portable"  # kernels `tinyml codegen` uses for this core (checked at render)
    buses: dict[str, dict[str, Any]] = field(default_factory=dict)  # [buses.NAME]: sensor buses and pins
    source: Path = field(default=Path(), compare=False)

    @property
    def latency_code(self) -> int:
        return LATENCY_UNITS[self.latency_unit]

    @property
    def flash_method(self) -> str:
        return str(self.flash["method"])

    def emulator_argv(self, elf: str | Path, serial: str) -> list[str]:
        """The emulator command line with the firmware and the serial backend filled in."""
        if not self.emulator_command:
            raise InputError(f"board {self.name!r} is not emulated", "pick a qemu-* board, see `tinyml boards`")
        return [part.replace("{elf}", str(elf)).replace("{serial}", serial) for part in self.emulator_command]

    def capabilities(self) -> dict[str, bool]:
        """What this machine can do with the board right now: build, emulate, flash."""
        return {k: why is None for k, why in self.missing().items()}

    def missing(self) -> dict[str, str | None]:
        """For build, emulate and flash: None when this machine can, else what it lacks."""
        if self.builder == "make":
            build = None if shutil.which(self.cc) else f"compiler {self.cc} not on PATH"
        elif self.builder == "idf.py":
            build = None if shutil.which("idf.py") else "idf.py not on PATH (install and export ESP-IDF)"
        else:  # pico-sdk
            build = ("PICO_SDK_PATH is not set" if not os.environ.get("PICO_SDK_PATH")
                     else None if shutil.which("cmake") else "cmake not on PATH")
        if not self.emulator_command:
            emulate = "real hardware only (no emulator)"
        else:
            emulate = None if shutil.which(self.emulator_command[0]) else f"{self.emulator_command[0]} not on PATH"
        flash = (None if emulate is None else emulate if self.flash_method == "qemu"
                 else _flash_tool_missing(self.flash_method))
        return {"build": build, "emulate": emulate, "flash": flash}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "family": self.family, "cpu": self.cpu,
            "template": self.template, "emulated": self.emulated, "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes, "stack_bytes": self.stack_bytes, "builder": self.builder,
            "flash_method": self.flash_method, "flash": self.flash, "baud": self.baud,
            "usb_vid_pid": list(self.usb_vid_pid), "latency_unit": self.latency_unit,
            "instructions_per_tick": self.instructions_per_tick, "codegen_target": self.codegen_target,
            "buses": self.buses, "source": str(self.source),
        }


def _flash_tool_missing(method: str) -> str | None:
    """None when the flash method's tool is here, else what is missing."""
    if method == "esptool":
        return None if importlib.util.find_spec("esptool") else "Python package esptool not installed"
    if method == "uf2":
        return None  # copying a file onto the BOOTSEL drive needs no tool
    if method == "openocd":
        return None if shutil.which("openocd") else "openocd not on PATH"
    if method == "pyocd":
        return None if shutil.which("pyocd") or importlib.util.find_spec("pyocd") else "pyocd not installed"
    return f"no flash tool for method {method!r}"


def list_boards() -> list[str]:
    """Names of the boards in every boards folder (``TINYML_HOME``'s and the built-in), sorted."""
    return sorted({p.stem for folder in boards_dirs() for p in folder.glob("*.toml")})


def load_board(name_or_path: str | Path) -> Board:
    """Read one board by name (``boards/NAME.toml``) or by path to a ``.toml`` file."""
    text = str(name_or_path)
    if text.endswith(".toml"):
        path = Path(text)
        if not path.is_file():
            raise InputError(f"board file not found: {path}", "give a path to an existing board .toml")
    else:
        found = [d / f"{text}.toml" for d in boards_dirs() if (d / f"{text}.toml").is_file()]
        if not found or "/" in text or "\\" in text:
            known = ", ".join(list_boards()) or "none"
            raise InputError(f"unknown board {text!r}; known boards: {known}",
                             "run `tinyml boards`, or pass a path to your own board .toml")
        path = found[0]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"board file {path} is not valid TOML: {exc}", "fix the syntax (see docs/boards.md)") from exc
    return _parse(data, path)


class _Reader:
    """Typed access to one TOML table, naming the file and key in every error."""

    def __init__(self, table: Any, path: Path, where: str):
        if not isinstance(table, dict):
            raise InputError(f"board file {path}: [{where}] must be a table", "see docs/boards.md")
        self.table, self.path, self.where = table, path, where

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise InputError(f"board file {self.path}: missing key {self._name(key)}",
                                 "add it (see docs/boards.md for every key)")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            wanted = " or ".join(k.__name__ for k in kinds)
            raise InputError(f"board file {self.path}: {self._name(key)} must be {wanted}, got {value!r}",
                             "fix the value (see docs/boards.md)")
        return value

    def sub(self, key: str, required: bool = True) -> _Reader:
        if key not in self.table and not required:
            return _Reader({}, self.path, key)
        return _Reader(self.get(key, dict), self.path, key)

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) for v in values):
            raise InputError(f"board file {self.path}: {self._name(key)} must be a list of strings",
                             "fix the value (see docs/boards.md)")
        return tuple(values)

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key


def _parse(data: dict, path: Path) -> Board:
    top = _Reader(data, path, "")
    mem, tool, lat = top.sub("memory"), top.sub("toolchain"), top.sub("latency")
    flash, serial, emu = top.sub("flash"), top.sub("serial", required=False), top.sub("emulator", required=False)
    name = top.get("name", str)
    if name != path.stem and path.parent.resolve() in {d.resolve() for d in boards_dirs()}:
        raise InputError(f"board file {path} declares name {name!r}", f"name it {path.stem!r} or rename the file")
    builder = tool.get("builder", str, "make")
    if builder not in BUILDERS:
        raise InputError(f"board file {path}: toolchain.builder {builder!r} is unknown",
                         f"use one of: {', '.join(sorted(BUILDERS))}")
    method = flash.get("method", str)
    if method not in FLASH_METHODS:
        raise InputError(f"board file {path}: flash.method {method!r} is unknown",
                         f"use one of: {', '.join(sorted(FLASH_METHODS))}")
    unit = lat.get("unit", str)
    if unit not in LATENCY_UNITS:
        raise InputError(f"board file {path}: latency.unit {unit!r} is unknown",
                         f"use one of: {', '.join(LATENCY_UNITS)}")
    sizes = {k: mem.get(k, int) for k in ("flash_bytes", "ram_bytes")}
    if min(sizes.values()) <= 0:
        raise InputError(f"board file {path}: memory sizes must be positive", "fix [memory]")
    command = emu.strings("command")
    emulated = top.get("emulated", bool, False)
    if emulated and not command:
        raise InputError(f"board file {path}: emulated board without [emulator] command",
                         "add emulator.command with {elf} and {serial} placeholders")
    ipt = lat.get("instructions_per_tick", (int, float), None)
    buses = top.sub("buses", required=False)
    for bus_name in buses.table:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,15}", bus_name):  # it reaches C strings and comments
            raise InputError(f"board file {path}: bus name {bus_name!r} is not a plain name",
                             "use lower-case letters, digits and '_', e.g. [buses.i2c0]")
        bus = buses.sub(bus_name)
        if bus.get("kind", str) not in ("i2c", "spi"):
            raise InputError(f"board file {path}: buses.{bus_name}.kind must be \"i2c\" or \"spi\"",
                             "see docs/sensors.md")
        bus.get("driver", str)
    return Board(
        name=name, description=top.get("description", str, name), family=top.get("family", str),
        cpu=top.get("cpu", str), template=top.get("template", str), emulated=emulated,
        flash_bytes=sizes["flash_bytes"], ram_bytes=sizes["ram_bytes"],
        stack_bytes=mem.get("stack_bytes", int, 4096),
        flash_origin=mem.get("flash_origin", int, None), ram_origin=mem.get("ram_origin", int, None),
        builder=builder, cc=tool.get("cc", str), size_tool=tool.get("size", str, None),
        cflags=tool.strings("cflags"), ldflags=tool.strings("ldflags"),
        toolchain_package=tool.get("package", str, ""), idf_target=tool.get("idf_target", str, None),
        hardware=dict(top.sub("hardware", required=False).table), flash=dict(flash.table),
        baud=serial.get("baud", int, 115200), usb_vid_pid=serial.strings("usb_vid_pid"),
        latency_unit=unit, instructions_per_tick=float(ipt) if ipt is not None else None,
        emulator_command=command, emulator_package=emu.get("package", str, ""),
        codegen_target=tool.get("codegen_target", str, "portable"),
        buses={k: dict(v) for k, v in buses.table.items()}, source=path,
    )
