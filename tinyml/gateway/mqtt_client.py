"""A small QoS 1 MQTT publisher (3.1.1 and 5) on asyncio: what the gateway's forwarder needs, no more.

paho-mqtt cost the forwarder about 40 us of CPU per message (a message object with its own
lock, a send per packet, three socket reads and MQTT 5 property objects per PUBACK), as much
as everything else the gateway does for a result. This client builds PUBLISH packets as bytes
and writes a whole refill in one call, and parses every PUBACK a read brings in one loop. It
only publishes: CONNECT (credentials, TLS, a retained will), CONNACK (refusals, Receive
Maximum, Server Keep Alive), PUBLISH at QoS 0 and 1, PUBACK, PINGREQ/PINGRESP and DISCONNECT.
It keeps no message store: the forwarder's outbox is one, and the forwarder tracks what is in
flight and sends it again after a reconnect. Clean sessions only, so nothing is left at the
broker between connections. paho-mqtt stays for subscribers (tinyml/fleet) and for the names
of reason codes.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from functools import lru_cache

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from tinyml.gateway.config import MqttConfig

CONNECT_TIMEOUT_S = 10.0
_PUBACK, _PINGRESP, _DISCONNECT = 0x40, 0xD0, 0xE0
_PINGREQ = b"\xc0\x00"
# MQTT 5 property identifiers -> how their values are laid out, to read CONNACK and skip the rest.
_BYTE, _U16, _U32, _VARINT, _STR, _PAIR = range(6)
_PROPERTIES = {0x01: _BYTE, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _STR, 0x0B: _VARINT, 0x11: _U32, 0x12: _STR,
               0x13: _U16, 0x15: _STR, 0x16: _STR, 0x17: _BYTE, 0x18: _U32, 0x19: _BYTE, 0x1A: _STR, 0x1C: _STR,
               0x1F: _STR, 0x21: _U16, 0x22: _U16, 0x23: _U16, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32,
               0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE}
RECEIVE_MAXIMUM, SERVER_KEEP_ALIVE = 0x21, 0x13

AckHandler = Callable[[list[int], list[tuple[int, str]]], None]  # (acknowledged mids, (mid, reason) refused)


class Refused(Exception):
    """The broker answered CONNECT with a failure; the text is the reason's name."""


class ProtocolError(Exception):
    """The broker sent something this client cannot read: the connection is dropped."""


@lru_cache(maxsize=1024)
def _varint(n: int) -> bytes:
    """MQTT's remaining length; packet sizes repeat, so they are kept."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def _str16(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


@lru_cache(maxsize=4096)
def topic_bytes(topic: str) -> bytes:
    """A topic as PUBLISH carries it (length and UTF-8); topics repeat, so they are kept."""
    return _str16(topic.encode())


def publish_packet(topic: bytes, payload: bytes, mid: int, *, v5: bool, dup: bool = False,
                   retain: bool = False, qos: int = 1) -> bytes:
    """One PUBLISH packet; ``topic`` from ``topic_bytes``, ``mid`` ignored at QoS 0."""
    return b"".join(publish_parts(topic, payload, mid, v5=v5, dup=dup, retain=retain, qos=qos))


def publish_parts(topic: bytes, payload: bytes, mid: int, *, v5: bool, dup: bool = False,
                  retain: bool = False, qos: int = 1) -> tuple[bytes, ...]:
    """The pieces of a PUBLISH packet, for joining many packets in one go."""
    ident = mid.to_bytes(2, "big") if qos else b""
    props = b"\x00" if v5 else b""
    return (_HEADS[qos << 1 | (0x08 if dup else 0) | (0x01 if retain else 0)],
            _varint(len(topic) + len(ident) + len(props) + len(payload)), topic, ident, props, payload)


_HEADS = tuple(bytes((0x30 | flags,)) for flags in range(16))


def connect_packet(cfg: MqttConfig, will_topic: str, will_payload: bytes) -> bytes:
    """CONNECT with a clean session and a retained QoS 1 will."""
    v5 = cfg.protocol == "5"
    flags = 0x02 | 0x04 | 0x08 | 0x20  # clean start, will, will QoS 1, will retain
    payload = [_str16(cfg.client_id.encode())]
    payload += [b"\x00"] if v5 else []  # will properties: none
    payload += [_str16(will_topic.encode()), _str16(will_payload)]
    if cfg.username is not None:
        flags |= 0x80
        payload.append(_str16(cfg.username.encode()))
        if cfg.password is not None:
            flags |= 0x40
            payload.append(_str16(cfg.password.encode()))
    header = b"\x00\x04MQTT" + bytes((5 if v5 else 4, flags)) + cfg.keepalive.to_bytes(2, "big")
    body = header + (b"\x00" if v5 else b"") + b"".join(payload)
    return b"\x10" + _varint(len(body)) + body


def _read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(value, next position), or None while the bytes are not all there."""
    value = shift = 0
    for i in range(pos, min(pos + 4, len(buf))):
        value |= (buf[i] & 0x7F) << shift
        if not buf[i] & 0x80:
            return value, i + 1
        shift += 7
    if len(buf) >= pos + 4:
        raise ProtocolError("malformed remaining length")
    return None


def read_properties(data: bytes, pos: int) -> dict[int, int]:
    """The numeric MQTT 5 properties at ``pos`` (strings and pairs are skipped)."""
    parsed = _read_varint(data, pos)
    if parsed is None:
        raise ProtocolError("truncated properties")
    length, pos = parsed
    end, found = pos + length, {}
    while pos < end:
        ident = data[pos]
        kind = _PROPERTIES.get(ident)
        pos += 1
        if kind == _BYTE:
            found[ident], pos = data[pos], pos + 1
        elif kind == _U16:
            found[ident], pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif kind == _U32:
            found[ident], pos = int.from_bytes(data[pos:pos + 4], "big"), pos + 4
        elif kind == _VARINT:
            value = _read_varint(data, pos)
            if value is None:
                raise ProtocolError("truncated property")
            found[ident], pos = value
        elif kind == _STR:
            pos += 2 + int.from_bytes(data[pos:pos + 2], "big")
        elif kind == _PAIR:
            pos += 2 + int.from_bytes(data[pos:pos + 2], "big")
            pos += 2 + int.from_bytes(data[pos:pos + 2], "big")
        else:
            raise ProtocolError(f"unknown MQTT 5 property 0x{ident:02x}")
    return found


def reason_name(packet: int, code: int) -> str:
    """paho's name for an MQTT 5 reason code ("Not authorized"), as the gateway logged it before."""
    try:
        return ReasonCode(packet, identifier=code).getName()
    except (KeyError, ValueError):
        return f"reason code 0x{code:02x}"


class Connection(asyncio.Protocol):
    """One connection to the broker. Acknowledgements go to ``on_acks`` in batches; ``lost``
    is set when the connection ends, whichever side ended it."""

    def __init__(self, v5: bool, on_acks: AckHandler):
        self.v5 = v5
        self.on_acks = on_acks
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.lost = asyncio.Event()
        self.reason: str = ""  # why the connection ended, when the broker said
        self.last_in = self.last_out = time.monotonic()
        self.ping_sent: float | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.reason:
            self.reason = str(exc)
        if not self.connack.done():
            self.connack.set_exception(ConnectionError(self.reason or "connection closed by the broker"))
        self.lost.set()

    def data_received(self, data: bytes) -> None:
        self.last_in = time.monotonic()
        self.ping_sent = None  # any packet shows the broker is there
        buf = self.buf
        buf += data
        acked: list[int] = []
        refused: list[tuple[int, str]] = []
        pos, end = 0, len(buf)
        try:
            while end - pos >= 2:
                kind = buf[pos]
                if kind == _PUBACK and buf[pos + 1] == 2:  # the usual PUBACKs: success in 4 bytes,
                    if end - pos < 4:
                        break
                    acked.append(buf[pos + 2] << 8 | buf[pos + 3])
                    pos += 4
                    continue
                if kind == _PUBACK and buf[pos + 1] == 3 and end - pos >= 5 and buf[pos + 4] < 0x80:
                    acked.append(buf[pos + 2] << 8 | buf[pos + 3])  # or MQTT 5's 0x10: no subscribers
                    pos += 5
                    continue
                parsed = _read_varint(buf, pos + 1)
                if parsed is None or parsed[1] + parsed[0] > end:
                    break
                size, start = parsed
                packet, pos = bytes(buf[start:start + size]), start + size
                self._packet(kind, packet, acked, refused)
        except ProtocolError as exc:
            self.reason = str(exc)
            self.abort()
        del buf[:pos]
        if acked or refused:
            self.on_acks(acked, refused)

    def _packet(self, kind: int, packet: bytes, acked: list[int], refused: list[tuple[int, str]]) -> None:
        if kind == _PUBACK:
            if len(packet) < 2:
                raise ProtocolError("short PUBACK")
            mid, code = packet[0] << 8 | packet[1], packet[2] if len(packet) > 2 else 0
            if code < 0x80:  # 0x10: no matching subscribers, still accepted
                acked.append(mid)
            else:
                refused.append((mid, reason_name(PacketTypes.PUBACK, code)))
        elif kind == 0x20:  # CONNACK
            if not self.connack.done():
                self.connack.set_result(packet)
        elif kind == _PINGRESP:
            pass
        elif kind == _DISCONNECT:  # MQTT 5: the broker says why before it closes
            self.reason = reason_name(PacketTypes.DISCONNECT, packet[0] if packet else 0)
            self.abort()
        else:
            raise ProtocolError(f"unexpected packet type 0x{kind:02x}")

    # --- sending ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.last_out = time.monotonic()

    def keep_alive(self, keepalive: float, waiting: bool) -> None:
        """Ping when nothing was sent for half the keep-alive. Drop the connection when the broker
        has sent nothing for a whole keep-alive while an answer is due (a ping, or ``waiting``:
        messages in flight): a healthy broker answers in milliseconds, and a half-open link, whose
        writes still succeed, would otherwise hold the window until TCP gives up."""
        now = time.monotonic()
        if keepalive and (waiting or self.ping_sent is not None) and now - self.last_in > keepalive:
            self.reason = f"no answer from the broker for {keepalive:g} s (keep-alive)"
            self.abort()
        elif keepalive and now - self.last_out >= keepalive / 2:
            self.write(_PINGREQ)
            if self.ping_sent is None:
                self.ping_sent = now

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def close(self, last_words: bytes = b"") -> None:
        """Send ``last_words`` and DISCONNECT, then close; waits at most a second for the flush."""
        self.write(last_words + b"\xe0\x00")
        if self.transport is not None:
            self.transport.close()
        try:
            await asyncio.wait_for(self.lost.wait(), 1.0)
        except asyncio.TimeoutError:
            self.abort()


def tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cfg.ca)
    if cfg.cert:
        ctx.load_cert_chain(cfg.cert, cfg.key)
    if cfg.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def connect(cfg: MqttConfig, will_topic: str, will_payload: bytes,
                  on_acks: AckHandler) -> tuple[Connection, dict[int, int]]:
    """Open a connection and finish the MQTT handshake; returns it with the CONNACK's numeric
    properties (MQTT 5). Raises Refused, OSError (ssl.SSLError included) or asyncio.TimeoutError."""
    loop = asyncio.get_running_loop()
    v5 = cfg.protocol == "5"
    _, conn = await asyncio.wait_for(loop.create_connection(
        lambda: Connection(v5, on_acks), cfg.host, cfg.port, ssl=tls_context(cfg) if cfg.tls else None),
        CONNECT_TIMEOUT_S)
    conn.write(connect_packet(cfg, will_topic, will_payload))
    try:
        ack = await asyncio.wait_for(asyncio.shield(conn.connack), CONNECT_TIMEOUT_S)
        if len(ack) < 2:
            raise ProtocolError("short CONNACK")
        code = ack[1]
        if code:
            raise Refused(reason_name(PacketTypes.CONNACK, code) if v5 else str(mqtt.convert_connack_rc_to_reason_code(code)))
        props = read_properties(ack, 2) if v5 else {}
    except (ConnectionError, ProtocolError) as exc:
        conn.abort()
        raise OSError(f"MQTT handshake failed: {exc}") from None
    except BaseException:
        conn.abort()
        raise
    return conn, props


def apply_credentials(client: mqtt.Client, cfg: MqttConfig) -> None:
    """User, password and TLS from the settings, for paho clients (the fleet consumer)."""
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls:
        client.tls_set(ca_certs=cfg.ca, certfile=cfg.cert, keyfile=cfg.key,
                       cert_reqs=ssl.CERT_NONE if cfg.insecure else ssl.CERT_REQUIRED)
        client.tls_insecure_set(cfg.insecure)
