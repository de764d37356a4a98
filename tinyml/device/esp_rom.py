"""An emulated ESP32 ROM serial bootloader, so the real esptool can flash something here.

It speaks the ROM's side of the serial protocol (SLIP frames, SYNC, READ_REG chip
detection, SPI_ATTACH/SET_PARAMS, FLASH_BEGIN/DATA/END, the deflate variants and
SPI_FLASH_MD5) over an in-memory flash, behind a TCP port on 127.0.0.1 or a pty.
It is not the flasher stub: esptool must run with ``--no-stub``. Injectable faults
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
import tty
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from tinyml.device.background import BackgroundService
from tinyml.errors import InputError

SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
MAX_PACKET = 0x10000  # longer "packets" are line noise: dropped, not buffered without end

OP_NAMES = {
    0x02: "FLASH_BEGIN", 0x03: "FLASH_DATA", 0x04: "FLASH_END", 0x05: "MEM_BEGIN",
    0x06: "MEM_END", 0x07: "MEM_DATA", 0x08: "SYNC", 0x09: "WRITE_REG", 0x0A: "READ_REG",
    0x0B: "SPI_SET_PARAMS", 0x0D: "SPI_ATTACH", 0x0F: "CHANGE_BAUDRATE",
    0x10: "FLASH_DEFL_BEGIN", 0x11: "FLASH_DEFL_DATA", 0x12: "FLASH_DEFL_END",
    0x13: "SPI_FLASH_MD5", 0x14: "GET_SECURITY_INFO",
}
OPS = {name: op for op, name in OP_NAMES.items()}

# ROM error codes carried in the second status byte.
ERR_INVALID_MESSAGE = 0x05
ERR_CHECKSUM = 0x07
ERR_FLASH_WRITE = 0x08
ERR_NOT_IN_FLASH_MODE = 0x09  # "Flash read error" in esptool's table; the ROM uses it loosely
ERR_DEFLATE = 0x0B

CHECKSUM_SEED = 0xEF
SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32
SYNC_VALUE = 0x20120707  # non-zero: "ROM loader, not the stub"

SPI_USR_BIT = 1 << 18
SPIFLASH_RDID, SPIFLASH_RDSFDP = 0x9F, 0x5A
SFDP_SIGNATURE = 0x50444653  # "SFDP", what a JEDEC flash answers at SFDP address 0


@dataclass(frozen=True)
class Chip:
    """The few facts esptool asks a ROM loader for, per chip: identity, registers, SPI block.

    chip_id: the GET_SECURITY_INFO chip id (ESP32-C3 and later); None = ESP32, which has no
        such command and is told apart by the magic word at 0x40001000 instead.
    """

    name: str
    chip_id: int | None
    registers: dict[int, int]
    spi_base: int
    spi_usr2: int
    spi_w0: int


CHIPS = {
    # MAC 24:0a:c4:00:00:01; UART_CLKDIV 347 = a 40 MHz crystal seen at 115200 baud
    "esp32": Chip("esp32", None, {0x40001000: 0x00F01D83, 0x3FF40014: 347,
                                  0x3FF5A004: 0xC4000001, 0x3FF5A008: 0x0000240A},
                  0x3FF42000, 0x3FF42024, 0x3FF42080),
    "esp32s3": Chip("esp32s3", 9, {0x60007044: 0x18000002, 0x60007048: 0x00003485},
                    0x60002000, 0x60002020, 0x60002058),
    "esp32c3": Chip("esp32c3", 5, {0x60008844: 0x18000003, 0x60008848: 0x00003485},
                    0x60002000, 0x60002020, 0x60002058),
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
    """The ROM's checksum of a *_DATA payload: 0xEF XOR every byte."""
    state = CHECKSUM_SEED
    for byte in data:
        state ^= byte
    return state


@dataclass
class Faults:
    """Transport and loader failures to inject, each one-shot count or a permanent flag.

    drop: lose one byte of each of the next N flash data requests (the loader answers
        "invalid message" and esptool resends the block).
    corrupt: flip one byte of each of the next N flash data payloads (checksum error,
        esptool resends).
    bad_checksum: answer every flash data block with a checksum error (esptool gives up).
    stall: stop answering from the first flash data block on (esptool times out).
    no_sync: never answer SYNC (esptool cannot connect).
    corrupt_flash: one written byte ends up wrong in flash (the MD5 check catches it).
    """

    drop: int = 0
    corrupt: int = 0
    bad_checksum: bool = False
    stall: bool = False
    no_sync: bool = False
    corrupt_flash: bool = False

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
class RomLoader:
    """The ROM loader's state machine: one request packet in, zero or more packets out."""

    flash: bytearray
    faults: Faults = field(default_factory=Faults)
    chip: Chip = CHIPS["esp32"]
    registers: dict[int, int] = field(default_factory=dict)
    _write: _FlashWrite | None = None
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
        if len(packet) < 8 or packet[0] != 0x00:
            return []  # the ROM ignores what is not a request
        op, size, checksum = struct.unpack_from("<BHI", packet, 1)
        data = packet[8:]
        if op == OPS["SYNC"]:
            return self._sync(data)
        if self._stalled:
            return []
        if op in (OPS["FLASH_DATA"], OPS["FLASH_DEFL_DATA"]):
            data = self._transport_faults(data)
            if self._stalled:
                return []
        if len(data) != size:
            return [self._reply(op, error=ERR_INVALID_MESSAGE)]
        handler = self._handlers().get(op)
        if handler is None:
            return [self._reply(op, error=ERR_INVALID_MESSAGE)]
        return [handler(op, data, checksum)]

    def _handlers(self) -> dict[int, Callable[[int, bytes, int], bytes]]:
        return {
            OPS["READ_REG"]: self._read_reg, OPS["WRITE_REG"]: self._write_reg,
            OPS["SPI_ATTACH"]: self._ok, OPS["SPI_SET_PARAMS"]: self._ok,
            OPS["CHANGE_BAUDRATE"]: self._ok,
            OPS["FLASH_BEGIN"]: self._flash_begin, OPS["FLASH_DEFL_BEGIN"]: self._flash_begin,
            OPS["FLASH_DATA"]: self._flash_data, OPS["FLASH_DEFL_DATA"]: self._flash_data,
            OPS["FLASH_END"]: self._flash_end, OPS["FLASH_DEFL_END"]: self._flash_end,
            OPS["SPI_FLASH_MD5"]: self._md5, OPS["GET_SECURITY_INFO"]: self._security_info,
        }

    @staticmethod
    def _reply(op: int, value: int = 0, payload: bytes = b"", error: int = 0) -> bytes:
        status = bytes([1 if error else 0, error, 0, 0])  # the ESP32 ROM sends 4 status bytes
        body = payload + status
        return struct.pack("<BBHI", 0x01, op, len(body), value) + body

    def _sync(self, data: bytes) -> list[bytes]:
        if self.faults.no_sync or data != SYNC_PAYLOAD:
            return []
        return [self._reply(OPS["SYNC"], SYNC_VALUE)] * 8

    def _transport_faults(self, data: bytes) -> bytes:
        """Apply the faults that strike flash data on the wire, before the loader sees it."""
        if self.faults.stall:
            self._stalled = True
        elif self.faults.drop > 0 and len(data) > 20:
            self.faults.drop -= 1
            data = data[:20] + data[21:]
        elif self.faults.corrupt > 0 and len(data) > 20:
            self.faults.corrupt -= 1
            data = data[:20] + bytes([data[20] ^ 0x5A]) + data[21:]
        return data

    def _ok(self, op: int, data: bytes, checksum: int) -> bytes:
        return self._reply(op)

    def _read_reg(self, op: int, data: bytes, checksum: int) -> bytes:
        if len(data) != 4:
            return self._reply(op, error=ERR_INVALID_MESSAGE)
        (addr,) = struct.unpack("<I", data)
        return self._reply(op, self.registers.get(addr, 0))

    def _write_reg(self, op: int, data: bytes, checksum: int) -> bytes:
        if len(data) < 16 or len(data) % 16:
            return self._reply(op, error=ERR_INVALID_MESSAGE)
        for i in range(0, len(data), 16):
            addr, value, mask, _delay = struct.unpack_from("<IIII", data, i)
            old = self.registers.get(addr, 0)
            self.registers[addr] = (old & ~mask) | (value & mask)
            if addr == self.chip.spi_base and value & SPI_USR_BIT:
                self._spi_user_command()
        return self._reply(op)

    def _spi_user_command(self) -> None:
        """Answer the SPI flash commands esptool sends to identify the chip, at once."""
        command = self.registers.get(self.chip.spi_usr2, 0) & 0xFF
        answers = {SPIFLASH_RDID: self._jedec_id(), SPIFLASH_RDSFDP: SFDP_SIGNATURE}
        self.registers[self.chip.spi_w0] = answers.get(command, 0)
        self.registers[self.chip.spi_base] &= ~SPI_USR_BIT

    def _security_info(self, op: int, data: bytes, checksum: int) -> bytes:
        """Flags, flash_crypt_cnt, 7 key purposes, chip id, API version: nothing secured."""
        if self.chip.chip_id is None:
            return self._reply(op, error=ERR_INVALID_MESSAGE)  # the ESP32 ROM lacks the command
        return self._reply(op, payload=struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self.chip.chip_id, 0))

    def _flash_begin(self, op: int, data: bytes, checksum: int) -> bytes:
        if len(data) not in (16, 20):
            return self._reply(op, error=ERR_INVALID_MESSAGE)
        size, blocks, block_size, offset = struct.unpack_from("<IIII", data)
        if offset + size > len(self.flash) or block_size == 0:
            return self._reply(op, error=ERR_FLASH_WRITE)
        start = offset - offset % SECTOR
        end = min(len(self.flash), -(-(offset + size) // SECTOR) * SECTOR)
        self.flash[start:end] = b"\xff" * (end - start)  # the ROM erases up front
        inflater = zlib.decompressobj() if op == OPS["FLASH_DEFL_BEGIN"] else None
        self._write = _FlashWrite(offset, size, blocks, block_size, inflater=inflater)
        return self._reply(op)

    def _flash_data(self, op: int, data: bytes, checksum: int) -> bytes:
        write = self._write
        deflated = op == OPS["FLASH_DEFL_DATA"]
        if write is None or (write.inflater is not None) != deflated:
            return self._reply(op, error=ERR_NOT_IN_FLASH_MODE)
        if len(data) < 16:
            return self._reply(op, error=ERR_INVALID_MESSAGE)
        length, seq = struct.unpack_from("<II", data)
        block = data[16:]
        if length != len(block):
            return self._reply(op, error=ERR_INVALID_MESSAGE)
        if data_checksum(block) != checksum or self.faults.bad_checksum:
            return self._reply(op, error=ERR_CHECKSUM)
        if seq == write.next_seq - 1:
            return self._reply(op)  # a resend of a block already written (its answer was lost)
        if seq != write.next_seq:
            return self._reply(op, error=ERR_INVALID_MESSAGE)
        if deflated:
            try:
                block = write.inflater.decompress(block)
            except zlib.error:
                return self._reply(op, error=ERR_DEFLATE)
        start = write.offset + write.written
        if start + len(block) > len(self.flash):
            return self._reply(op, error=ERR_FLASH_WRITE)
        self.flash[start:start + len(block)] = nor_program(self.flash[start:start + len(block)], block)
        if self.faults.corrupt_flash and not self._corrupted_flash and block:
            self.flash[start] ^= 0x01
            self._corrupted_flash = True
        write.written += len(block)
        write.next_seq += 1
        return self._reply(op)

    def _flash_end(self, op: int, data: bytes, checksum: int) -> bytes:
        self._write = None
        return self._reply(op)

    def _md5(self, op: int, data: bytes, checksum: int) -> bytes:
        if len(data) != 16:
            return self._reply(op, error=ERR_INVALID_MESSAGE)
        addr, size = struct.unpack_from("<II", data)
        if addr + size > len(self.flash):
            return self._reply(op, error=ERR_FLASH_WRITE)
        digest = hashlib.md5(self.flash[addr:addr + size]).hexdigest().encode()
        return self._reply(op, payload=digest)


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

    One client at a time (esptool opens, talks, closes); the flash survives reconnects
    and is saved to ``save`` after every MD5 check (esptool's verify step) and disconnect.
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
            master, slave = os.openpty()
            tty.setraw(slave)
            self.endpoint = os.ttyname(slave)
            os.close(slave)  # so only the client holds it: flashers refuse ports others have open
            self._pty_master = master
        else:
            if not 0 <= (tcp_port or 0) <= 65535:
                raise InputError(f"TCP port {tcp_port} is out of range", hint="use 1-65535, or 0 for any free port")
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", tcp_port or 0))
            except OSError as exc:
                listener.close()
                raise InputError(f"cannot listen on 127.0.0.1:{tcp_port}: {exc.strerror}",
                                 hint="pick a free port, or 0 for any") from exc
            listener.listen(1)
            listener.settimeout(0.2)
            self._listener = listener
            self.port = listener.getsockname()[1]
            self.endpoint = f"socket://127.0.0.1:{self.port}"

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
                if len(packet) > 1 and packet[1] == OPS["SPI_FLASH_MD5"]:
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
          announce: Callable[[str], None] = print, chip: str = "esp32") -> None:
    """Run the emulated ESP32 ROM loader until interrupted (``tinyml emulate --esp-rom``).

    tcp_port: listen on 127.0.0.1:PORT (0 picks a free port); None when ``pty`` is set.
    pty: serve on a new pseudo-terminal instead; its path is announced.
    flash_size: bytes of emulated flash (power of two, default 4 MB).
    save: flash image file, loaded at start when present and rewritten after every
        verify step, disconnect and at exit.
    faults: a ``Faults`` or its spec string (``"drop:2,corrupt,stall"``) for tests.
    announce: receives one line naming the endpoint to give esptool's ``-p``.
    chip: which ROM to be: esp32 (default), esp32s3 or esp32c3.
    Raises InputError for a bad size, fault spec or busy port.
    """
    parsed = faults if isinstance(faults, Faults) else Faults.parse(faults)
    server = EspRomServer(flash_size, save, parsed, None if pty else tcp_port, pty, chip)
    with server:
        announce(f"{chip.upper()} ROM loader ({flash_size // 1024} KiB flash) on {server.endpoint}")
        with contextlib.suppress(KeyboardInterrupt):
            server.wait()
