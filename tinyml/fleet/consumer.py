"""`tinyml fleet run`: MQTT 5 shared subscription -> batches -> one transaction -> PUBACK.

paho-mqtt's network thread receives with ``manual_ack``: it never acknowledges by itself.
Messages are checked (``messages.parse``) and queued; one writer thread commits them in
batches (up to ``BATCH_MAX`` or ``BATCH_WAIT_S``) and only then acknowledges each message, in
the order received. Until the PUBACK the broker owns the message: a consumer killed before
it is redelivered (to the same persistent session when it comes back), and a store that is
down makes the writer retry without acknowledging, so the broker stops sending once the
consumer's Receive Maximum of unacknowledged messages is reached and keeps the rest. Storage
is idempotent on (site, id), so redeliveries and a gateway's re-publishes are stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tinyml.errors import InputError, ToolError
from tinyml.fleet.messages import BATCH_KIND, KINDS, Message, Rejected, parse_all
from tinyml.fleet.status import format_prometheus, snapshot
from tinyml.fleet.store import FleetStore, StoreUnavailable, redact
from tinyml.gateway import api
from tinyml.gateway.config import MqttConfig
from tinyml.gateway.mqtt_client import apply_credentials

log = logging.getLogger("tinyml.fleet")
BATCH_MAX = 1000  # messages per transaction
BATCH_WAIT_S = 0.02  # how long a batch waits to fill after its first message
RECEIVE_MAXIMUM = 4 * BATCH_MAX  # unacknowledged messages the broker may send us (MQTT 5)
SESSION_EXPIRY_S = 7 * 86400  # the broker keeps our session (and queues for it) this long while we are away
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0
CONNECT_TIMEOUT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class FleetConfig:
    mqtt: MqttConfig
    db: str = "fleet.db"
    group: str = "tinyml-fleet"
    client_id: str = ""
    http: tuple[str, int] | None = None
    session_expiry_s: int = SESSION_EXPIRY_S

    @property
    def consumer(self) -> str:
        return self.client_id or f"fleet-{self.group}-{socket.gethostname()}"

    def filters(self) -> list[str]:
        return [f"$share/{self.group}/{self.mqtt.topic_prefix}/+/+/{kind}" for kind in (*KINDS, BATCH_KIND)]


@dataclass
class Counters:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    acknowledged: int = 0
    batches: int = 0
    store_failures: int = 0


class Consumer:
    def __init__(self, config: FleetConfig):
        if any(c in config.group for c in "/+#") or not config.group:
            raise InputError(f"bad group name {config.group!r}", "a shared-subscription group cannot contain / + #")
        self.config = config
        try:  # wrong credentials fail here, at start, as an InputError
            self.store = FleetStore(config.db, consumer=config.consumer)
        except StoreUnavailable as exc:
            raise ToolError(str(exc), "start the database first; once running, outages are waited out") from None
        self.inbox: queue.Queue[tuple[int, int, int, list[Message]]] = queue.Queue()
        self.counters = Counters()
        self.generation = 0  # bumped on every (re)connect: packet ids of an older connection are not acked
        self.connected = threading.Event()
        self.refused: str | None = None
        self.ever_connected = False
        self.logged: set[tuple[str, str]] = set()
        self.store_down_since: float | None = None
        self.commit_ms: list[float] = []
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        cfg = self.config.mqtt
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.config.consumer, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        apply_credentials(client, cfg)
        client.reconnect_delay_set(RETRY_MIN_S, RETRY_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # --- paho's thread --------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            if str(reason) != self.refused:
                self.refused = str(reason)
                if self.ever_connected:  # at start, connect() turns a refusal into the one error line
                        log.error("MQTT broker %s refused the connection: %s; retrying", self.config.mqtt.redacted(),
                              reason)
            return
        self.refused = None
        self.ever_connected = True
        self.generation += 1
        # Subscribing again is harmless when the session kept the subscriptions
        client.subscribe([(f, 1) for f in self.config.filters()])
        log.info("MQTT connected to %s as %s (session %s), group %s", self.config.mqtt.redacted(),
                 self.config.consumer, "resumed" if flags.session_present else "new", self.config.group)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.connected.is_set():
            log.warning("MQTT connection to %s lost (%s); reconnecting, unacknowledged messages will be "
                        "redelivered", self.config.mqtt.redacted(), reason)
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put((self.generation, msg.mid, msg.qos, parse_all(msg.topic, msg.payload,
                                                                     prefix=self.config.mqtt.topic_prefix)))

    # --- the writer thread ------------------------------------------------------------------
    def _take(self, stop: threading.Event) -> list[tuple[int, int, int, list[Message]]]:
        try:
            batch = [self.inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + BATCH_WAIT_S
        while len(batch) < BATCH_MAX:
            try:
                batch.append(self.inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def write_loop(self, stop: threading.Event) -> None:
        """Commit, then acknowledge; on a store outage retry the same batch without acknowledging."""
        while not stop.is_set():
            batch = self._take(stop)
            if not batch:
                continue
            messages = [m for _, _, _, ms in batch for m in ms]  # a gateway's batch message holds several
            if not self._commit(messages, stop):
                return  # stopping during an outage: nothing acknowledged, the broker redelivers
            for generation, mid, qos, _ in batch:
                if generation == self.generation:  # else the broker redelivers it on the new connection
                    self.client.ack(mid, qos)
                    self.counters.acknowledged += 1
            self._log_rejections(messages)

    def _commit(self, messages: list[Message], stop: threading.Event) -> bool:
        delay = RETRY_MIN_S
        while True:
            started = time.perf_counter()
            try:
                written = self.store.write(messages)
            except StoreUnavailable as exc:
                self.counters.store_failures += 1
                if self.store_down_since is None:
                    self.store_down_since = time.monotonic()
                    log.error("store %s unavailable: %s; not acknowledging (the broker keeps the messages), "
                              "retrying", redact(self.config.db), exc)
                if stop.wait(delay):
                    return False
                delay = min(delay * 2, RETRY_MAX_S)
                with contextlib.suppress(StoreUnavailable):
                    self.store.reconnect()
                continue
            except Exception as exc:  # the database refused a value, not an outage: find the message
                if all(isinstance(m, Rejected) for m in messages):
                    raise  # not even a rejection can be stored: the store itself is broken
                if len(messages) > 1:  # halve the batch until the refused message stands alone
                    half = len(messages) // 2
                    return self._commit(messages[:half], stop) and self._commit(messages[half:], stop)
                refused = messages[0]
                messages = [Rejected(f"site {refused.site}", "refused",
                                     f"{type(refused).__name__.lower()} {refused.id[:80]}: "
                                     f"{' '.join(str(exc).split())[:160]}")]
                self._log_rejections(messages)
                continue
            if self.store_down_since is not None:
                log.info("store %s back after %.1f s", redact(self.config.db), time.monotonic() - self.store_down_since)
                self.store_down_since = None
            self.commit_ms.append((time.perf_counter() - started) * 1000)
            c = self.counters
            c.batches += 1
            c.received += len(messages)
            c.stored += written.results
            c.duplicates += written.duplicates
            c.rejected += written.rejected
            log.debug("committed %d message(s): %d new result(s), %d duplicate(s), %d rejected; %d stored",
                      len(messages), written.results, written.duplicates, written.rejected, c.stored)
            return True

    def _log_rejections(self, messages: list[Message]) -> None:
        """Once per source and reason: a misbehaving gateway must not flood the log."""
        for m in messages:
            if isinstance(m, Rejected) and (m.source, m.reason) not in self.logged:
                self.logged.add((m.source, m.reason))
                log.warning("rejected %s message from %s: %s (counted in the store; further ones from this "
                            "source are counted, not logged)", m.reason, m.source, m.detail)

    # --- running ------------------------------------------------------------------------------
    def connect(self) -> None:
        """Connect and wait for the broker's answer: refused credentials are a start-up error;
        an unreachable broker is waited for (paho retries)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        cfg = self.config.mqtt
        self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive, clean_start=False, properties=props)
        self.client.loop_start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        warned = False
        while not self.connected.wait(0.1):
            if self.refused and ("password" in self.refused or "authori" in self.refused.lower()
                                 or "identifier" in self.refused):
                self.client.loop_stop()
                raise InputError(f"MQTT broker {cfg.redacted()} refused the connection: {self.refused}",
                                 "check the user in --mqtt and the password in $TINYML_MQTT_PASSWORD or "
                                 "--mqtt-password-file")
            if not warned and time.monotonic() > deadline:
                warned = True
                log.warning("MQTT broker %s not reachable yet; still trying", cfg.redacted())

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        server = None
        if self.config.http is not None:
            reader = FleetStore(self.config.db, consumer=self.config.consumer, readonly=True)
            started = time.time()
            lock = threading.Lock()

            def snap() -> dict:
                with lock:
                    try:  # plus what the gateway's dashboard page shows in its header
                        return {**snapshot(reader), "kind": "fleet",
                                "gateway": {"site": f"fleet, group {self.config.group}", "started_at": started},
                                "mqtt": {"broker": self.config.mqtt.redacted(), "connected": self.connected.is_set()}}
                    except Exception:
                        reader.reconnect()  # a PostgreSQL restart ends the reader's session too
                        raise

            server = await api.serve(*self.config.http, snap,
                                     metrics=lambda s: format_prometheus(s, vars(self.counters)))
        halt = threading.Event()
        await asyncio.to_thread(self.connect)
        log.info("fleet consumer %s: store %s, subscribed to %s", self.config.consumer, redact(self.config.db),
                 ", ".join(self.config.filters()))
        writer = asyncio.create_task(asyncio.to_thread(self.write_loop, halt))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({writer, stopping}, return_when=asyncio.FIRST_COMPLETED)
        halt.set()
        stopping.cancel()
        failure = None
        try:
            await writer
        except Exception as exc:  # noqa: BLE001 - reported below as one line
            failure = exc
        self.connected.clear()  # our own disconnect: no "connection lost" warning
        self.client.disconnect()
        self.client.loop_stop()
        if server:
            server.close()
            await server.wait_closed()
        self.store.close()
        c = self.counters
        median = sorted(self.commit_ms)[len(self.commit_ms) // 2] if self.commit_ms else 0.0
        log.info("fleet consumer stopped: %d received, %d stored, %d duplicate(s), %d rejected, %d acknowledged, "
                 "%d batches (median commit %.1f ms)", c.received, c.stored, c.duplicates, c.rejected,
                 c.acknowledged, c.batches, median)
        if failure is not None:
            raise ToolError(f"fleet consumer stopped: cannot write to {redact(self.config.db)}: "
                            f"{' '.join(str(failure).split())[:200]}",
                            "nothing unacknowledged is lost: the broker redelivers it") from failure
