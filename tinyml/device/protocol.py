"""The tinyml device protocol, version 1 (docs/protocol.md), as pure Python: no I/O.

``encode(msg)`` turns a message into one complete frame (``0x00 | COBS(body) | 0x00``);
``Decoder.feed(data)`` turns any byte stream, split anywhere, into events: messages,
debug text lines and bad-frame records. The decoder never raises, whatever it is fed,
because a serial line carries noise, reboots and half frames, and one bad byte must cost
at most the frame it hit. The C codec in ``firmware_templates/common/tinyml_proto.c``
implements the same format; both are checked against ``tests/vectors/protocol/``.
"""

from __future__ import annotations

import array
import binascii
import re
import struct
from collections import Counter
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, ClassVar, NamedTuple

from tinyml.errors import InputError

VERSION = 1
MAX_BODY = 512
MAX_PAYLOAD = MAX_BODY - 4
# COBS adds one code byte per started block of 254 bytes.
MAX_ENCODED = MAX_BODY + MAX_BODY // 254 + 1
MAX_INPUT_CHUNK = 256
_RESULT_HEAD = struct.Struct("<IIIIBBfH")  # a RESULT's fields before its output
MAX_OUTPUT = MAX_PAYLOAD - 24  # RESULT output bytes per frame; larger tensors send their head
MAX_OUTPUT_CHUNK = MAX_PAYLOAD - 8  # OUTPUT data bytes per frame: the tail after the RESULT head
MAX_SENSOR_NAME = 32  # SAMPLES: bytes of the sensor name
MAX_SAMPLE_BYTES = 448  # SAMPLES data bytes per frame: 112 f32 values; header 25 + 32 + 448 <= 508
MAC_BYTES = 8  # AUTH_HELLO / AUTH_RESULT: HMAC-SHA256 truncated to 8 bytes (tinyml/device/auth.py)
NONCE_BYTES = 8  # AUTH_CHALLENGE / AUTH_HELLO: the host's challenge
MAX_AUTH_OUTPUT = MAX_OUTPUT - MAC_BYTES  # AUTH_RESULT output bytes per frame

# SAMPLES sample formats
SAMPLE_F32 = 0
SAMPLE_FORMATS = {SAMPLE_F32: ("f32", 4)}

# CAPTURE modes
CAPTURE_STOP, CAPTURE_STREAM, CAPTURE_RECENT = 0, 1, 2

# latency_unit values
LATENCY_CYCLES, LATENCY_TICKS, LATENCY_US, LATENCY_INSTRUCTIONS = 0, 1, 2, 3
LATENCY_UNIT_NAMES = {0: "cycles", 1: "ticks", 2: "us", 3: "instructions"}

# ERROR codes
ERR_BAD_FRAME, ERR_UNKNOWN_TYPE, ERR_BAD_LENGTH, ERR_UNSUPPORTED, ERR_INFERENCE, ERR_MODEL_MISMATCH = range(1, 7)
ERR_SENSOR = 7  # the run-mode sensor failed (no answer, wrong identity, overrun, bus fault)

# HEARTBEAT sensor_status values (firmware_templates/sensors/tinyml_sensor_driver.h)
SENSOR_STATUS_NAMES = {0: "ok", 1: "no answer (NACK)", 2: "wrong identity", 3: "rate or range refused",
                       4: "FIFO overrun", 5: "bus error", 6: "not ready"}
MAX_REPLAY_VALUES = (MAX_PAYLOAD - 4) // 4  # float32 values in one REPLAY frame

LABEL_UNDECIDED = 0xFF  # an anomaly detector without a threshold
LABEL_SENSOR_FAULT = 2  # an anomaly detector's stuck guard fired: a frozen reading, alerted at once
# HELLO.arena_bytes when the device's runtime could not allocate its arena at boot
ARENA_FAILED = 0xFFFFFFFF

# bad-frame reasons
BAD_CRC = "crc"
BAD_COBS = "cobs"
BAD_TOO_LONG = "too long"
BAD_UNKNOWN_TYPE = "unknown type"
BAD_LENGTH = "bad length"
BAD_VERSION = "bad version"


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF); binascii implements exactly this."""
    return binascii.crc_hqx(data, 0xFFFF)


_CODE = tuple(bytes((i,)) for i in range(256))


def cobs_encode(data: bytes) -> bytes:
    """Standard COBS: no final empty block after data that ends on a full 254-byte block."""
    if len(data) < 254:  # every frame but the largest: no full block, so each segment is its length + 1 and itself
        parts = []
        for segment in data.split(b"\x00"):
            parts += (_CODE[len(segment) + 1], segment)
        return b"".join(parts)
    out = bytearray()
    segments = data.split(b"\x00")
    for i, segment in enumerate(segments):
        full = False
        while len(segment) >= 254:
            out.append(0xFF)
            out += segment[:254]
            segment = segment[254:]
            full = True
        if segment or not full or i < len(segments) - 1:
            out.append(len(segment) + 1)
            out += segment
    return bytes(out)


def cobs_decode(chunk: bytes) -> bytes | None:
    """Inverse of ``cobs_encode`` for a chunk without 0x00; None when the chunk is malformed.

    Every code byte but the first stands where the decoded data has a 0x00 (unless the block
    before it was a full one of 254 bytes), so the output is the chunk with those bytes
    zeroed and the first removed: one step per code byte instead of a copy per block.
    """
    n = len(chunk)
    if not n:
        return b""
    out = bytearray(chunk)
    full_blocks = []  # code bytes after a full block: they stand for no 0x00
    i = 0
    while True:
        code = chunk[i]
        if not code:
            return None
        nxt = i + code
        if nxt >= n:
            if nxt > n:
                return None
            break
        if code == 0xFF:
            full_blocks.append(nxt)
        else:
            out[nxt] = 0
        i = nxt
    for pos in reversed(full_blocks):
        del out[pos]
    del out[0]
    return bytes(out)


@lru_cache(maxsize=1024)  # the formats of this module, and int8 runs no longer than a payload
def _layout(fmt: str) -> struct.Struct:
    return struct.Struct("<" + fmt)


class _Reader:
    """Sequential little-endian field reader; raises ValueError on a short payload."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ValueError("short payload")
        part = self.data[self.pos:end]
        self.pos = end
        return part

    def unpack(self, fmt: str) -> tuple:
        layout = _layout(fmt)
        end = self.pos + layout.size
        if end > len(self.data):
            raise ValueError("short payload")
        values = layout.unpack_from(self.data, self.pos)
        self.pos = end
        return values

    def str8(self) -> str:
        (n,) = self.unpack("B")
        return self.take(n).decode("utf-8", errors="replace")

    def rest(self, most: int) -> bytes:
        """All remaining bytes, which must be 1 to ``most`` (INPUT and OUTPUT data)."""
        if not 1 <= len(self.data) - self.pos <= most:
            raise ValueError("bad data length")
        return self.take(len(self.data) - self.pos)

    def left(self) -> int:
        return len(self.data) - self.pos

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ValueError("trailing bytes")


def _str8(text: str, name: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 255:
        raise InputError(f"{name} is {len(raw)} bytes long, the protocol allows 255",
                         hint=f"shorten the {name}")
    return bytes([len(raw)]) + raw


def _u(value: int, bits: int, name: str) -> int:
    if not 0 <= int(value) < (1 << bits):
        raise InputError(f"{name}={value} does not fit in an unsigned {bits}-bit field",
                         hint=f"use a value from 0 to {(1 << bits) - 1}")
    return int(value)


@dataclass(frozen=True, slots=True)
class Hello:
    TYPE: ClassVar[int] = 0x01
    proto: int
    board: str
    fw_version: str
    device_id: str
    model_hash: bytes
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    boot_id: int
    latency_unit: int

    def payload(self) -> bytes:
        if len(self.model_hash) != 8:
            raise InputError(f"model_hash must be 8 bytes, got {len(self.model_hash)}",
                             hint="use the first 8 bytes of the model file's SHA-256")
        return (bytes([_u(self.proto, 8, "proto")]) + _str8(self.board, "board")
                + _str8(self.fw_version, "fw_version") + _str8(self.device_id, "device_id")
                + bytes(self.model_hash)
                + struct.pack("<IIIIB", _u(self.arena_bytes, 32, "arena_bytes"),
                              _u(self.input_bytes, 32, "input_bytes"), _u(self.output_bytes, 32, "output_bytes"),
                              _u(self.boot_id, 32, "boot_id"), _u(self.latency_unit, 8, "latency_unit")))

    @classmethod
    def parse(cls, r: _Reader) -> Hello:
        (proto,) = r.unpack("B")
        board, fw_version, device_id = r.str8(), r.str8(), r.str8()
        model_hash = r.take(8)
        return cls(proto, board, fw_version, device_id, model_hash, *r.unpack("IIIIB"))


@dataclass(frozen=True, slots=True)
class Result:
    TYPE: ClassVar[int] = 0x02
    seq: int
    boot_id: int
    timestamp_ms: int
    latency: int
    latency_unit: int
    label: int
    score: float
    output: tuple[int, ...]

    def payload(self) -> bytes:
        n = len(self.output)
        if n > MAX_OUTPUT:
            raise InputError(f"RESULT output has {n} values, a frame holds at most {MAX_OUTPUT}",
                             hint=f"send the first {MAX_OUTPUT} values (docs/protocol.md)")
        try:  # (an array of int8 refuses what does not fit)
            output = array.array("b", self.output).tobytes()
        except OverflowError:
            raise InputError("RESULT output values must be int8 (-128..127)",
                             hint="send the raw int8 output tensor") from None
        # Emulated fleets encode every result of hundreds of devices (issue 20): the fields go to struct
        # as they are, and only when one does not fit through the checks that say which one.
        try:
            head = _RESULT_HEAD.pack(self.seq, self.boot_id, self.timestamp_ms, self.latency, self.latency_unit,
                                     self.label, self.score, n)
        except struct.error:
            head = _RESULT_HEAD.pack(_u(self.seq, 32, "seq"), _u(self.boot_id, 32, "boot_id"),
                                     _u(self.timestamp_ms, 32, "timestamp_ms"), _u(self.latency, 32, "latency"),
                                     _u(self.latency_unit, 8, "latency_unit"), _u(self.label, 8, "label"),
                                     self.score, n)
        return head + output

    @classmethod
    def parse(cls, r: _Reader) -> Result:
        seq, boot_id, ts, latency, unit, label, score, n = r.unpack("IIIIBBfH")
        output = r.take(n)  # checks the length before a layout is made for it
        return cls(seq, boot_id, ts, latency, unit, label, score, _layout(f"{n}b").unpack(output))

    @property
    def raw_output(self) -> bytes:
        """The output values as the int8 bytes they were sent as (what ``RawResult`` keeps)."""
        return _layout(f"{len(self.output)}b").pack(*self.output)


class RawResult(NamedTuple):
    """A RESULT as ``Decoder(raw_results=True)`` gives it: the fields of ``Result``, but the output
    left as the int8 bytes it was sent as (``raw_output``). For a host that stores or forwards the
    output without reading it (the gateway): a tuple straight from one ``struct`` call costs about
    a third of a frozen ``Result`` and its tuple of values, which the gateway packed back to bytes."""

    seq: int
    boot_id: int
    timestamp_ms: int
    latency: int
    latency_unit: int
    label: int
    score: float
    raw_output: bytes

    @property
    def output(self) -> tuple[int, ...]:
        return _layout(f"{len(self.raw_output)}b").unpack(self.raw_output)


@lru_cache(maxsize=MAX_PAYLOAD)
def _raw_result_layout(n: int) -> struct.Struct:
    """RESULT's fixed fields, its output length skipped (checked apart) and ``n`` output bytes."""
    return struct.Struct(f"<IIIIBBf2x{n}s")


def _raw_result(body: bytes) -> RawResult | BadFrame:
    """``Result.parse`` of a checked body (version, type and CRC), into a ``RawResult``."""
    n = len(body) - 28  # version, type, 24 bytes of fields, the CRC
    if n < 0 or body[24] | body[25] << 8 != n:
        return BadFrame(BAD_LENGTH, len(body))
    return tuple.__new__(RawResult, _raw_result_layout(n).unpack_from(body, 2))


@dataclass(frozen=True, slots=True)
class Input:
    TYPE: ClassVar[int] = 0x03
    offset: int
    data: bytes

    def payload(self) -> bytes:
        if not 1 <= len(self.data) <= MAX_INPUT_CHUNK:
            raise InputError(f"INPUT carries {len(self.data)} bytes, the protocol allows 1 to {MAX_INPUT_CHUNK}",
                             hint="split the input tensor into chunks of at most 256 bytes")
        return struct.pack("<I", _u(self.offset, 32, "offset")) + bytes(self.data)

    @classmethod
    def parse(cls, r: _Reader) -> Input:
        (offset,) = r.unpack("I")
        return cls(offset, r.rest(MAX_INPUT_CHUNK))


@dataclass(frozen=True, slots=True)
class Infer:
    TYPE: ClassVar[int] = 0x04
    seq: int

    def payload(self) -> bytes:
        return struct.pack("<I", _u(self.seq, 32, "seq"))

    @classmethod
    def parse(cls, r: _Reader) -> Infer:
        return cls(*r.unpack("I"))


@dataclass(frozen=True, slots=True)
class Ack:
    TYPE: ClassVar[int] = 0x05
    for_type: int
    value: int

    def payload(self) -> bytes:
        return struct.pack("<BI", _u(self.for_type, 8, "for_type"), _u(self.value, 32, "value"))

    @classmethod
    def parse(cls, r: _Reader) -> Ack:
        return cls(*r.unpack("BI"))


@dataclass(frozen=True, slots=True)
class Error:
    TYPE: ClassVar[int] = 0x06
    code: int
    message: str

    def payload(self) -> bytes:
        return bytes([_u(self.code, 8, "code")]) + _str8(self.message, "message")

    @classmethod
    def parse(cls, r: _Reader) -> Error:
        (code,) = r.unpack("B")
        return cls(code, r.str8())


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Device health. Firmware with a sensor driver appends the sensor's counters (25 bytes
    instead of 16); the sensor fields are None in the short form, which is what firmware without
    a sensor sends, so hosts from before the sensor fields still read those devices."""

    TYPE: ClassVar[int] = 0x07
    boot_id: int
    uptime_ms: int
    results: int
    rx_errors: int
    sensor_reads: int | None = None
    sensor_errors: int | None = None
    sensor_status: int | None = None

    def payload(self) -> bytes:
        head = struct.pack("<IIII", _u(self.boot_id, 32, "boot_id"), _u(self.uptime_ms, 32, "uptime_ms"),
                           _u(self.results, 32, "results"), _u(self.rx_errors, 32, "rx_errors"))
        sensor = (self.sensor_reads, self.sensor_errors, self.sensor_status)
        if all(v is None for v in sensor):
            return head
        if any(v is None for v in sensor):
            raise InputError("HEARTBEAT sensor fields come together: reads, errors and status",
                             hint="set all three or none")
        return head + struct.pack("<IIB", _u(self.sensor_reads, 32, "sensor_reads"),
                                  _u(self.sensor_errors, 32, "sensor_errors"), _u(self.sensor_status, 8, "sensor_status"))

    @classmethod
    def parse(cls, r: _Reader) -> Heartbeat:
        head = r.unpack("IIII")
        if r.left():
            return cls(*head, *r.unpack("IIB"))
        return cls(*head)


@dataclass(frozen=True, slots=True)
class HelloReq:
    TYPE: ClassVar[int] = 0x08

    def payload(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, r: _Reader) -> HelloReq:
        return cls()


@dataclass(frozen=True, slots=True)
class Exit:
    TYPE: ClassVar[int] = 0x09
    code: int

    def payload(self) -> bytes:
        return bytes([_u(self.code, 8, "code")])

    @classmethod
    def parse(cls, r: _Reader) -> Exit:
        return cls(*r.unpack("B"))


@dataclass(frozen=True, slots=True)
class OutputReq:
    """Ask for the output bytes of result ``seq`` from ``offset`` (the tail a RESULT frame cannot hold)."""

    TYPE: ClassVar[int] = 0x0A
    seq: int
    offset: int

    def payload(self) -> bytes:
        return struct.pack("<II", _u(self.seq, 32, "seq"), _u(self.offset, 32, "offset"))

    @classmethod
    def parse(cls, r: _Reader) -> OutputReq:
        return cls(*r.unpack("II"))


@dataclass(frozen=True, slots=True)
class Output:
    """Raw int8 output bytes of result ``seq`` starting at ``offset`` (the answer to OUTPUT_REQ)."""

    TYPE: ClassVar[int] = 0x0B
    seq: int
    offset: int
    data: bytes

    def payload(self) -> bytes:
        if not 1 <= len(self.data) <= MAX_OUTPUT_CHUNK:
            raise InputError(f"OUTPUT carries {len(self.data)} bytes, the protocol allows 1 to {MAX_OUTPUT_CHUNK}",
                             hint=f"send the output tail in chunks of at most {MAX_OUTPUT_CHUNK} bytes")
        return struct.pack("<II", _u(self.seq, 32, "seq"), _u(self.offset, 32, "offset")) + bytes(self.data)

    @classmethod
    def parse(cls, r: _Reader) -> Output:
        seq, offset = r.unpack("II")
        return cls(seq, offset, r.rest(MAX_OUTPUT_CHUNK))


@dataclass(frozen=True, slots=True)
class Samples:
    """One chunk of a raw sensor window (device -> host): the values ``offset`` onwards of the
    channel-interleaved window ``window`` (the run-mode seq of the result computed from it)."""

    TYPE: ClassVar[int] = 0x0C
    boot_id: int
    window: int
    timestamp_ms: int
    fs: float
    samples: int
    channels: int
    format: int
    offset: int
    sensor: str
    data: bytes

    def payload(self) -> bytes:
        if not 1 <= len(self.data) <= MAX_SAMPLE_BYTES:
            raise InputError(f"SAMPLES carries {len(self.data)} bytes, the protocol allows 1 to {MAX_SAMPLE_BYTES}",
                             hint=f"split the window into chunks of at most {MAX_SAMPLE_BYTES} bytes")
        sensor = _str8(self.sensor, "sensor")
        if len(sensor) - 1 > MAX_SENSOR_NAME:
            raise InputError(f"sensor name is {len(sensor) - 1} bytes long, SAMPLES allows {MAX_SENSOR_NAME}",
                             hint="shorten the sensor name")
        return struct.pack("<IIIfHBBI", _u(self.boot_id, 32, "boot_id"), _u(self.window, 32, "window"),
                           _u(self.timestamp_ms, 32, "timestamp_ms"), self.fs, _u(self.samples, 16, "samples"),
                           _u(self.channels, 8, "channels"), _u(self.format, 8, "format"),
                           _u(self.offset, 32, "offset")) + sensor + bytes(self.data)

    @classmethod
    def parse(cls, r: _Reader) -> Samples:
        head = r.unpack("IIIfHBBI")
        sensor = r.take(r.unpack("B")[0])
        if len(sensor) > MAX_SENSOR_NAME:
            raise ValueError("sensor name too long")
        return cls(*head, sensor.decode("utf-8", errors="replace"), r.rest(MAX_SAMPLE_BYTES))


@dataclass(frozen=True, slots=True)
class Capture:
    """Host -> device: stop (mode 0), stream the next ``count`` windows as they are read (mode 1,
    0 = until stopped) or send the last ``count`` windows the device keeps (mode 2, 0 = all)."""

    TYPE: ClassVar[int] = 0x0D
    mode: int
    count: int

    def payload(self) -> bytes:
        return struct.pack("<BH", _u(self.mode, 8, "mode"), _u(self.count, 16, "count"))

    @classmethod
    def parse(cls, r: _Reader) -> Capture:
        return cls(*r.unpack("BH"))


@dataclass(frozen=True, slots=True)
class Replay:
    """Raw sensor samples for a device whose sensor is ``replay``: ``data`` holds float32
    little-endian values (window x channels, interleaved, training units) starting at value
    ``offset`` of the current window; the device ACKs with offset + count and runs the model
    once a window is complete."""

    TYPE: ClassVar[int] = 0x0E
    offset: int
    data: bytes

    @classmethod
    def of(cls, offset: int, values: Any) -> Replay:
        return cls(offset, struct.pack(f"<{len(values)}f", *values))

    @property
    def values(self) -> tuple[float, ...]:
        return struct.unpack(f"<{len(self.data) // 4}f", self.data)

    def payload(self) -> bytes:
        if not 4 <= len(self.data) <= 4 * MAX_REPLAY_VALUES or len(self.data) % 4:
            raise InputError(f"REPLAY carries {len(self.data)} bytes; the protocol allows 1 to {MAX_REPLAY_VALUES} "
                             "float32 values", hint=f"send a window in chunks of at most {MAX_REPLAY_VALUES} values")
        return struct.pack("<I", _u(self.offset, 32, "offset")) + bytes(self.data)

    @classmethod
    def parse(cls, r: _Reader) -> Replay:
        (offset,) = r.unpack("I")
        data = r.rest(4 * MAX_REPLAY_VALUES)
        if len(data) % 4:
            raise ValueError("REPLAY data is not whole float32 values")
        return cls(offset, data)


@dataclass(frozen=True, slots=True)
class Series:
    """Host -> device, validation of a preprocessing with state across windows (the ``daily_cycle``
    feature): the next window is in slot ``slot`` of the day; ``reset`` 1 forgets the state first (a new
    stream), 0 keeps it (a gap). The device ACKs with ``slot``."""

    TYPE: ClassVar[int] = 0x14
    reset: int
    slot: int

    def payload(self) -> bytes:
        return struct.pack("<BI", _u(self.reset, 1, "reset"), _u(self.slot, 32, "slot"))

    @classmethod
    def parse(cls, r: _Reader) -> Series:
        reset, slot = r.unpack("BI")
        if reset > 1:
            raise ValueError("SERIES reset is 0 or 1")
        return cls(reset, slot)


@dataclass(frozen=True, slots=True)
class Time:
    """Host -> device in run mode: the time now in the data's clock, whole seconds since the epoch as the
    training data's timestamps give them (UTC for zoned logs, local wall time for naive ones). A device whose
    preprocessing keeps state across windows (``daily_cycle``) takes each later window's slot of the day from
    it and ACKs with the slot a window read now gets; other run-mode builds ACK 0xFFFFFFFF."""

    TYPE: ClassVar[int] = 0x15
    seconds: int

    def payload(self) -> bytes:
        return struct.pack("<I", _u(self.seconds, 32, "seconds"))

    @classmethod
    def parse(cls, r: _Reader) -> Time:
        return cls(*r.unpack("I"))


NO_SLOT = 0xFFFFFFFF  # ACK(TIME) value of a build without state across windows: the time is not used


def _fixed(value: bytes, n: int, name: str) -> bytes:
    if len(value) != n:
        raise InputError(f"{name} must be {n} bytes, got {len(value)}", hint="see docs/protocol.md, device authentication")
    return bytes(value)


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    """Host -> device: prove your identity for this session; the device answers AUTH_HELLO with ``nonce``."""

    TYPE: ClassVar[int] = 0x10
    nonce: bytes

    def payload(self) -> bytes:
        return _fixed(self.nonce, NONCE_BYTES, "nonce")

    @classmethod
    def parse(cls, r: _Reader) -> AuthChallenge:
        return cls(r.take(NONCE_BYTES))


@dataclass(frozen=True, slots=True)
class AuthHello(Hello):
    """HELLO plus the host's challenge and a MAC over both: the device holds its key and this is
    its current boot (``boot_id``), now. The MAC is the payload's last 8 bytes."""

    TYPE: ClassVar[int] = 0x11
    nonce: bytes
    mac: bytes

    def payload(self) -> bytes:
        return self.unsigned_payload() + _fixed(self.mac, MAC_BYTES, "mac")

    def unsigned_payload(self) -> bytes:
        """The payload without the MAC: what the MAC covers (after the type byte)."""
        return Hello.payload(self) + _fixed(self.nonce, NONCE_BYTES, "nonce")

    @classmethod
    def parse(cls, r: _Reader) -> AuthHello:
        base = Hello.parse(r)
        return cls(*(getattr(base, f.name) for f in fields(Hello)), r.take(NONCE_BYTES), r.take(MAC_BYTES))


@dataclass(frozen=True, slots=True)
class AuthResult(Result):
    """RESULT plus a MAC over it (type, seq, boot_id and everything else): the run-mode result of a
    device with a key. At most ``MAX_AUTH_OUTPUT`` output bytes; the MAC is the payload's last 8 bytes."""

    TYPE: ClassVar[int] = 0x12
    mac: bytes

    def payload(self) -> bytes:
        if len(self.output) > MAX_AUTH_OUTPUT:
            raise InputError(f"AUTH_RESULT output has {len(self.output)} values, a frame holds at most "
                             f"{MAX_AUTH_OUTPUT}", hint=f"send the first {MAX_AUTH_OUTPUT} values (docs/protocol.md)")
        return Result.payload(self) + _fixed(self.mac, MAC_BYTES, "mac")

    def unsigned_payload(self) -> bytes:
        """The payload without the MAC, packed without the field checks of ``payload`` (the gateway
        computes it for every AUTH_RESULT it checks; a field out of range raises struct.error)."""
        n = len(self.output)
        return _layout(f"IIIIBBfH{n}b").pack(self.seq, self.boot_id, self.timestamp_ms, self.latency,
                                              self.latency_unit, self.label, self.score, n, *self.output)

    @classmethod
    def parse(cls, r: _Reader) -> AuthResult:
        seq, boot_id, ts, latency, unit, label, score, n = r.unpack("IIIIBBfH")
        output = r.take(n)
        return cls(seq, boot_id, ts, latency, unit, label, score, _layout(f"{n}b").unpack(output), r.take(MAC_BYTES))


Message = (Hello | Result | Input | Infer | Ack | Error | Heartbeat | HelloReq | Exit | OutputReq | Output
           | Samples | Capture | Replay | AuthChallenge | AuthHello | AuthResult | Series | Time)
MESSAGE_TYPES: dict[int, type] = {cls.TYPE: cls for cls in
                                  (Hello, Result, Input, Infer, Ack, Error, Heartbeat, HelloReq, Exit,
                                   OutputReq, Output, Samples, Capture, Replay, AuthChallenge, AuthHello,
                                   AuthResult, Series, Time)}
MESSAGE_NAMES: dict[str, type] = {"HELLO": Hello, "RESULT": Result, "INPUT": Input, "INFER": Infer,
                                  "ACK": Ack, "ERROR": Error, "HEARTBEAT": Heartbeat,
                                  "HELLO_REQ": HelloReq, "EXIT": Exit, "OUTPUT_REQ": OutputReq,
                                  "OUTPUT": Output, "SAMPLES": Samples, "CAPTURE": Capture, "REPLAY": Replay,
                                  "AUTH_CHALLENGE": AuthChallenge, "AUTH_HELLO": AuthHello, "AUTH_RESULT": AuthResult,
                                  "SERIES": Series, "TIME": Time}
_NAME_OF = {cls: name for name, cls in MESSAGE_NAMES.items()}


def type_name(msg: Message) -> str:
    return _NAME_OF[type(msg)]


def encode(msg: Message) -> bytes:
    """One complete frame, delimiters included; InputError when a field does not fit."""
    payload = msg.payload()
    if len(payload) > MAX_PAYLOAD:
        raise InputError(f"{type_name(msg)} payload is {len(payload)} bytes, the protocol allows {MAX_PAYLOAD}",
                         hint="shorten the strings or split the data")
    head = bytes([VERSION, msg.TYPE]) + payload
    return b"\x00" + cobs_encode(head + struct.pack("<H", crc16(head))) + b"\x00"


@dataclass(frozen=True, slots=True)
class Text:
    """A debug line the firmware printed between frames (without its line ending)."""

    line: str


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A chunk between delimiters that is neither a valid frame nor text."""

    reason: str
    size: int


Event = Message | RawResult | Text | BadFrame

_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\r\n"
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e\t\r\n]*")


def _is_text(chunk: bytes) -> bool:
    return not chunk.translate(None, _PRINTABLE)


_IS_PRINTABLE = tuple(b in _PRINTABLE for b in range(256))


def _starts_binary(chunk: bytes) -> bool:
    """True for a chunk that is neither text nor a text prefix: one of its first two bytes is
    not printable, and it is no longer than a frame."""
    return 2 <= len(chunk) <= MAX_ENCODED and not (_IS_PRINTABLE[chunk[0]] and _IS_PRINTABLE[chunk[1]])


def decode_body(body: bytes, raw_results: bool = False) -> Message | RawResult | BadFrame:
    """Judge one COBS-decoded body: CRC, version, type, then the payload layout."""
    if len(body) < 4:
        return BadFrame(BAD_LENGTH, len(body))
    if crc16(body[:-2]) != body[-2] | body[-1] << 8:
        return BadFrame(BAD_CRC, len(body))
    if body[0] != VERSION:
        return BadFrame(BAD_VERSION, len(body))
    if raw_results and body[1] == Result.TYPE:
        return _raw_result(body)
    cls = MESSAGE_TYPES.get(body[1])
    if cls is None:
        return BadFrame(BAD_UNKNOWN_TYPE, len(body))
    reader = _Reader(body[2:-2])
    try:
        msg = cls.parse(reader)
        reader.done()
    except (ValueError, struct.error):
        return BadFrame(BAD_LENGTH, len(body))
    return msg


def decode_frame(chunk: bytes, raw_results: bool = False) -> Message | RawResult | BadFrame:
    """Judge one binary chunk found between two 0x00 delimiters (delimiters excluded)."""
    if len(chunk) > MAX_ENCODED:
        return BadFrame(BAD_TOO_LONG, len(chunk))
    body = cobs_decode(chunk)
    if body is None:
        return BadFrame(BAD_COBS, len(chunk))
    if len(body) > MAX_BODY:
        return BadFrame(BAD_TOO_LONG, len(chunk))
    return decode_body(body, raw_results)


class Decoder:
    """Streaming decoder: feed any bytes, get events; never raises, never grows unbounded.
    With ``raw_results`` a RESULT is a ``RawResult`` (its output as bytes), every other event the same."""

    def __init__(self, *, raw_results: bool = False) -> None:
        self.raw_results = raw_results
        self._buf = bytearray()
        self._discarding = False  # inside an over-long binary chunk: drop until the next 0x00
        self.frames = 0
        self.bad_frames = 0
        self.text_bytes = 0
        self.bytes_in = 0
        self.bad_reasons: Counter[str] = Counter()

    def feed(self, data: bytes) -> list[Event]:
        self.bytes_in += len(data)
        events: list[Event] = []
        parts = bytes(data).split(b"\x00")
        tail = parts.pop()  # after the last delimiter: the start of a chunk still open
        for part in parts:
            if not self._buf and not self._discarding and (not part or _starts_binary(part)):
                # A whole frame (the usual case), or nothing between two delimiters: no early
                # text cut or length cap can apply.
                if part:
                    self._frame(part, events)
                continue
            if not self._discarding:
                self._buf += part
                self._check_open_chunk(events)
            if self._buf and not self._discarding:
                self._judge(bytes(self._buf), events)
            self._buf.clear()
            self._discarding = False
        if tail and not self._discarding:  # (nothing new to check when a read ends on a delimiter)
            self._buf += tail
            self._check_open_chunk(events)
        return events

    def _check_open_chunk(self, events: list[Event]) -> None:
        """Deliver text early, and never let an unterminated chunk grow past a frame's size.

        A chunk that is printable so far ends early as text at a newline (when at least two
        bytes long) or when it outgrows the largest frame. This is safe because a v1 frame's
        second byte is always 0x01 (the version after the COBS code byte), so no frame starts
        with two printable bytes. The C decoder cuts at the same places, byte by byte.

        Linear in the buffer: the printable run is measured once (a cut never ends past it, so
        what follows a cut is still printable up to the same end), each newline search stops a
        frame's length ahead, and the delivered prefix is dropped once (issue 16: a text flood
        used to re-scan the whole run at every cut).
        """
        run_end = _PRINTABLE_RUN.match(self._buf).end()
        pos = 0
        while pos < len(self._buf):
            newline = self._buf.find(b"\n", pos + 1, min(run_end, pos + MAX_ENCODED + 1))
            if newline >= 0:
                cut = newline + 1 - pos
            elif run_end - pos > MAX_ENCODED:
                cut = MAX_ENCODED + 1
            else:
                break
            self._judge(bytes(self._buf[pos:pos + cut]), events)
            pos += cut
        if pos:
            del self._buf[:pos]
        if len(self._buf) > MAX_ENCODED:
            self._judge(bytes(self._buf), events)
            self._buf.clear()
            self._discarding = True  # drop the rest of this over-long binary chunk

    def _judge(self, chunk: bytes, events: list[Event]) -> None:
        if _is_text(chunk):
            self.text_bytes += len(chunk)
            events.extend(Text(line) for line in chunk.decode("ascii").splitlines() if line)
        else:
            self._frame(chunk, events)

    def _frame(self, chunk: bytes, events: list[Event]) -> None:
        event = decode_frame(chunk, self.raw_results)
        if type(event) is BadFrame:
            self.bad_frames += 1
            self.bad_reasons[event.reason] += 1
        else:
            self.frames += 1
        events.append(event)

    def stats(self) -> dict[str, Any]:
        return {"frames": self.frames, "bad_frames": self.bad_frames, "text_bytes": self.text_bytes,
                "bytes_in": self.bytes_in, "bad_reasons": dict(self.bad_reasons)}


def message_to_dict(msg: Message) -> dict[str, Any]:
    """JSON-ready fields plus ``type`` (bytes as hex, int8 outputs as a list)."""
    out: dict[str, Any] = {"type": type_name(msg)}
    for f in fields(msg):
        value = getattr(msg, f.name)
        if value is None:  # an optional field left out (HEARTBEAT without a sensor)
            continue
        out[f.name] = value.hex() if isinstance(value, bytes) else list(value) if isinstance(value, tuple) else value
    return out


def message_from_dict(d: dict[str, Any]) -> Message:
    """Inverse of ``message_to_dict``; InputError on an unknown type or missing fields."""
    cls = MESSAGE_NAMES.get(str(d.get("type")))
    if cls is None:
        raise InputError(f"unknown message type {d.get('type')!r}", hint=f"use one of {', '.join(MESSAGE_NAMES)}")
    kwargs = {}
    for f in fields(cls):
        if f.name not in d and f.default is None:
            continue
        if f.name not in d:
            raise InputError(f"{d['type']} needs the field {f.name!r}", hint="see docs/protocol.md")
        value = d[f.name]
        if f.name in ("model_hash", "data", "nonce", "mac"):
            value = bytes.fromhex(value)
        elif f.name == "output":
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)
