"""The gateway's ports, ``socket://host:port`` and serial device paths (``/dev/ttyUSB0``, ptys),
read by callbacks of one event loop, and the ``Intake`` that hands what they read to the writer.

A connected port's file descriptor is registered with the loop once (``add_reader``). When it is
readable, its callback reads what is there (up to READ_SIZE, into one buffer per loop), decodes it
with the line's state and adds the records to the intake; the writer takes everything the intake
holds at once. So one wake-up of the loop serves every ready port, and a read costs a ``recv`` and
the decode: no future, task switch or queue hand-over per read (issue 20: that overhead cost
several times the decode when each read carried one frame).

Under load (more than ``busy_rate`` results/s) the intake stops waiting for the ports' readiness
and reads every port once per ``poll_s`` instead (issue 20): at 64 devices on line rate each port
has a frame every 8 ms, so a wake-up per frame meant a read, a decode call and two writer records
per result; read every 16 ms a port has two or three frames, for at most ``poll_s`` more latency.

A task per port does what is rare and slow: opening it, re-asking HELLO, reconnecting with
backoff. Serial ports are opened with pyserial (which sets the baud rate and raw mode) and read
from their file descriptor; sockets are plain non-blocking sockets. A port that vanishes (USB
unplugged, emulator gone) reads EOF or EIO; its task reports it and keeps retrying with
exponential backoff until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import termios
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import serial

from tinyml.device.link import _open_error
from tinyml.errors import InputError
from tinyml.gateway.clock import DeviceClock
from tinyml.gateway.identity import Identity
from tinyml.gateway.ingest import LineState, PortState, Record, ResultsRecord, batch_size
from tinyml.gateway.limits import IdBudget

log = logging.getLogger("tinyml.gateway")
READ_SIZE = 64 * 1024  # at most one read per port and wake-up: a large one takes all a busy port has
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 5.0
REMIND_S = 30.0  # how often a port that stays unavailable is mentioned again
ASK_EVERY_S = 1.0  # how often a connected port's task looks whether its line should re-ask HELLO
RATE_SPAN_S = 0.5  # the intake's rate, which decides between reading on readiness and polling, over this span


class Intake:
    """Records read and not yet taken, in arrival order, and the ports' read callbacks.

    Without ``flush`` the writer takes what is here (``ready`` says something is) and commits it;
    once ``limit`` results (and other records) wait, the ports are no longer read until it does (their data waits in
    the kernel and, on TCP, backs up to the devices), so memory stays bounded and nothing read is
    dropped. With ``flush`` (a shard process) everything added in one turn of the loop is passed to
    it as one list at the end of that turn, and ``flush`` may block: the readers then wait.

    With ``poll_s``, while more than ``busy_rate`` results a second are added,
    the ports are not watched: every port is read once per ``poll_s`` (``polling``)."""

    def __init__(self, *, limit: int | None = None, flush: Callable[[list[Record]], None] | None = None,
                 poll_s: float = 0.0, busy_rate: float = float("inf")):
        self.loop = asyncio.get_running_loop()
        self.limit, self.flush = limit, flush
        self.poll_s, self.busy_rate = poll_s, busy_rate
        self.records: list[Record] = []
        self.size = 0  # results (and other records) in ``records``
        self.ready = asyncio.Event()  # records wait (the gateway also sets it to wake its writer at the stop)
        self.buffer = bytearray(READ_SIZE)  # every read of this loop lands here first, then is decoded
        self.polling = False  # the ports are read every ``poll_s``, not when readable
        self.results = 0  # results added since the rate was last measured
        self._room = asyncio.Event()
        self._room.set()
        self._watched: dict[int, Callable[[], None]] = {}
        self._flushing = False
        self._next_poll = 0.0
        self._poller: asyncio.TimerHandle | None = None
        if poll_s > 0:
            self.loop.call_later(RATE_SPAN_S, self._measure, self.loop.time())

    def add(self, records: list[Record]) -> None:
        self.records += records
        results = others = 0
        for r in records:
            if type(r) is ResultsRecord:
                results += len(r.results)
            else:
                others += 1
        self.size += results + others  # (``batch_size``, counted with the results alone)
        self.results += results
        if self.flush is not None:
            if not self._flushing:
                self._flushing = True
                self.loop.call_soon(self._flush)
            return
        self.ready.set()
        if self.limit is not None and self.size >= self.limit and self._room.is_set():
            self._room.clear()
            for fd in self._watched:
                self.loop.remove_reader(fd)

    async def put(self, records: list[Record]) -> None:
        """``add`` for producers that can wait for room (the clock, the shard relays)."""
        await self._room.wait()
        self.add(records)

    def take(self, most: int | None = None) -> list[Record]:
        """What is waiting, oldest first: everything, or the oldest records up to the first that brings
        them to ``most`` results (and other records). The ports are read again if they were paused."""
        records = self.records
        if most is not None and self.size > most:
            end = size = 0
            while size < most:
                size += batch_size(records[end:end + 1])
                end += 1
            records, self.records, self.size = records[:end], records[end:], self.size - size
        else:
            self.records, self.size = [], 0
            self.ready.clear()
        if not self._room.is_set() and (self.limit is None or self.size < self.limit):
            self._room.set()
            if not self.polling:
                for fd, callback in self._watched.items():
                    self.loop.add_reader(fd, callback)
        return records

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        self._watched[fd] = callback
        if self._room.is_set() and not self.polling:
            self.loop.add_reader(fd, callback)

    def unwatch(self, fd: int) -> None:
        if self._watched.pop(fd, None) is not None:
            self.loop.remove_reader(fd)  # (a port not watched now, paused or polled: nothing to remove)

    def _measure(self, since: float) -> None:
        """Every RATE_SPAN_S: poll the ports while the rate is above ``busy_rate``, else watch them."""
        now = self.loop.time()
        polling = self.results >= self.busy_rate * (now - since)
        self.results = 0
        self.loop.call_later(RATE_SPAN_S, self._measure, now)
        if polling == self.polling:
            return
        self.polling = polling
        if polling:
            self._next_poll = now
            self._poller = self.loop.call_soon(self._poll)
        elif self._poller is not None:
            self._poller.cancel()
        if self._room.is_set():
            for fd, callback in self._watched.items():
                if polling:
                    self.loop.remove_reader(fd)
                else:
                    self.loop.add_reader(fd, callback)

    def _poll(self) -> None:
        """Read every port once (what each has now, up to READ_SIZE), then again ``poll_s`` later."""
        if self._room.is_set():
            for callback in list(self._watched.values()):  # (a callback that meets EOF unwatches its port)
                callback()
        self._next_poll = max(self._next_poll + self.poll_s, self.loop.time())
        self._poller = self.loop.call_at(self._next_poll, self._poll)

    def _flush(self) -> None:
        self._flushing = False
        if self.records and self.flush is not None:
            self.flush(self.take())


class Connection:
    """An open port: its file descriptor, read and written without blocking."""

    fd: int

    def read_into(self, buffer: bytearray) -> int | None:
        """Bytes read into ``buffer`` (0 at end of stream); None when nothing is waiting."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SocketConnection(Connection):
    def __init__(self, sock: socket.socket):
        self.sock, self.fd = sock, sock.fileno()

    def read_into(self, buffer: bytearray) -> int | None:
        try:
            return self.sock.recv_into(buffer)
        except BlockingIOError:
            return None

    def write(self, data: bytes) -> None:
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            log.debug("port fd %d: write would block, dropped %d bytes", self.fd, len(data) - sent)

    def close(self) -> None:
        self.sock.close()


class SerialConnection(Connection):
    def __init__(self, port: serial.Serial):
        self.port = port
        self.fd = port.fileno()

    def read_into(self, buffer: bytearray) -> int | None:
        try:
            return os.readv(self.fd, (buffer,))
        except BlockingIOError:
            return None

    def write(self, data: bytes) -> None:
        try:
            os.write(self.fd, data)
        except BlockingIOError:
            log.debug("port %s: write would block, dropped %d bytes", self.port.port, len(data))

    def close(self) -> None:
        self.port.close()


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
        return SocketConnection(await _connect(str(parts.hostname), int(parts.port or 0)))
    port = serial.Serial(url, baudrate=baud, timeout=0, exclusive=True)
    fd = port.fileno()
    attrs = termios.tcgetattr(fd)
    attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0  # idle line: EAGAIN; only a hang-up reads 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    os.set_blocking(fd, False)
    return SerialConnection(port)


async def _connect(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket: each address of ``host`` in turn, the last error if none answers."""
    loop = asyncio.get_running_loop()
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
        except BaseException:
            sock.close()
            raise
    raise error


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


async def read_port(url: str, baud: int, intake: Intake, stop: asyncio.Event,
                    writers: dict[str, Connection] | None = None, budget: IdBudget | None = None,
                    identity: Identity | None = None, clock: DeviceClock | None = None) -> None:
    """Keep one port open: while it is connected its reads are decoded into ``intake`` by a
    callback (``_LineReader``); reconnect with backoff when it goes away. While connected, the
    connection is in ``writers[url]`` (the gateway sends requests through it). ``clock``: the time
    the line gives its device (TIME, clock.py).

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
                intake.add([PortState(url, False, error, time.time())])
                last_error, since, reminded = error, now, now
            elif now - reminded >= REMIND_S:
                log.warning("port %s: still waiting after %.0f s: %s", url, now - since, error)
                reminded = now
            await _sleep_or_stop(stop, backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            continue
        backoff, last_error = BACKOFF_MIN_S, None
        log.info("port %s connected", url)
        intake.add([PortState(url, True, None, time.time())])
        reader = _LineReader(conn, LineState(url, budget, identity, clock), intake)
        if writers is not None:
            writers[url] = conn
        stopping = asyncio.ensure_future(stop.wait())
        try:
            intake.watch(conn.fd, reader.readable)
            while not reader.closed.done() and not stopping.done():
                reader.ask()  # HELLO_REQ, AUTH_CHALLENGE while the line is not settled
                await asyncio.wait((reader.closed, stopping), timeout=ASK_EVERY_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            intake.unwatch(conn.fd)
            if writers is not None and writers.get(url) is conn:
                del writers[url]
            if identity is not None:
                identity.release(url)
            conn.close()
        if not stop.is_set():
            reason = reader.closed.result() if reader.closed.done() else "closed"
            log.warning("port %s disconnected (%s); reconnecting", url, reason)
            intake.add([PortState(url, False, reason, time.time())])
            await _sleep_or_stop(stop, BACKOFF_MIN_S)


class _LineReader:
    """A connected port's read callback: what the port has now, decoded by its line state into the
    intake, and whatever the line must send back (HELLO_REQ, AUTH_CHALLENGE) written."""

    def __init__(self, conn: Connection, line: LineState, intake: Intake):
        self.conn, self.line, self.intake = conn, line, intake
        self.closed: asyncio.Future[str] = intake.loop.create_future()  # why the connection ended

    def readable(self) -> None:
        try:
            n = self.conn.read_into(self.intake.buffer)
        except (OSError, serial.SerialException) as exc:
            self._close(" ".join(str(exc).split()) or type(exc).__name__)
            return
        if n is None:
            return
        if not n:
            self._close("closed")
            return
        line = self.line
        try:
            records = line.feed(memoryview(self.intake.buffer)[:n], time.time())
        except Exception as exc:  # noqa: BLE001 - a bug on one line must not silence it for good
            reason = f"internal error {type(exc).__name__}: {exc}"
            log.error("port %s: %s", line.port, reason)
            self._close(reason)
            return
        if records:
            self.intake.add(records)
        self.ask()

    def ask(self) -> None:
        """Queue HELLO_REQ (or AUTH_CHALLENGE) if the line should re-ask, and send what is queued."""
        line = self.line
        if line.device is None or line.claim is not None:
            line.wants_hello(time.time())
        if line.outgoing and not self.closed.done():
            try:
                self.conn.write(line.take_outgoing())
            except (OSError, serial.SerialException) as exc:
                self._close(" ".join(str(exc).split()) or type(exc).__name__)

    def _close(self, reason: str) -> None:
        self.intake.unwatch(self.conn.fd)  # an ended stream stays readable: no more callbacks
        if not self.closed.done():
            self.closed.set_result(reason)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
