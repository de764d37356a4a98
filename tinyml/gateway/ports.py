"""Async byte streams for the gateway's ports: ``socket://host:port`` and serial device paths
(``/dev/ttyUSB0``, ptys), and the reader loop that reconnects with backoff.

Serial ports are opened with pyserial (which sets the baud rate and raw mode) and then
watched with the event loop's ``add_reader`` on the file descriptor, so one thread serves
every port. A port that vanishes (USB unplugged, emulator gone) reads EOF or EIO; the
reader reports it and keeps retrying with exponential backoff until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import serial

from tinyml.device.link import _open_error
from tinyml.errors import InputError
from tinyml.gateway.identity import Identity
from tinyml.gateway.ingest import LineState, PortState, Record
from tinyml.gateway.limits import IdBudget

log = logging.getLogger("tinyml.gateway")
READ_SIZE = 4096  # small reads keep the bounded queue (in reads) small in records too
# A socket's buffer in user space: asyncio stops and restarts watching the socket each time it
# fills, so a buffer of one read would cost two epoll_ctl calls per read at line rate.
SOCKET_BUFFER = 64 * 1024
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 5.0
REMIND_S = 30.0  # how often a port that stays unavailable is mentioned again


class Connection:
    async def read(self) -> bytes:
        """Some bytes; b"" at end of stream."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SocketConnection(Connection):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        return await self.reader.read(READ_SIZE)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


class SerialConnection(Connection):
    def __init__(self, port: serial.Serial):
        self.port = port
        self.fd = port.fileno()
        self.loop = asyncio.get_running_loop()

    async def read(self) -> bytes:
        while True:
            try:
                return os.read(self.fd, READ_SIZE) or b""
            except BlockingIOError:
                pass
            ready: asyncio.Future[None] = self.loop.create_future()
            self.loop.add_reader(self.fd, _resolve, ready)
            try:
                await ready
            finally:
                self.loop.remove_reader(self.fd)

    def write(self, data: bytes) -> None:
        try:
            os.write(self.fd, data)
        except BlockingIOError:
            log.debug("port %s: write would block, dropped %d bytes", self.port.port, len(data))

    def close(self) -> None:
        self.port.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def check_port(url: str) -> None:
    """Refuse port names the gateway cannot open, before it starts."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme == "socket":
        parts = urlsplit(url)
        try:
            ok = bool(parts.hostname) and parts.port is not None
        except ValueError:
            ok = False
        if not ok:
            raise InputError(f"bad port URL {url!r}", "use socket://HOST:PORT")
    elif scheme:
        raise InputError(f"unsupported port URL {url!r}", "use a device path (/dev/ttyUSB0, a pty) or socket://HOST:PORT")


async def open_port(url: str, baud: int) -> Connection:
    if url.startswith("socket://"):
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=SOCKET_BUFFER)
        return SocketConnection(reader, writer)
    port = serial.Serial(url, baudrate=baud, timeout=0, exclusive=True)
    fd = port.fileno()
    attrs = termios.tcgetattr(fd)
    attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0  # idle line: EAGAIN; only a hang-up reads 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    os.set_blocking(fd, False)
    return SerialConnection(port)


def waiting_for(url: str, exc: Exception) -> str:
    """Why a port did not open, as what the gateway now waits for: a device that is missing
    is not one that another program holds, and neither is a TCP endpoint nobody serves yet."""
    if url.startswith("socket://"):
        parts = urlsplit(url)
        if isinstance(exc, ConnectionRefusedError):
            return f"nothing listens on {parts.hostname}:{parts.port} yet; waiting for a device server there"
        return f"cannot connect to {parts.hostname}:{parts.port} ({' '.join(str(exc).split())}); waiting for it"
    err = _open_error(url, exc)
    if "not found" in err.message:
        return f"{url} does not exist; waiting for the device to be plugged in (list ports with `tinyml ports`)"
    if "busy" in err.message:
        return f"{err.message}; waiting for it to be released"
    return f"{err.message}; retrying ({err.hint})"


async def read_port(url: str, baud: int, emit: Callable[[list[Record]], Awaitable[None]], stop: asyncio.Event,
                    writers: dict[str, Connection] | None = None, budget: IdBudget | None = None,
                    identity: Identity | None = None) -> None:
    """Read one port forever: decode, emit records, reconnect with backoff when it goes away.
    While connected, the connection is in ``writers[url]`` (the gateway sends requests through it).

    While a port cannot be opened the log says why and what it waits for, again whenever the
    reason changes and every REMIND_S, so a gateway waiting for a device never looks hung."""
    backoff = BACKOFF_MIN_S
    last_error: str | None = None
    since = reminded = 0.0
    while not stop.is_set():
        try:
            conn = await open_port(url, baud)
        except (OSError, serial.SerialException) as exc:
            error = waiting_for(url, exc)
            now = time.monotonic()
            if error != last_error:
                log.warning("port %s: %s", url, error)
                await emit([PortState(url, False, error, time.time())])
                last_error, since, reminded = error, now, now
            elif now - reminded >= REMIND_S:
                log.warning("port %s: still waiting after %.0f s: %s", url, now - since, error)
                reminded = now
            await _sleep_or_stop(stop, backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            continue
        backoff, last_error = BACKOFF_MIN_S, None
        log.info("port %s connected", url)
        await emit([PortState(url, True, None, time.time())])
        reason = "closed"
        line = LineState(url, budget, identity)
        if writers is not None:
            writers[url] = conn
        try:
            while not stop.is_set():
                line.wants_hello(time.time())
                if line.outgoing:  # HELLO_REQ, AUTH_CHALLENGE
                    conn.write(line.take_outgoing())
                # identified lines block in read; unidentified ones (or unproven claims) wake up to re-ask
                settled = line.device is not None and line.claim is None
                data = await conn.read() if settled else await _read_or_timeout(conn)
                if data is None:
                    continue
                if not data:
                    break
                records = line.feed(data, time.time())
                if line.outgoing:
                    conn.write(line.take_outgoing())
                if records:
                    await emit(records)
        except (OSError, serial.SerialException) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - a bug on one line must not silence it for good
            reason = f"internal error {type(exc).__name__}: {exc}"
            log.error("port %s: %s", url, reason)
        finally:
            if writers is not None and writers.get(url) is conn:
                del writers[url]
            if identity is not None:
                identity.release(url)
            conn.close()
        if not stop.is_set():
            log.warning("port %s disconnected (%s); reconnecting", url, reason)
            await emit([PortState(url, False, reason, time.time())])
            await _sleep_or_stop(stop, BACKOFF_MIN_S)


async def _read_or_timeout(conn: Connection) -> bytes | None:
    """Read with a periodic wake-up (None) so an unidentified line can re-ask for HELLO."""
    try:
        return await asyncio.wait_for(conn.read(), timeout=1.0)
    except asyncio.TimeoutError:
        return None


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
