"""An emulated ESP32 serial bootloader (ROM, then esptool's flasher stub), so the real esptool can flash here.

It speaks the ROM's side of the serial protocol (SLIP frames, SYNC, READ_REG chip
detection, SPI_ATTACH/SET_PARAMS, FLASH_BEGIN/DATA/END, the deflate variants,
SPI_FLASH_MD5, MEM_BEGIN/DATA/END into RAM) over an in-memory flash, behind a TCP port
on 127.0.0.1 or a pty. When esptool uploads its flasher stub to RAM and starts it, the
loader greets with "OHAI" and from then on answers as the stub does: 2 status bytes,
raw MD5 digests, and the stub-only ERASE_FLASH, ERASE_REGION and READ_FLASH. The
uploaded code is not executed: a program whose entry point lies in an uploaded IRAM
segment is taken to be a flasher stub speaking esptool's stub protocol (esptool's
stubs do), so any esptool version works without comparing bytes. Injectable faults
(``Faults``) let tests show that every transport failure ends in a retry or an error.

Run it with ``tinyml emulate --esp-rom`` (which calls ``serve``) or in-process with
``EspRomServer``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from tinyml.device.background import BackgroundService
from tinyml.device.endpoints import listen_tcp, open_pty, socket_url
from tinyml.errors import InputError

SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
MAX_PACKET = 0x10000  # longer "packets" are line noise: dropped, not buffered without end

OP_NAMES = {
    0x02: "FLASH_BEGIN", 0x03: "FLASH_DATA", 0x04: "FLASH_END", 0x05: "MEM_BEGIN",
    0x06: "MEM_END", 0x07: "MEM_DATA", 0x08: "SYNC", 0x09: "WRITE_REG", 0x0A: "READ_REG",
    0x0B: "SPI_SET_PARAMS", 0x0D: "SPI_ATTACH", 0x0F: "CHANGE_BAUDRATE",
    0x10: "FLASH_DEFL_BEGIN", 0x11: "FLASH_DEFL_DATA", 0x12: "FLASH_DEFL_END",
    0x13: "SPI_FLASH_MD5", 0x14: "GET_SECURITY_INFO",
    0xD0: "ERASE_FLASH", 0xD1: "ERASE_REGION", 0xD2: "READ_FLASH", 0xD3: "RUN_USER_CODE",  # stub only
}
OPS = {name: op for op, name in OP_NAMES.items()}
FLASH_DATA_OPS = (OPS["FLASH_DATA"], OPS["FLASH_DEFL_DATA"])
# Argument sizes (ROM, stub) of the commands that only need an "OK" here; the stub's
# SPI_ATTACH lacks the ROM's extra word, which esptool leaves out once the stub runs.
SETTING_SIZES = {OPS["SPI_ATTACH"]: (8, 4), OPS["SPI_SET_PARAMS"]: (24, 24), OPS["CHANGE_BAUDRATE"]: (8, 8)}


@dataclass(frozen=True)
class LoaderError:
    """One failure as each loader reports it: the ROM in its second status byte, the stub
    as a 16-bit big-endian code (the meanings esptool's error table gives them)."""

    rom: int
    stub: int


BAD_MESSAGE = LoaderError(0x05, 0xC000)        # ROM "invalid message", stub "bad data length"
UNKNOWN_COMMAND = LoaderError(0x05, 0xC300)    # stub "invalid command"
BAD_CHECKSUM = LoaderError(0x07, 0xC100)
FLASH_FAILED = LoaderError(0x08, 0xC400)       # ROM "flash write error", stub "failed SPI operation"
NOT_IN_FLASH_MODE = LoaderError(0x09, 0xC600)  # "flash read error" in esptool's ROM table; used loosely
INFLATE_FAILED = LoaderError(0x0B, 0xC700)
BAD_RAM_SIZE = LoaderError(0x0E, 0xC900)       # stub "too much data"
BAD_RAM_ADDRESS = LoaderError(0x0F, 0xC000)
NOT_SUPPORTED = LoaderError(0x05, 0xFF00)      # the ESP32 lacks GET_SECURITY_INFO

CHECKSUM_SEED = 0xEF
SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32
SYNC_VALUE = 0x20120707  # non-zero: "ROM loader"; the stub answers 0
STUB_GREETING = b"OHAI"
MAX_READ_PACKET = 4096  # the stub reads flash one sector-sized packet at a time, one unacknowledged

SPI_USR_BIT = 1 << 18
SPIFLASH_RDID, SPIFLASH_RDSFDP = 0x9F, 0x5A
SFDP_SIGNATURE = 0x50444653  # "SFDP", what a JEDEC flash answers at SFDP address 0


@dataclass(frozen=True)
class Chip:
    """The few facts esptool asks a loader for, per chip: identity, registers, SPI block, RAM.

    chip_id: the GET_SECURITY_INFO chip id (ESP32-C3 and later); None = ESP32, which has no
        such command and is told apart by the magic word at 0x40001000 instead.
    iram, dram: [start, end) of the instruction and data RAM a program may be uploaded to.
    """

    name: str
    chip_id: int | None
    registers: dict[int, int]
    spi_base: int
    spi_usr2: int
    spi_w0: int
    iram: tuple[int, int]
    dram: tuple[int, int]


CHIPS = {
    # MAC 24:0a:c4:00:00:01; UART_CLKDIV 347 = a 40 MHz crystal seen at 115200 baud
    "esp32": Chip("esp32", None, {0x40001000: 0x00F01D83, 0x3FF40014: 347,
                                  0x3FF5A004: 0xC4000001, 0x3FF5A008: 0x0000240A},
                  0x3FF42000, 0x3FF42024, 0x3FF42080, (0x40080000, 0x400C0000), (0x3FFAE000, 0x40000000)),
    "esp32s3": Chip("esp32s3", 9, {0x60007044: 0x18000002, 0x60007048: 0x00003485},
                    0x60002000, 0x60002020, 0x60002058, (0x40370000, 0x403E0000), (0x3FC88000, 0x3FD00000)),
    "esp32c3": Chip("esp32c3", 5, {0x60008844: 0x18000003, 0x60008848: 0x00003485},
                    0x60002000, 0x60002020, 0x60002058, (0x4037C000, 0x403E0000), (0x3FC80000, 0x3FCE0000)),
}
DEFAULT_FLASH_SIZE = 4 * 1024 * 1024
SECTOR = 4096


def slip_encode(packet: bytes) -> bytes:
    """One SLIP frame: END, the packet with END/ESC escaped, END."""
    body = packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
    return b"\xc0" + body + b"\xc0"


class SlipDecoder:
    """Turns a byte stream into packets; a bad escape drops the packet it is in."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self._escaped = False
        self._broken = False

    def feed(self, data: bytes) -> list[bytes]:
        packets: list[bytes] = []
        for byte in data:
            if byte == SLIP_END:
                if self._in_frame and self._buf and not self._broken:
                    packets.append(bytes(self._buf))
                self._buf.clear()
                self._in_frame, self._escaped, self._broken = True, False, False
            elif not self._in_frame:
                continue  # noise between frames
            elif self._escaped:
                self._escaped = False
                if byte == SLIP_ESC_END:
                    self._buf.append(SLIP_END)
                elif byte == SLIP_ESC_ESC:
                    self._buf.append(SLIP_ESC)
                else:
                    self._broken = True
            elif byte == SLIP_ESC:
                self._escaped = True
            else:
                self._buf.append(byte)
            if len(self._buf) > MAX_PACKET:
                self._buf.clear()
                self._broken = True
        return packets


def nor_program(old: bytes, new: bytes) -> bytes:
    """What NOR flash holds after programming ``new`` over ``old``: bits only go 1 -> 0.

    Writing without erasing first therefore corrupts data, as on the real chip.
    """
    size = len(new)
    return (int.from_bytes(old, "little") & int.from_bytes(new, "little")).to_bytes(size, "little")


def data_checksum(data: bytes) -> int:
    """The loader's checksum of a *_DATA payload: 0xEF XOR every byte."""
    state = CHECKSUM_SEED
    for byte in data:
        state ^= byte
    return state


@dataclass
class Faults:
    """Transport and loader failures to inject, each one-shot count or a permanent flag.

    The flash data faults strike FLASH_DATA/FLASH_DEFL_DATA in ROM and stub mode alike.
    drop: lose one byte of each of the next N flash data requests (the loader answers
        "invalid message" / "bad data length" and esptool resends the block).
    corrupt: flip one byte of each of the next N flash data payloads (checksum error,
        esptool resends).
    bad_checksum: answer every flash data block with a checksum error (esptool gives up).
    stall: stop answering from the first flash data block on (esptool times out).
    no_sync: never answer SYNC (esptool cannot connect).
    corrupt_flash: one written byte ends up wrong in flash (the MD5 check catches it).
    upload_corrupt: flip one byte of each of the next N RAM upload (MEM_DATA) payloads:
        checksum error, and esptool does not resend RAM blocks, so the stub upload fails.
    upload_stall: stop answering from the first RAM upload block on (esptool times out).
    no_ohai: the uploaded stub never greets (esptool: "Failed to start stub flasher").
    """

    drop: int = 0
    corrupt: int = 0
    bad_checksum: bool = False
    stall: bool = False
    no_sync: bool = False
    corrupt_flash: bool = False
    upload_corrupt: int = 0
    upload_stall: bool = False
    no_ohai: bool = False

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """Read ``"drop:2,corrupt,stall"`` (names with optional counts, comma-separated)."""
        faults = cls()
        for item in filter(None, (part.strip() for part in (spec or "").split(","))):
            name, _, count = item.partition(":")
            key = name.strip().replace("-", "_")
            if key not in cls.__dataclass_fields__:
                raise InputError(f"unknown ESP ROM fault {name!r}",
                                 hint="use " + ", ".join(n.replace("_", "-") for n in cls.__dataclass_fields__))
            try:
                value = int(count) if count else 1
            except ValueError as exc:
                raise InputError(f"bad count {count!r} for ESP ROM fault {name!r}",
                                 hint="write NAME:COUNT, e.g. drop:2") from exc
            is_flag = isinstance(getattr(faults, key), bool)
            faults = replace(faults, **{key: bool(value) if is_flag else value})
        return faults


@dataclass
class _FlashWrite:
    """A FLASH_BEGIN (or FLASH_DEFL_BEGIN) in progress."""

    offset: int
    size: int
    blocks: int
    block_size: int
    next_seq: int = 0
    written: int = 0
    inflater: zlib._Decompress | None = None  # set for the deflate variant


@dataclass
class _RamWrite:
    """A MEM_BEGIN in progress: one segment of a program uploaded to RAM."""

    address: int
    size: int
    block_size: int
    data: bytearray = field(default_factory=bytearray)
    next_seq: int = 0


@dataclass
class _FlashRead:
    """A stub READ_FLASH in progress: one packet out, then wait for the host's byte count."""

    offset: int
    end: int
    packet_size: int
    sent: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.md5)


@dataclass
class RomLoader:
    """The loader's state machine: one request packet in, zero or more packets out.

    It starts as the ROM loader; ``stub_running`` turns true once an uploaded flasher stub
    has been started (MEM_END with an entry point in uploaded code) and false again when
    esptool leaves the stub with FLASH_END(reboot) or RUN_USER_CODE (there is no app to
    run, so the chip is back in the ROM loader). The stub stays resident across client
    connections, as on a chip nobody resets: esptool then sees SYNC answered with 0.
    """

    flash: bytearray
    faults: Faults = field(default_factory=Faults)
    chip: Chip = CHIPS["esp32"]
    registers: dict[int, int] = field(default_factory=dict)
    ram: dict[int, bytes] = field(default_factory=dict)  # uploaded segments by start address
    stub_running: bool = False
    _write: _FlashWrite | None = None
    _ram_write: _RamWrite | None = None
    _read: _FlashRead | None = None
    _stalled: bool = False
    _corrupted_flash: bool = False

    def __post_init__(self) -> None:
        for addr, value in self.chip.registers.items():
            self.registers.setdefault(addr, value)

    def _jedec_id(self) -> int:
        """A Winbond-like RDID answer whose capacity byte matches the flash size."""
        return 0xEF | (0x40 << 8) | ((len(self.flash).bit_length() - 1) << 16)

    def handle(self, packet: bytes) -> list[bytes]:
        """Answer one decoded request packet with the response packets (unframed)."""
        if self._read is not None:
            return self._read_acknowledged(packet)
        if len(packet) < 8 or packet[0] != 0x00:
            return []  # the loader ignores what is not a request
        op, size, checksum = struct.unpack_from("<BHI", packet, 1)
        data = packet[8:]
        if op == OPS["SYNC"]:
            return self._sync(data)
        if self._stalled:
            return []
        data = self._transport_faults(op, data)
        if self._stalled:
            return []
        if len(data) != size:
            return [self._reply(op, error=BAD_MESSAGE)]
        handler = self._handlers().get(op)
        if handler is None:
            return [self._reply(op, error=UNKNOWN_COMMAND)]
        return handler(op, data, checksum)

    def _handlers(self) -> dict[int, Callable[[int, bytes, int], list[bytes]]]:
        common = {
            OPS["READ_REG"]: self._read_reg, OPS["WRITE_REG"]: self._write_reg,
            **dict.fromkeys(SETTING_SIZES, self._setting),
            OPS["FLASH_BEGIN"]: self._flash_begin, OPS["FLASH_DEFL_BEGIN"]: self._flash_begin,
            OPS["FLASH_DATA"]: self._flash_data, OPS["FLASH_DEFL_DATA"]: self._flash_data,
            OPS["FLASH_END"]: self._flash_end, OPS["FLASH_DEFL_END"]: self._flash_end,
            OPS["SPI_FLASH_MD5"]: self._md5, OPS["GET_SECURITY_INFO"]: self._security_info,
            OPS["MEM_BEGIN"]: self._mem_begin, OPS["MEM_DATA"]: self._mem_data, OPS["MEM_END"]: self._mem_end,
        }
        if not self.stub_running:
            return common
        return {**common, OPS["ERASE_FLASH"]: self._erase_flash, OPS["ERASE_REGION"]: self._erase_region,
                OPS["READ_FLASH"]: self._read_flash, OPS["RUN_USER_CODE"]: self._run_user_code}

    def _reply(self, op: int, value: int = 0, payload: bytes = b"", error: LoaderError | None = None) -> bytes:
        """A response: the ESP32 ROM ends it with 4 status bytes, the stub with 2."""
        if self.stub_running:
            status = struct.pack(">H", error.stub if error else 0)
        else:
            status = bytes([1 if error else 0, error.rom if error else 0, 0, 0])
        body = payload + status
        return struct.pack("<BBHI", 0x01, op, len(body), value) + body

    def _sync(self, data: bytes) -> list[bytes]:
        if self.faults.no_sync or data != SYNC_PAYLOAD:
            return []
        return [self._reply(OPS["SYNC"], 0 if self.stub_running else SYNC_VALUE)] * 8

    def _transport_faults(self, op: int, data: bytes) -> bytes:
        """Apply the faults that strike data requests on the wire, before the loader sees them."""
        if op in FLASH_DATA_OPS:
            if self.faults.stall:
                self._stalled = True
            elif self.faults.drop > 0 and len(data) > 20:
                self.faults.drop -= 1
                data = data[:20] + data[21:]
            elif self.faults.corrupt > 0 and len(data) > 20:
                self.faults.corrupt -= 1
                data = _flip_byte(data, 20)
        elif op == OPS["MEM_DATA"]:
            if self.faults.upload_stall:
                self._stalled = True
            elif self.faults.upload_corrupt > 0 and len(data) > 20:
                self.faults.upload_corrupt -= 1
                data = _flip_byte(data, 20)
        return data

    def _setting(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        """SPI pins, flash parameters, baud rate: nothing to act on without real hardware."""
        rom_size, stub_size = SETTING_SIZES[op]
        if len(data) != (stub_size if self.stub_running else rom_size):
            return [self._reply(op, error=BAD_MESSAGE)]
        return [self._reply(op)]

    def _read_reg(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        if len(data) != 4:
            return [self._reply(op, error=BAD_MESSAGE)]
        (addr,) = struct.unpack("<I", data)
        return [self._reply(op, self.registers.get(addr, 0))]

    def _write_reg(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        if len(data) < 16 or len(data) % 16:
            return [self._reply(op, error=BAD_MESSAGE)]
        for i in range(0, len(data), 16):
            addr, value, mask, _delay = struct.unpack_from("<IIII", data, i)
            old = self.registers.get(addr, 0)
            self.registers[addr] = (old & ~mask) | (value & mask)
            if addr == self.chip.spi_base and value & SPI_USR_BIT:
                self._spi_user_command()
        return [self._reply(op)]

    def _spi_user_command(self) -> None:
        """Answer the SPI flash commands esptool sends to identify the chip, at once."""
        command = self.registers.get(self.chip.spi_usr2, 0) & 0xFF
        answers = {SPIFLASH_RDID: self._jedec_id(), SPIFLASH_RDSFDP: SFDP_SIGNATURE}
        self.registers[self.chip.spi_w0] = answers.get(command, 0)
        self.registers[self.chip.spi_base] &= ~SPI_USR_BIT

    def _security_info(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        """Flags, flash_crypt_cnt, 7 key purposes, chip id, API version: nothing secured."""
        if self.chip.chip_id is None:
            return [self._reply(op, error=NOT_SUPPORTED)]  # the ESP32 lacks the command
        info = struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self.chip.chip_id, 0)
        return [self._reply(op, payload=info)]

    def _erase(self, start: int, end: int) -> None:
        """Erase whole sectors covering [start, end), as the chip does."""
        start -= start % SECTOR
        end = min(len(self.flash), -(-end // SECTOR) * SECTOR)
        self.flash[start:end] = b"\xff" * (end - start)

    def _flash_begin(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        if len(data) not in (16, 20):
            return [self._reply(op, error=BAD_MESSAGE)]
        size, blocks, block_size, offset = struct.unpack_from("<IIII", data)
        if offset + size > len(self.flash) or block_size == 0:
            return [self._reply(op, error=FLASH_FAILED)]
        self._erase(offset, offset + size)  # the ROM erases up front; the stub as it writes, to the same end
        inflater = zlib.decompressobj() if op == OPS["FLASH_DEFL_BEGIN"] else None
        self._write = _FlashWrite(offset, size, blocks, block_size, inflater=inflater)
        return [self._reply(op)]

    def _data_block(self, op: int, data: bytes, checksum: int, next_seq: int,
                    refuse_checksum: bool = False) -> tuple[bytes, list[bytes] | None]:
        """Check a *_DATA request (header, checksum, order): its block, or the answer to give instead.

        A resend of the block just taken (its answer was lost) is acknowledged, not taken again.
        """
        if len(data) < 16:
            return b"", [self._reply(op, error=BAD_MESSAGE)]
        length, seq = struct.unpack_from("<II", data)
        block = data[16:]
        if length != len(block):
            return b"", [self._reply(op, error=BAD_MESSAGE)]
        if data_checksum(block) != checksum or refuse_checksum:
            return b"", [self._reply(op, error=BAD_CHECKSUM)]
        if seq == next_seq - 1:
            return b"", [self._reply(op)]
        if seq != next_seq:
            return b"", [self._reply(op, error=BAD_MESSAGE)]
        return block, None

    def _flash_data(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        write = self._write
        deflated = op == OPS["FLASH_DEFL_DATA"]
        if write is None or (write.inflater is not None) != deflated:
            return [self._reply(op, error=NOT_IN_FLASH_MODE)]
        block, refusal = self._data_block(op, data, checksum, write.next_seq, self.faults.bad_checksum)
        if refusal:
            return refusal
        if deflated:
            try:
                block = write.inflater.decompress(block)
            except zlib.error:
                return [self._reply(op, error=INFLATE_FAILED)]
        else:
            block = block[:max(0, write.size - write.written)]  # the last block's 0xFF padding
        start = write.offset + write.written
        if start + len(block) > len(self.flash):
            return [self._reply(op, error=FLASH_FAILED)]
        self.flash[start:start + len(block)] = nor_program(self.flash[start:start + len(block)], block)
        if self.faults.corrupt_flash and not self._corrupted_flash and block:
            self.flash[start] ^= 0x01
            self._corrupted_flash = True
        write.written += len(block)
        write.next_seq += 1
        return [self._reply(op)]

    def _flash_end(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        """Leave flash mode. The stub told to reboot (flag 0) hands back to the ROM loader."""
        if len(data) != 4:
            return [self._reply(op, error=BAD_MESSAGE)]
        self._write = None
        reply = self._reply(op)
        if self.stub_running and data == b"\x00\x00\x00\x00":
            self.stub_running = False
        return [reply]

    def _md5(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        """The ROM answers 32 hex characters, the stub the 16 raw digest bytes."""
        if len(data) != 16:
            return [self._reply(op, error=BAD_MESSAGE)]
        addr, size = struct.unpack_from("<II", data)
        if addr + size > len(self.flash):
            return [self._reply(op, error=FLASH_FAILED)]
        digest = hashlib.md5(self.flash[addr:addr + size])
        return [self._reply(op, payload=digest.digest() if self.stub_running else digest.hexdigest().encode())]

    def _in_ram(self, start: int, end: int) -> bool:
        return any(low <= start and end <= high for low, high in (self.chip.iram, self.chip.dram))

    def _mem_begin(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        if len(data) != 16:
            return [self._reply(op, error=BAD_MESSAGE)]
        size, blocks, block_size, address = struct.unpack("<IIII", data)
        if not self._in_ram(address, address + size):
            return [self._reply(op, error=BAD_RAM_ADDRESS)]
        if block_size == 0 or blocks * block_size < size:
            return [self._reply(op, error=BAD_RAM_SIZE)]
        self._ram_write = _RamWrite(address, size, block_size)
        return [self._reply(op)]

    def _mem_data(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        upload = self._ram_write
        if upload is None:
            return [self._reply(op, error=NOT_IN_FLASH_MODE)]
        block, refusal = self._data_block(op, data, checksum, upload.next_seq)
        if refusal:
            return refusal
        if len(block) > upload.block_size or len(upload.data) + len(block) > upload.size:
            return [self._reply(op, error=BAD_RAM_SIZE)]
        upload.data += block
        upload.next_seq += 1
        if len(upload.data) == upload.size:
            self._store_segment(upload.address, bytes(upload.data))
        return [self._reply(op)]

    def _store_segment(self, address: int, code: bytes) -> None:
        """Keep the segment; older ones it overlaps are forgotten (only whole uploads count as code)."""
        end = address + len(code)
        for start in [s for s, old in self.ram.items() if s < end and address < s + len(old)]:
            del self.ram[start]
        self.ram[address] = code

    def _mem_end(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        """Leave RAM download mode; flag 0 runs the program at the entry point.

        The program is not executed: an entry point inside an uploaded IRAM segment starts
        the emulated flasher stub, which greets with OHAI; any other entry is refused.
        """
        if len(data) != 8:
            return [self._reply(op, error=BAD_MESSAGE)]
        upload, self._ram_write = self._ram_write, None
        if upload is not None and len(upload.data) != upload.size:
            return [self._reply(op, error=BAD_RAM_SIZE)]
        no_run, entry = struct.unpack("<II", data)
        if no_run:
            return [self._reply(op)]
        if not self._in_uploaded_code(entry):
            return [self._reply(op, error=BAD_RAM_ADDRESS)]
        reply = self._reply(op)
        self._write, self._read, self.stub_running = None, None, True
        return [reply] if self.faults.no_ohai else [reply, STUB_GREETING]

    def _in_uploaded_code(self, entry: int) -> bool:
        low, high = self.chip.iram
        return any(low <= start <= entry < start + len(code) <= high for start, code in self.ram.items())

    def _erase_flash(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        self._erase(0, len(self.flash))
        return [self._reply(op)]

    def _erase_region(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        """The stub erases whole sectors only: an unaligned start or size is refused."""
        if len(data) != 8:
            return [self._reply(op, error=BAD_MESSAGE)]
        offset, size = struct.unpack("<II", data)
        if offset % SECTOR or size % SECTOR:
            return [self._reply(op, error=BAD_MESSAGE)]
        if offset + size > len(self.flash):
            return [self._reply(op, error=FLASH_FAILED)]
        self._erase(offset, offset + size)
        return [self._reply(op)]

    def _read_flash(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        """Answer, then send the data one packet at a time, each after the host acknowledged
        the previous one with its byte count (the stub keeps one packet in flight), then
        the 16-byte MD5 digest of everything sent."""
        if len(data) != 16:
            return [self._reply(op, error=BAD_MESSAGE)]
        offset, size, packet_size, _in_flight = struct.unpack("<IIII", data)
        if not 0 < packet_size <= MAX_READ_PACKET:
            return [self._reply(op, error=BAD_MESSAGE)]
        if offset + size > len(self.flash):
            return [self._reply(op, error=FLASH_FAILED)]
        self._read = _FlashRead(offset, offset + size, packet_size)
        return [self._reply(op), *self._next_read_packet()]

    def _next_read_packet(self) -> list[bytes]:
        read = self._read
        start = read.offset + read.sent
        if start >= read.end:
            self._read = None
            return [read.digest.digest()]
        packet = bytes(self.flash[start:min(read.end, start + read.packet_size)])
        read.digest.update(packet)
        read.sent += len(packet)
        return [packet]

    def _read_acknowledged(self, packet: bytes) -> list[bytes]:
        """The host's acknowledgement (u32 bytes received so far) releases the next packet;
        anything else ends the read early with the digest of what was sent, as the stub does."""
        read = self._read
        if len(packet) == 4:
            return self._next_read_packet()
        self._read = None
        return [read.digest.digest()]

    def _run_user_code(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        """No answer, as on the chip; with no app to run, the emulator is back in the ROM loader."""
        self.stub_running = False
        return []


def _flip_byte(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x5A]) + data[index + 1:]


def load_flash(save: Path | None, flash_size: int) -> bytearray:
    """An erased flash, or the saved image when ``save`` exists (same size required)."""
    if flash_size <= 0 or flash_size % SECTOR or flash_size & (flash_size - 1):
        raise InputError(f"flash size {flash_size} is not a power of two multiple of 4 KiB",
                         hint="use e.g. 4194304 (4 MB)")
    if save is not None and (save.is_dir() or not save.parent.is_dir()):
        raise InputError(f"cannot keep the flash image at {save}", hint="give a file path in an existing folder")
    if save is None or not save.exists():
        return bytearray(b"\xff" * flash_size)
    data = save.read_bytes()
    if len(data) != flash_size:
        raise InputError(f"{save} holds {len(data)} bytes, not the flash size {flash_size}",
                         hint="pass the matching --flash-size or another --save file")
    return bytearray(data)


def save_flash(flash: bytes, path: Path) -> None:
    """Write the flash image atomically, so a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(flash)
    os.replace(tmp, path)


class EspRomServer(BackgroundService):
    """The loader behind a TCP port on 127.0.0.1 or a pty, served from a background thread.

    One client at a time (esptool opens, talks, closes). The flash and a running stub survive
    reconnects; the flash is saved to ``save`` after every MD5 check (esptool's verify step)
    and disconnect.
    """

    def __init__(self, flash_size: int = DEFAULT_FLASH_SIZE, save: Path | None = None,
                 faults: Faults | None = None, tcp_port: int | None = 0, pty: bool = False,
                 chip: str = "esp32"):
        if pty == (tcp_port is not None):
            raise InputError("the ESP ROM loader needs exactly one of a TCP port or a pty",
                             hint="pass --tcp PORT or --pty")
        if chip not in CHIPS:
            raise InputError(f"the emulated ROM loader does not know chip {chip!r}",
                             hint="use one of " + ", ".join(CHIPS))
        self.loader = RomLoader(load_flash(save, flash_size), faults or Faults(), CHIPS[chip])
        self.save = save
        super().__init__("esp-rom")
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._pty_master: int | None = None
        if pty:
            master, slave, self.endpoint = open_pty()
            os.close(slave)  # so only the client holds it: flashers refuse ports others have open
            self._pty_master = master
        else:
            if not 0 <= (tcp_port or 0) <= 65535:
                raise InputError(f"TCP port {tcp_port} is out of range", hint="use 1-65535, or 0 for any free port")
            listener = listen_tcp(tcp_port or 0)
            listener.settimeout(0.2)
            self._listener = listener
            self.port = listener.getsockname()[1]
            self.endpoint = socket_url(self.port)

    def _close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._pty_master is not None:
            with contextlib.suppress(OSError):
                os.close(self._pty_master)
        self._save()

    def flash_bytes(self) -> bytes:
        with self._lock:
            return bytes(self.loader.flash)

    def _save(self) -> None:
        if self.save is not None:
            save_flash(self.flash_bytes(), self.save)

    def _serve_stream(self, chunks: Iterator[bytes], send: Callable[[bytes], None]) -> None:
        decoder = SlipDecoder()
        for chunk in chunks:
            for packet in decoder.feed(chunk):
                with self._lock:
                    replies = self.loader.handle(packet)
                for reply in replies:
                    send(slip_encode(reply))
                if len(packet) >= 8 and packet[:2] == bytes([0x00, OPS["SPI_FLASH_MD5"]]):  # the verify step
                    self._save()

    def _run(self) -> None:
        if self._pty_master is not None:
            master = self._pty_master
            self._serve_stream(self._pty_chunks(master), lambda b: self._pty_write(master, b))
            return
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(0.2)
                with contextlib.suppress(OSError):
                    self._serve_stream(self._socket_chunks(conn), conn.sendall)
            self._save()

    def _socket_chunks(self, conn: socket.socket) -> Iterator[bytes]:
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            yield chunk

    @staticmethod
    def _pty_write(master: int, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the client closed the pty: the answer is lost, as on a wire
            os.write(master, data)

    def _pty_chunks(self, master: int) -> Iterator[bytes]:
        while not self._stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                yield os.read(master, 65536)
            except OSError:  # no process has the pty open right now
                time.sleep(0.05)


def serve(tcp_port: int | None, pty: bool, flash_size: int = DEFAULT_FLASH_SIZE,
          save: Path | None = None, faults: Faults | str | None = None,
          announce: Callable[[str], None] = print, chip: str = "esp32",
          stop: threading.Event | None = None) -> None:
    """Run the emulated ESP32 ROM loader (and the stub esptool starts on it) until ``stop`` is set
    or interrupted.

    This is ``tinyml emulate --esp-rom``.

    tcp_port: listen on 127.0.0.1:PORT (0 picks a free port); None when ``pty`` is set.
    pty: serve on a new pseudo-terminal instead; its path is announced.
    flash_size: bytes of emulated flash (power of two, default 4 MB).
    save: flash image file, loaded at start when present and rewritten after every
        verify step, disconnect and at exit.
    faults: a ``Faults`` or its spec string (``"drop:2,corrupt,stall"``) for tests.
    announce: receives one line naming the endpoint to give esptool's ``-p``.
    chip: which ROM to be: esp32 (default), esp32s3 or esp32c3.
    stop: set by the caller's signal handler: the loader stops without an exception raised at an
        arbitrary point (a KeyboardInterrupt inside a thread join can leave the join hanging).
    Raises InputError for a bad size, fault spec or busy port.
    """
    parsed = faults if isinstance(faults, Faults) else Faults.parse(faults)
    server = EspRomServer(flash_size, save, parsed, None if pty else tcp_port, pty, chip)
    with server:
        announce(f"{chip.upper()} ROM loader ({flash_size // 1024} KiB flash) on {server.endpoint}")
        with contextlib.suppress(KeyboardInterrupt):
            while not server.wait(0.2) and not (stop is not None and stop.is_set()):
                pass
