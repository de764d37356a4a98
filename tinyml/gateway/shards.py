"""``[ingest] shards = N``: N reader processes, each owning a share of the ports, feeding the one writer.

One asyncio process reads, decodes and stores; past about one core of work (docs/benchmarks.md)
reading and decoding move into shard processes. A shard runs the ports' readers exactly as the
in-process gateway does (``ports.read_port``: framing, HELLO and per-line state, device
authentication), so every decision about a line is made where its state lives. What a shard
reads goes to the writer over a pipe, many records per message: results packed as bytes
(``pack``), the rare other records pickled beside them. The writer (store, rules, MQTT)
stays single, so storing once, per-device order and ids are exactly as without shards.

Nothing a shard holds is acknowledged: a result counts only once the writer commits it, so a
shard or gateway killed with SIGKILL loses only what no one was told was stored, and a
restarted gateway dedupes what the device sends again. A shard whose pipe closes (the gateway
died) stops; a shard that dies is started again by the writer, and its ports reconnect.

Cross-port limits live per shard: a device id bound to a port (one port per id) and the
``[limits]`` budget are each shard's own, so an id on two ports of different shards is not
refused, and ``total`` and ``new_per_min`` apply per shard (docs/gateway.md).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import signal
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tinyml.device import protocol
from tinyml.gateway import ports
from tinyml.gateway.clock import DeviceClock
from tinyml.gateway.identity import Identity
from tinyml.gateway.ingest import PortState, Record, ResultsRecord
from tinyml.gateway.limits import IdBudget

if TYPE_CHECKING:
    from tinyml.gateway.config import GatewayConfig

log = logging.getLogger("tinyml.gateway")
STOP_S = 10.0  # how long a stopping shard may take to hand over what it read before it is killed
RESTART_S = 1.0  # a shard that dies is started again after this pause (a crash loop stays slow)
_HEAD = struct.Struct("<BIIIIBBfH")  # kind (0 RESULT, 1 AUTH_RESULT), the RESULT fields, output length


@dataclass(frozen=True)
class IngestConfig:
    shards: int = 0  # reader processes; 0 or 1: read in the writer's process
    # The writer's commit pacing (service.CommitPacer): no wait below busy_rate results/s, then a
    # wait between commits growing to commit_interval_ms at 4x busy_rate; 0 commits when free.
    commit_interval_ms: float = 20.0
    busy_rate: float = 1500.0
    # Above busy_rate results/s the ports are read every poll_ms instead of when each is readable
    # (ports.Intake): fewer, larger reads for at most poll_ms more latency; 0 reads on readiness only.
    poll_ms: float = 24.0
    # false: commits are not flushed to the disk one by one (SQLite WAL, synchronous=NORMAL). A
    # killed gateway still loses nothing; a power cut or kernel crash may lose the last commits,
    # already counted and possibly forwarded. Saves a disk flush per commit (docs/gateway.md).
    fsync: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.shards <= 64:
            raise ValueError("shards must be between 0 and 64")
        if not 0 <= self.commit_interval_ms <= 1000:
            raise ValueError("commit_interval_ms must be between 0 and 1000")
        if not 0 <= self.poll_ms <= 1000:
            raise ValueError("poll_ms must be between 0 and 1000")
        if not self.busy_rate > 0:
            raise ValueError("busy_rate must be a positive number of results per second")


def assign(urls: Iterable[str], shards: int) -> list[tuple[str, ...]]:
    """Ports dealt round-robin over at most ``shards`` shards (no shard without a port)."""
    urls = tuple(urls)
    count = max(1, min(shards, len(urls)))
    return [urls[i::count] for i in range(count)]


def pack(records: list[Record]) -> bytes:
    """Records as one message: a result costs a struct pack, not a pickled object."""
    out: list[Any] = []
    for rec in records:
        if type(rec) is ResultsRecord:
            parts = bytearray()
            for r in rec.results:
                auth = type(r) is protocol.AuthResult
                raw = r.raw_output
                parts += _HEAD.pack(auth, r.seq, r.boot_id, r.timestamp_ms, r.latency, r.latency_unit, r.label,
                                    r.score, len(raw))
                parts += raw
                if auth:
                    parts += r.mac
            out.append((rec.port, rec.device, rec.at, rec.authenticated, bytes(parts)))
        else:
            out.append(rec)
    return pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(message: bytes) -> list[Record]:
    records: list[Record] = []
    for item in pickle.loads(message):  # noqa: S301 - from our own shard process over a private pipe
        if type(item) is not tuple:
            records.append(item)
            continue
        port, device, at, authenticated, data = item
        results: list[protocol.RawResult | protocol.Result] = []
        off, end = 0, len(data)
        while off < end:
            auth, seq, boot, ts, lat, unit, label, score, n = _HEAD.unpack_from(data, off)
            off += _HEAD.size
            raw = data[off:off + n]
            off += n
            if auth:
                results.append(protocol.AuthResult(seq, boot, ts, lat, unit, label, score,
                                                   tuple(array.array("b", raw)), data[off:off + protocol.MAC_BYTES]))
                off += protocol.MAC_BYTES
            else:
                results.append(protocol.RawResult(seq, boot, ts, lat, unit, label, score, raw))
        records.append(ResultsRecord(port, device, results, at, authenticated))
    return records


class Shard:
    """The writer's handle on one shard process: start, relay, ask it to write to a port, stop."""

    def __init__(self, index: int, share: tuple[str, ...], config: GatewayConfig):
        self.index, self.ports, self.config = index, share, config
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: Any = None

    def start(self, known: Iterable[str]) -> None:
        ctx = multiprocessing.get_context("spawn")  # the writer has threads and an open database: no fork
        ours, theirs = ctx.Pipe(duplex=True)
        level = logging.getLogger("tinyml.gateway").getEffectiveLevel()
        self.process = ctx.Process(target=shard_main, args=(self.config, self.ports, sorted(known), theirs, level),
                                   name=f"tinyml-shard-{self.index}", daemon=True)
        self.process.start()
        theirs.close()
        self.conn = ours
        log.info("shard %d (pid %d) reads %d port(s)", self.index, self.process.pid, len(self.ports))

    def send(self, command: tuple) -> None:
        try:
            self.conn.send_bytes(pickle.dumps(command))
        except OSError as exc:  # the shard is gone; the relay notices and restarts it
            log.warning("shard %d: cannot send %s: %s", self.index, command[0], exc)

    def writer(self, port: str) -> ShardPort:
        return ShardPort(self, port)

    async def relay(self, put: Callable[[list[Record]], Awaitable[None]]) -> bool:
        """Pass the shard's records to ``put`` until it finishes (True) or dies (False)."""
        loop = asyncio.get_running_loop()
        fd = self.conn.fileno()
        while True:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            try:
                message = self.conn.recv_bytes()
            except (EOFError, OSError):
                return False
            if not message:  # the end marker: everything read has been sent
                return True
            await put(unpack(message))

    def close(self, *, kill: bool = False) -> int | None:
        if self.process is None:
            return None
        if kill and self.process.is_alive():
            self.process.kill()
        self.process.join(STOP_S)
        self.conn.close()
        return self.process.exitcode


class ShardPort(ports.Connection):
    """A port served by a shard, as the writer sees it: writes (evidence requests) go through the shard."""

    def __init__(self, shard: Shard, port: str):
        self.shard, self.port = shard, port

    def write(self, data: bytes) -> None:
        self.shard.send(("write", self.port, data))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def supervise(shard: Shard, put: Callable[[list[Record]], Awaitable[None]], stopping: asyncio.Event,
                    known: Callable[[], Iterable[str]]) -> None:
    """Relay one shard for the gateway's lifetime; a shard that dies is reported and started again."""
    while True:
        if await shard.relay(put):
            shard.close()
            return
        code = shard.close(kill=True)
        if stopping.is_set():
            log.warning("shard %d exited (code %s) while stopping", shard.index, code)
            return
        log.warning("shard %d exited (code %s); its ports reconnect in a new shard", shard.index, code)
        await put([PortState(p, False, f"shard exited (code {code})", time.time()) for p in shard.ports])
        await asyncio.sleep(RESTART_S)
        shard.start(known())


# --- the shard process --------------------------------------------------------------------------------------


def shard_main(config: GatewayConfig, share: tuple[str, ...], known: list[str], conn: Any, level: int) -> None:
    """A shard's process: read the ports of ``share`` until the writer says stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the writer decides
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        asyncio.run(_serve(config, share, known, conn))


async def _serve(config: GatewayConfig, share: tuple[str, ...], known: list[str], conn: Any) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    budget = IdBudget(config.limits, known=known)
    identity = Identity(config.auth, config.keys())
    writers: dict[str, ports.Connection] = {}

    def send(records: list[Record]) -> None:
        try:
            conn.send_bytes(pack(records))  # blocks while the writer is behind: the readers wait, as in-process
        except OSError:  # the writer is gone: nothing read here was acknowledged
            stop.set()

    intake = ports.Intake(flush=send, poll_s=config.ingest.poll_ms / 1000,  # every read of one loop turn
                          busy_rate=config.ingest.busy_rate)  # (one poll when busy) joins one message

    def command() -> None:
        try:
            what = pickle.loads(conn.recv_bytes())  # noqa: S301 - from the writer over a private pipe
        except (EOFError, OSError):  # the writer is gone (SIGKILL): nothing read here was acknowledged
            loop.remove_reader(conn.fileno())
            stop.set()
            return
        if what[0] == "stop":
            stop.set()
        elif what[0] == "write":
            target = writers.get(what[1])
            if target is None:
                log.warning("evidence for port %s not requested: it is not connected", what[1])
            else:
                with contextlib.suppress(OSError):
                    target.write(what[2])

    loop.add_reader(conn.fileno(), command)
    clock = DeviceClock(config.devices)
    tasks = [asyncio.create_task(ports.read_port(p, config.baud, intake, stop, writers, budget=budget,
                                                 identity=identity, clock=clock)) for p in share]
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(ValueError, OSError):
        loop.remove_reader(conn.fileno())
    if intake.records:
        send(intake.take())
    conn.send_bytes(b"")  # the end marker
