"""Build a rendered firmware project and report its size against the board's limits.

Sizes come from the ELF section headers (no binutils needed): flash is every allocated
section with contents (code, constants, initial values of .data); static RAM is every
allocated section placed in the board's RAM, minus the stack reserve, which is reported
on its own. A firmware that does not fit fails with the numbers, whether the linker
noticed (region overflow) or the budget check did.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tinyml.errors import CheckFailed, InputError, ToolError
from tinyml.firmware.boards import Board, load_board
from tinyml.firmware.render import read_manifest

BUILD_TIMEOUT_S = 600
MODES = ("validate", "run")  # validation firmware (device protocol) or run mode (reads the sensor)
ELF_NAME = "build/firmware.elf"
_OVERFLOW = re.compile(r"region [`'](\w+)' overflowed by (\d+) bytes")
MAP_NAME = "build/firmware.map"
# An output section in a GNU ld map: name at column 0, then address and size (a long name wraps).
_MAP_SECTION = re.compile(r"^(\.[\w.]+)\s+0x[0-9a-fA-F]+\s+0x([0-9a-fA-F]+)", re.M)
_NOT_LOADED = (".debug", ".comment", ".ARM.attributes", ".note")


@dataclass(frozen=True)
class SizeReport:
    board: str
    elf: str
    flash_bytes: int
    ram_bytes: int          # static RAM: .data + .bss (arena included), without the stack reserve
    arena_bytes: int
    stack_bytes: int
    flash_limit: int
    ram_limit: int

    @property
    def fits(self) -> bool:
        return self.flash_bytes <= self.flash_limit and self.ram_bytes + self.stack_bytes <= self.ram_limit

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "fits": self.fits}

    def lines(self) -> list[str]:
        def pct(n: int, limit: int) -> str:
            return f"{n:>9,} B of {limit:>10,} B ({100.0 * n / limit:5.1f}%)"

        return [f"flash        {pct(self.flash_bytes, self.flash_limit)}",
                f"static RAM   {pct(self.ram_bytes, self.ram_limit)}",
                f"  arena      {self.arena_bytes:>9,} B",
                f"stack        {self.stack_bytes:>9,} B reserved",
                f"RAM + stack  {pct(self.ram_bytes + self.stack_bytes, self.ram_limit)}"]


def elf_sections(data: bytes) -> list[tuple[str, int, int, int, int]]:
    """(name, type, flags, address, size) of every section of a 32-bit little-endian ELF."""
    if data[:4] != b"\x7fELF" or data[4:6] != b"\x01\x01":
        raise InputError("not a 32-bit little-endian ELF file", "build for a 32-bit microcontroller target")
    try:
        shoff, = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
        headers = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
        strtab_off = headers[shstrndx][4]

        def name(off: int) -> str:
            end = data.index(b"\0", strtab_off + off)
            return data[strtab_off + off:end].decode(errors="replace")

        return [(name(h[0]), h[1], h[2], h[3], h[5]) for h in headers]
    except (struct.error, IndexError, ValueError) as exc:
        raise InputError(f"truncated or corrupt ELF file ({exc})", "rebuild the firmware: `make clean` then build") \
            from exc


SHT_NOBITS, SHF_ALLOC = 8, 0x2


def map_sections(text: str) -> list[tuple[str, int]]:
    """(name, size) of each non-empty loaded output section in a GNU ld map file.

    The map is written even when the link fails on a region overflow, when no ELF exists:
    it is the only place that says which section outgrew the board.
    """
    return [(name, int(size, 16)) for name, size in _MAP_SECTION.findall(text)
            if int(size, 16) and not name.startswith(_NOT_LOADED)]


def elf_alloc_sections(data: bytes) -> list[tuple[str, int]]:
    """(name, size) of each non-empty section the firmware loads or reserves at run time."""
    return [(name, size) for name, _kind, flags, _addr, size in elf_sections(data) if flags & SHF_ALLOC and size]


def describe_sections(sections: list[tuple[str, int]]) -> str:
    """One line for an error message: `sections .text 541,964 B, .bss 2,632 B`."""
    return "sections " + ", ".join(f"{name} {size:,} B" for name, size in sections) if sections else ""


def measure(elf: Path, board: Board, arena_bytes: int, flash_limit: int | None = None) -> SizeReport:
    """Flash and static RAM of a linked firmware, from its section headers."""
    sections = elf_sections(elf.read_bytes())
    flash = ram = 0
    lo = board.ram_origin or 0
    hi = lo + board.ram_bytes
    for name, kind, flags, addr, size in sections:
        if not flags & SHF_ALLOC or size == 0:
            continue
        if kind != SHT_NOBITS:
            flash += size
        if lo <= addr < hi and name != ".stack":
            ram += size
    return SizeReport(board.name, str(elf), flash, ram, arena_bytes, board.stack_bytes,
                      flash_limit or board.flash_bytes, board.ram_bytes)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"`{' '.join(cmd)}` did not finish in {BUILD_TIMEOUT_S} s", "run it by hand to see why") \
            from exc


def _need(tool: str, hint: str) -> None:
    if shutil.which(tool) is None:
        raise ToolError(f"{tool} not found on PATH", hint)


def build_project(project: str | Path, flash_limit: int | None = None, *, mode: str = "validate") -> SizeReport:
    """Build the project with its own build system and check the result fits the board;
    ``mode`` "run" builds the run-mode firmware (``make MODE=run``, docs/sensors.md)."""
    project = Path(project)
    manifest = read_manifest(project)
    board = load_board(manifest.get("board_file") or manifest["board"])
    builder = manifest.get("builder", board.builder)
    if mode not in MODES:
        raise InputError(f"unknown build mode {mode!r}", f"use one of: {', '.join(MODES)}")
    if mode == "run" and builder in ("idf.py", "pico-sdk"):
        raise InputError(f"tinyml builds run mode only for make-built boards; {board.name} builds with {builder}",
                         "add -DTINYML_RUN_MODE=1 to the project's compile definitions and build it yourself")
    if builder == "idf.py":
        return _build_idf(project, board, manifest)
    if builder == "pico-sdk":
        return _build_pico(project, board, manifest, flash_limit)
    _need("make", "apt-get install make")
    _need(board.cc, f"install the toolchain: apt-get install {board.toolchain_package}")
    proc = _run(["make", "-j2", f"MODE={mode}"], project)
    if proc.returncode != 0:
        log = proc.stdout + proc.stderr
        overflow = _OVERFLOW.findall(log)
        if overflow:
            parts = ", ".join(f"{region} by {int(n):,} bytes" for region, n in overflow)
            map_file = project / MAP_NAME
            sizes = describe_sections(map_sections(map_file.read_text(errors="replace"))) \
                if map_file.is_file() else ""
            raise CheckFailed(f"firmware does not fit {board.name}: region {parts} "
                              f"(flash {board.flash_bytes:,} B, RAM {board.ram_bytes:,} B)"
                              + (f"; {sizes}" if sizes else ""),
                              "use a smaller model (fewer units/filters), a smaller codegen kernel variant "
                              "(`tinyml firmware new --target portable`) or a board with more memory")
        tail = " | ".join(line for line in log.strip().splitlines()[-4:])
        raise ToolError(f"build failed: {tail[-600:]}", f"run `make` in {project} to see the full log")
    report = measure(project / ELF_NAME, board, int(manifest.get("arena_bytes", 0)), flash_limit)
    if not report.fits:
        sizes = describe_sections(elf_alloc_sections((project / ELF_NAME).read_bytes()))
        raise CheckFailed(f"firmware does not fit {board.name}: flash {report.flash_bytes:,} of "
                          f"{report.flash_limit:,} B, RAM {report.ram_bytes:,} + stack {report.stack_bytes:,} of "
                          f"{report.ram_limit:,} B; {sizes}", "use a smaller model or a board with more memory")
    return report


def _build_pico(project: Path, board: Board, manifest: dict[str, Any], flash_limit: int | None) -> SizeReport:
    """Pico SDK projects build with CMake against the SDK named by PICO_SDK_PATH."""
    if not os.environ.get("PICO_SDK_PATH"):
        raise ToolError("building for the Raspberry Pi Pico needs the Pico SDK (PICO_SDK_PATH is not set)",
                        "clone https://github.com/raspberrypi/pico-sdk and export PICO_SDK_PATH=/path/to/it")
    _need("cmake", "apt-get install cmake")
    _need(board.cc, f"install the toolchain: apt-get install {board.toolchain_package}")
    for cmd in (["cmake", "-B", "build", "-S", "."], ["make", "-C", "build", "-j2"]):
        proc = _run(cmd, project)
        if proc.returncode != 0:
            tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-4:])
            raise ToolError(f"`{' '.join(cmd)}` failed: {tail[-600:]}", f"run it in {project} to see the full log")
    return measure(project / "build" / "tinyml_app.elf", board, int(manifest.get("arena_bytes", 0)), flash_limit)


def _build_idf(project: Path, board: Board, manifest: dict[str, Any]) -> SizeReport:
    """ESP-IDF projects build with idf.py, which only an ESP-IDF installation provides."""
    _need("idf.py", "install ESP-IDF and run `. $IDF_PATH/export.sh` first "
                    "(https://docs.espressif.com/projects/esp-idf/en/stable/get-started/)")
    proc = _run(["idf.py", "set-target", board.idf_target or "esp32"], project)
    if proc.returncode == 0:
        proc = _run(["idf.py", "build"], project)
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-4:])
        raise ToolError(f"idf.py build failed: {tail[-600:]}", f"run `idf.py build` in {project}")
    app = project / "build" / "tinyml_app.bin"
    flash = app.stat().st_size if app.is_file() else 0
    return SizeReport(board.name, str(project / "build" / "tinyml_app.elf"), flash, 0,
                      int(manifest.get("arena_bytes", 0)), board.stack_bytes, board.flash_bytes, board.ram_bytes)
