"""`tinyml gateway run`: port readers -> one batching writer -> outbox -> MQTT, plus HTTP status.

One asyncio loop. The ports' read callbacks add records to the intake (ports.py; a slow disk
pauses the reading, never loses records already read); the single writer takes what it holds
and commits it in one transaction in a worker thread, then wakes the forwarder. A record is
acknowledged (counted in the log, visible in status, sent to MQTT) only after its commit.
With ``[ingest] shards`` the readers run in processes of their own (shards.py) and relay tasks
put what they send into the same intake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time

from tinyml.device import protocol
from tinyml.errors import ToolError
from tinyml.gateway import api, ports, shards
from tinyml.gateway.clock import DeviceClock
from tinyml.gateway.config import GatewayConfig
from tinyml.gateway.forward import Forwarder
from tinyml.gateway.identity import Identity
from tinyml.gateway.ingest import Retention, Tick
from tinyml.gateway.limits import IdBudget
from tinyml.gateway.processor import Processor
from tinyml.gateway.status import snapshot
from tinyml.gateway.store import SCHEMA_VERSION, Store, connect

log = logging.getLogger("tinyml.gateway")
BATCH_MAX = 2000  # results (and other records) per transaction
READ_AHEAD = 4 * BATCH_MAX  # results (and other records) read and not yet committed before the ports pause
TICK_S = 1.0
RETENTION_EVERY_S = 60.0
RATE_SPAN_S = 0.5  # the commit pacer's rate is measured over spans of this length


class CommitPacer:
    """How long the writer leaves between the starts of two commits. Below ``busy_rate`` results/s
    none: a record waits only for the commit in progress (latency). Above it the interval grows
    linearly to ``max_s`` at 4x the rate, so a busy gateway commits fewer, larger transactions
    and its batched MQTT messages hold several results each: per commit and per message the
    cost is fixed (transaction, fsync, a device row per device, a PUBLISH and its PUBACK)."""

    def __init__(self, *, max_s: float, busy_rate: float):
        self.max_s, self.busy_rate = max_s, busy_rate
        self.rate = 0.0  # results/s over the last measured span
        self.since, self.count = time.monotonic(), 0

    def committed(self, results: int, now: float) -> None:
        self.count += results
        if now - self.since >= RATE_SPAN_S:
            self.rate, self.since, self.count = self.count / (now - self.since), now, 0

    def interval(self) -> float:
        busy = (self.rate - self.busy_rate) / (3 * self.busy_rate)
        return self.max_s * min(1.0, max(0.0, busy))


class Gateway:
    def __init__(self, config: GatewayConfig):
        for port in config.ports:
            ports.check_port(port)
        self.config = config
        self.store = Store(config.db)
        if not config.ingest.fsync:  # survives a killed process, not a power cut ([ingest] fsync)
            self.store.conn.execute("PRAGMA synchronous = NORMAL")
        self.processor = Processor(self.store, config)
        self.budget = IdBudget(config.limits, known=self.processor.devices)  # device ids: per port, total, rate (issue 16)
        self.identity = Identity(config.auth, config.keys())  # keys, per-port policy, one port per id (issue 16)
        self.committed = self.store.result_count()
        self.writers: dict[str, ports.Connection] = {}  # connected ports, for evidence requests
        self.store.mark_ports_down(time.time())
        self.processor.close_identity_alerts(time.time())
        self.started_at = time.time()
        self.forwarder: Forwarder | None = None

    def live(self, snap: dict) -> dict:
        """The stored snapshot plus what only the running gateway knows: each device's drift
        statistic, the MQTT broker connection and when this process started (a restart shows)."""
        snap["gateway"] = {"site": self.config.site, "started_at": self.started_at, "running": True}
        budget = self.budget  # HELLOs refused by the device-id limits, per reason (tinyml/gateway/limits.py)
        snap["device_ids"] = {"tracked": len(budget.known), "refused": dict(budget.refused),
                              "identity_refused": dict(self.identity.refused), "states": len(self.processor.devices)}
        fwd = self.forwarder
        snap["mqtt"] = None if fwd is None else {
            "broker": fwd.cfg.redacted(), "connected": fwd.connected.is_set(), "published": fwd.published,
            "rejected": fwd.rejected}
        for d in snap["devices"]:
            state = self.processor.devices.get(d["device"])  # read across threads: plain attribute reads
            drift = state.drift if state is not None else None
            d["drift"] = None if drift is None else {
                "method": drift.config.method, "value": drift.value, "firing": drift.firing,
                "threshold": drift.config.threshold}
        return snap

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        ingest = self.config.ingest
        intake = ports.Intake(limit=READ_AHEAD, poll_s=ingest.poll_ms / 1000, busy_rate=ingest.busy_rate)
        server = None
        if self.config.http is not None:  # first: a busy port is a start-up error
            reader = connect(self.config.db, readonly=True)
            lock = threading.Lock()

            def snap(*, limit: int | None = None, offset: int = 0) -> dict:
                with lock:
                    stored = snapshot(reader, limit=limit, offset=offset)
                return self.live(stored)
            server = await api.serve(*self.config.http, snap)
        forwarder = None
        if self.config.mqtt is not None:
            forwarder = self.forwarder = Forwarder(self.config.mqtt, self.config.db, self.config.site)
            forwarder.start()
        if self.store.migrated_from:
            log.info("database %s migrated from schema %s to %s", self.config.db, self.store.migrated_from,
                     SCHEMA_VERSION)
        log.info("gateway: site %s, db %s, %d port(s), %d result(s) stored", self.config.site,
                 self.config.db, len(self.config.ports), self.committed)
        readers = self._shards(intake, stop) if self.config.ingest.shards > 1 else []
        tasks = [] if readers else [
            asyncio.create_task(ports.read_port(p, self.config.baud, intake, stop, self.writers,
                                                budget=self.budget, identity=self.identity,
                                                clock=DeviceClock(self.config.devices)))
            for p in self.config.ports]
        tasks.append(asyncio.create_task(self._clock(intake, stop)))
        written = asyncio.Event()  # the writer has committed everything read before the stop
        read_all = asyncio.Event()  # every reader has stopped and handed over what it read
        forward_task = asyncio.create_task(forwarder.run(written)) if forwarder else None
        writer = asyncio.create_task(self._write(intake, read_all, forwarder))
        stopping = asyncio.create_task(stop.wait())
        vital = {writer, stopping} | ({forward_task} if forward_task else set())
        await asyncio.wait(vital, return_when=asyncio.FIRST_COMPLETED)
        failed = next((t for t in vital - {stopping} if t.done() and t.exception()), None)
        stop.set()  # on a failure too: readers stop reading what could not be stored
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._stop_shards(readers, failed is writer)
        read_all.set()
        intake.ready.set()  # the writer commits what is left and ends
        stopping.cancel()
        if failed is not writer:  # commit what was read before the stop
            await writer
            self.store.mark_ports_down(time.time())
        written.set()
        if forward_task:
            await asyncio.gather(forward_task, return_exceptions=True)
            await forwarder.close()
        if server:
            server.close()
            await server.wait_closed()
        self.store.close()
        if failed is not None:
            exc = failed.exception()
            raise ToolError(f"gateway stopped: cannot write to {self.config.db}: {exc}",
                            "check free disk space and the database file; everything acknowledged "
                            "before this is stored") from exc
        log.info("gateway stopped: %d result(s) stored", self.committed)

    def _shards(self, intake: ports.Intake,
                stop: asyncio.Event) -> list[tuple[shards.Shard, asyncio.Task]]:
        """Start the reader processes (tinyml/gateway/shards.py); one relay task each."""
        def known() -> set[str]:
            return set(self.budget.known) | set(self.processor.devices)

        tasks = []
        for i, share in enumerate(shards.assign(self.config.ports, self.config.ingest.shards)):
            shard = shards.Shard(i, share, self.config)
            shard.start(known())
            self.writers.update({p: shard.writer(p) for p in share})
            tasks.append((shard, asyncio.create_task(shards.supervise(shard, intake.put, stop, known))))
        return tasks

    async def _stop_shards(self, readers: list[tuple[shards.Shard, asyncio.Task]], failed: bool) -> None:
        """Ask every shard to stop and wait until each has handed over what it read (the writer keeps
        committing meanwhile); a writer that failed cannot store it, so then the shards are killed."""
        for shard, _ in readers:
            shard.send(("stop",))
        tasks = [t for _, t in readers]
        if tasks and not failed:
            await asyncio.wait(tasks, timeout=shards.STOP_S)
        for shard, task in readers:
            if not task.done():
                task.cancel()
                shard.close(kill=True)
        await asyncio.gather(*tasks, return_exceptions=True)

    def _ask_for_evidence(self, requests: list[tuple[str, str, int]]) -> None:
        """CAPTURE mode 2 to each device an alert fired for: it answers with its recent raw windows."""
        for device, port, windows in requests:
            conn = self.writers.get(port)
            if conn is None:
                log.warning("evidence for %s not requested: port %s is not connected", device, port)
                continue
            try:
                conn.write(protocol.encode(protocol.Capture(protocol.CAPTURE_RECENT, windows)))
            except OSError as exc:
                log.warning("evidence request to %s on %s failed: %s", device, port, exc)
                continue
            log.info("asked %s for its last %d raw window(s) as evidence", device, windows)

    async def _clock(self, intake: ports.Intake, stop: asyncio.Event) -> None:
        last_retention = 0.0
        while not stop.is_set():
            now = time.time()
            await intake.put([Tick(now)])
            if now - last_retention >= RETENTION_EVERY_S:
                await intake.put([Retention(now)])
                last_retention = now
            await asyncio.sleep(TICK_S)

    async def _write(self, intake: ports.Intake, read_all: asyncio.Event, forwarder: Forwarder | None) -> None:
        ingest = self.config.ingest
        pacer = CommitPacer(max_s=ingest.commit_interval_ms / 1000, busy_rate=ingest.busy_rate)
        loop = asyncio.get_running_loop()
        last_start = 0.0
        while not (read_all.is_set() and not intake.records):
            if not intake.records:  # wait for records, or for the stop (``run`` sets ``ready`` then too)
                intake.ready.clear()
                await intake.ready.wait()
                continue
            # Group commit: take what was read and commit it. The ports keep being read while a
            # commit runs, so the batch interval is at least the commit's own time: short at low
            # load (latency), longer under load; a busy gateway also paces its commits (CommitPacer).
            wait = last_start + pacer.interval() - loop.time()
            if wait > 0 and not read_all.is_set():
                await asyncio.sleep(wait)  # the ports keep being read meanwhile
            batch = intake.take(BATCH_MAX)
            last_start = loop.time()
            outcome = await asyncio.to_thread(self.processor.process, batch, time.time())
            pacer.committed(outcome.stored, loop.time())
            self.committed += outcome.stored - outcome.retained_deleted
            if outcome.stored or outcome.duplicates:
                log.debug("committed %d result(s), %d duplicate(s); %d stored", outcome.stored,
                          outcome.duplicates, self.committed)
            if outcome.expired:
                log.info("dropped the in-memory state of %d idle device(s)", outcome.expired)
            for device, t in outcome.transitions:
                level = logging.WARNING if t.firing else logging.INFO
                log.log(level, "alert %s %s on %s: %s", t.rule, "FIRING" if t.firing else "cleared", device,
                        t.message)
            self._ask_for_evidence(outcome.evidence_requests)
            if outcome.evidence_stored:
                log.info("stored %d evidence window(s)", outcome.evidence_stored)
            if forwarder and outcome.enqueued:
                forwarder.wake()
