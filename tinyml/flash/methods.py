"""The flash methods a board file may name, and what each needs from its ``[flash]`` table.

One registry, as esptool keeps its chips in ``CHIP_DEFS``: a board is checked against it when
it is loaded (``tinyml.firmware.boards``), so a typo in ``[flash]`` is reported at once, naming
the file and the key, and ``tinyml flash`` knows which images each method takes. A new method
is one entry here plus its back end in this package.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyml.errors import InputError

ESP_CHIPS = ("esp32", "esp32s2", "esp32s3", "esp32c2", "esp32c3", "esp32c6", "esp32h2")


@dataclass(frozen=True)
class Key:
    kind: type | tuple[type, ...]
    required: bool = False
    choices: tuple[Any, ...] = ()
    what: str = ""            # how the error names a wrong value, e.g. "a baud rate"


TYPE_NAMES = {int: "a number", float: "a number", str: "a string", bool: "true or false", list: "a list"}


@dataclass(frozen=True)
class FlashMethod:
    name: str
    images: tuple[str, ...]                  # image suffixes it flashes, in order of preference
    keys: dict[str, Key] = field(default_factory=dict)  # its [flash] keys besides `method`
    summary: str = ""


METHODS: dict[str, FlashMethod] = {m.name: m for m in (
    FlashMethod("qemu", (".elf",), summary="an emulated board: check the ELF, print the emulator command"),
    FlashMethod("esptool", (".bin",), {"chip": Key(str, True, ESP_CHIPS), "baud": Key(int, what="a baud rate")},
                "ESP32 family through esptool (build/flasher_args.json or a merged .bin)"),
    FlashMethod("uf2", (".uf2", ".elf", ".bin"), {"uf2_family": Key(int), "usb_vid_pid": Key(list)},
                "copy UF2 blocks onto the bootloader's USB drive"),
    FlashMethod("openocd", (".elf", ".hex", ".bin"),
                {"interface": Key(str, True), "target": Key(str, True), "package": Key(str)},
                "OpenOCD with a debug probe"),
    FlashMethod("pyocd", (".elf", ".hex", ".bin"), {"target": Key(str, True), "package": Key(str)},
                "pyOCD with a CMSIS-DAP or J-Link probe"),
)}


def check_table(table: dict[str, Any], path: Path, section: str, keys: dict[str, Key]) -> None:
    """Every key known, of its type and among its choices; every required key present."""
    for key, value in table.items():
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            raise InputError(f"board file {path}: unknown key {section}.{key}",
                             f"did you mean {close[0]!r}?" if close else
                             f"known keys: {', '.join(sorted(keys)) or 'none'} (docs/boards.md)")
        spec = keys[key]
        kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            wanted = spec.what or " or ".join(TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise InputError(f"board file {path}: {section}.{key} must be {wanted}, got {value!r}",
                             "fix the value (see docs/boards.md)")
        if spec.choices and value not in spec.choices:
            raise InputError(f"board file {path}: {section}.{key} {value!r} is unknown",
                             f"use one of: {', '.join(map(str, spec.choices))}")
    for key, spec in keys.items():
        if spec.required and key not in table:
            raise InputError(f"board file {path}: missing key {section}.{key}", "add it (see docs/boards.md)")


def check_flash(table: dict[str, Any], path: Path) -> FlashMethod:
    """The board's flash method, its [flash] table checked against the registry."""
    method = table.get("method")
    if method not in METHODS:
        raise InputError(f"board file {path}: flash.method {method!r} is unknown",
                         f"use one of: {', '.join(sorted(METHODS))}")
    spec = METHODS[method]
    check_table({k: v for k, v in table.items() if k != "method"}, path, "flash", spec.keys)
    return spec
