"""UF2: turn a flat binary into UF2 blocks and copy them onto a bootloader's USB drive.

UF2 bootloaders (RP2040 BOOTSEL, many nRF52/SAMD boards) show up as a small drive with an
``INFO_UF2.TXT``; copying a ``.uf2`` file onto it flashes the board, which then reboots and
the drive disappears. Each 512-byte block carries 256 bytes of payload and its own target
address, so a partial copy can never be mistaken for a complete one.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tinyml.errors import DeviceError, InputError

MAGIC_START0 = 0x0A324655  # "UF2\n"
MAGIC_START1 = 0x9E5D5157
MAGIC_END = 0x0AB16F30
FLAG_FAMILY_ID = 0x00002000
BLOCK_SIZE = 512
PAYLOAD_SIZE = 256
DATA_AREA = 476
INFO_FILE = "INFO_UF2.TXT"
HEADER = struct.Struct("<8I")


@dataclass(frozen=True)
class Uf2Block:
    flags: int
    address: int
    payload: bytes
    number: int
    total: int
    family_id: int


def bin_to_uf2(data: bytes, base_address: int, family_id: int | None) -> bytes:
    """UF2 blocks for ``data`` loaded at ``base_address``, tagged with ``family_id``."""
    if not data:
        raise InputError("the firmware image is empty", hint="rebuild the firmware")
    if base_address % PAYLOAD_SIZE:
        raise InputError(f"UF2 base address {base_address:#x} is not 256-byte aligned",
                         hint="check memory.flash_origin in the board file")
    return pages_to_uf2(memory_pages([(base_address, data)]), family_id)


def memory_pages(chunks: list[tuple[int, bytes]]) -> dict[int, bytearray]:
    """256-byte pages (by address) covering every chunk; bytes no chunk sets stay 0."""
    pages: dict[int, bytearray] = {}
    for address, data in chunks:
        pos = 0
        while pos < len(data):
            page, index = divmod(address + pos, PAYLOAD_SIZE)
            count = min(PAYLOAD_SIZE - index, len(data) - pos)
            pages.setdefault(page * PAYLOAD_SIZE, bytearray(PAYLOAD_SIZE))[index:index + count] = data[pos:pos + count]
            pos += count
    return pages


def pages_to_uf2(pages: dict[int, bytearray], family_id: int | None) -> bytes:
    """One UF2 block per page, in address order, numbered 0..n-1."""
    flags = FLAG_FAMILY_ID if family_id is not None else 0
    out = bytearray()
    for number, address in enumerate(sorted(pages)):
        header = HEADER.pack(MAGIC_START0, MAGIC_START1, flags, address, PAYLOAD_SIZE, number, len(pages),
                             family_id or 0)
        out += header + bytes(pages[address]).ljust(DATA_AREA, b"\x00") + struct.pack("<I", MAGIC_END)
    return bytes(out)


def elf_load_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(physical address, file bytes) of a 32-bit little-endian ELF's PT_LOAD segments.

    Physical addresses matter: initialised RAM data is stored in flash (its load address).
    """
    if len(data) < 52 or data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise InputError("not a 32-bit little-endian ELF file", hint="give the firmware .elf or .bin")
    phoff, = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    segments = []
    for i in range(phnum):
        start = phoff + i * phentsize
        if start + 32 > len(data):
            raise InputError("the ELF program headers are truncated", hint="rebuild the firmware")
        p_type, p_offset, _vaddr, p_paddr, p_filesz = struct.unpack_from("<5I", data, start)
        if p_type == 1 and p_filesz:  # PT_LOAD with bytes in the file
            if p_offset + p_filesz > len(data):
                raise InputError("an ELF segment runs past the end of the file", hint="rebuild the firmware")
            segments.append((p_paddr, data[p_offset:p_offset + p_filesz]))
    if not segments:
        raise InputError("the ELF has no loadable segments", hint="link the firmware, not just compile it")
    return segments


def elf_to_uf2(data: bytes, family_id: int | None) -> bytes:
    """UF2 blocks for every loadable segment of an ELF, at its load address."""
    return pages_to_uf2(memory_pages(elf_load_segments(data)), family_id)


def parse_uf2(data: bytes) -> list[Uf2Block]:
    """Read and check UF2 blocks (magic numbers, sizes, numbering), for images built elsewhere."""
    if not data or len(data) % BLOCK_SIZE:
        raise InputError(f"not a UF2 file: {len(data)} bytes is not a multiple of 512",
                         hint="give a .uf2 written by a UF2 tool, or the raw .bin")
    blocks = []
    for offset in range(0, len(data), BLOCK_SIZE):
        m0, m1, flags, address, size, number, total, family = HEADER.unpack_from(data, offset)
        (end,) = struct.unpack_from("<I", data, offset + BLOCK_SIZE - 4)
        if (m0, m1, end) != (MAGIC_START0, MAGIC_START1, MAGIC_END) or size > DATA_AREA:
            raise InputError(f"UF2 block {offset // BLOCK_SIZE} has bad magic numbers or size",
                             hint="the file is corrupt; rebuild it")
        payload = data[offset + 32:offset + 32 + size]
        blocks.append(Uf2Block(flags, address, payload, number, total, family))
    for index, block in enumerate(blocks):
        if block.number != index or block.total != len(blocks):
            raise InputError(f"UF2 block {index} is numbered {block.number}/{block.total}",
                             hint="the file is truncated or reordered; rebuild it")
    return blocks


def candidate_mount_roots() -> list[Path]:
    """Where desktop systems mount USB drives, for the current user first."""
    user = getpass.getuser()
    return [Path("/media") / user, Path("/run/media") / user, Path("/media"), Path("/mnt"), Path("/Volumes")]


def find_drives(search: Iterable[Path]) -> list[Path]:
    """UF2 drives: each given folder that has INFO_UF2.TXT, or its sub-folders that do."""
    found: list[Path] = []
    for root in search:
        if (root / INFO_FILE).is_file():
            found.append(root)
            continue
        try:
            children = sorted(p for p in root.iterdir() if p.is_dir())
        except OSError:
            continue
        found += [child for child in children if (child / INFO_FILE).is_file()]
    return found


def wait_for_drive(search: list[Path], timeout: float, poll: float = 0.2) -> Path:
    """The one UF2 drive under ``search``, waiting up to ``timeout`` s for it to appear."""
    deadline = time.monotonic() + timeout
    while True:
        drives = find_drives(search)
        if len(drives) == 1:
            return drives[0]
        if len(drives) > 1:
            raise DeviceError("several UF2 drives are mounted: " + ", ".join(map(str, drives)),
                              hint="pick one with --drive")
        if time.monotonic() >= deadline:
            where = ", ".join(map(str, search))
            raise DeviceError(f"no UF2 drive (a folder with {INFO_FILE}) found in {where}",
                              hint="hold BOOTSEL while plugging the board in, then pass its mount "
                                   "point with --drive if it is mounted elsewhere")
        time.sleep(poll)


def board_id(drive: Path) -> str | None:
    """The Board-ID line of INFO_UF2.TXT, to tell the user which bootloader answered."""
    try:
        text = (drive / INFO_FILE).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.lower().startswith("board-id:"):
            return line.split(":", 1)[1].strip()
    return None


def copy_to_drive(uf2: bytes, drive: Path, name: str = "firmware.uf2",
                  progress: Callable[[int], None] | None = None,
                  disappear_timeout: float = 30.0, poll: float = 0.1) -> None:
    """Write ``uf2`` onto ``drive`` in whole blocks, then wait until the drive goes away.

    The bootloader reboots into the new firmware once it has every block, which unmounts
    the drive; a drive that stays means the image was not accepted.
    """
    target = drive / name
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise DeviceError(f"cannot write to the UF2 drive {drive}: {exc.strerror}",
                          hint="check that it is mounted writable") from exc
    try:
        for offset in range(0, len(uf2), BLOCK_SIZE * 16):
            chunk = uf2[offset:offset + BLOCK_SIZE * 16]
            os.write(fd, chunk)
            if progress:
                progress(len(chunk))
        os.fsync(fd)
    except OSError as exc:
        if not (drive / INFO_FILE).exists():
            return  # the board rebooted as soon as it had the last block
        raise DeviceError(f"writing {target} failed: {exc.strerror}",
                          hint="replug the board in BOOTSEL mode and retry") from exc
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    deadline = time.monotonic() + disappear_timeout
    while (drive / INFO_FILE).exists():
        if time.monotonic() >= deadline:
            raise DeviceError(f"the UF2 drive {drive} is still there {disappear_timeout:.0f} s after the copy",
                              hint="the bootloader did not accept the image: check the board's uf2_family "
                                   "and flash_origin")
        time.sleep(poll)
