"""Drain the store's outbox to an MQTT broker, QoS 1, in order, deleting a row only on PUBACK.

The forwarder runs in the gateway's event loop on its own small MQTT client
(tinyml/gateway/mqtt_client.py: PUBLISH packets written in bulk, PUBACKs read in bulk), which
costs a fraction of paho-mqtt's CPU per message. It feeds the connection a bounded window of
outbox rows (oldest first, so per-device order is kept), turns PUBACKs into deletes and
reconnects with back-off itself. When a connection drops, every row in flight is sent again
on the next one, from the oldest on and in order, with DUP set. After a restart everything
still in the outbox is sent again under the same message ids, so consumers deduplicate by
``id``: delivery is at-least-once, and exactly-once per id for a deduplicating subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from pathlib import Path

from tinyml.gateway import mqtt_client
from tinyml.gateway.config import MqttConfig
from tinyml.gateway.mqtt_client import Connection, publish_packet, publish_parts, topic_bytes
from tinyml.gateway.store import Store

log = logging.getLogger("tinyml.gateway")
# Outbox rows sent and not yet acknowledged. A busy event loop turns around about one refill
# per few ingest reads, so the window, not the broker, bounds the forwarding rate.
WINDOW = 2000
UNREACHABLE_WARN_S = 3.0
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 8.0
DELETE_EVERY_S = 0.1  # acknowledged rows are deleted in batches, not one transaction per PUBACK
ONLINE, OFFLINE = json.dumps({"state": "online"}).encode(), json.dumps({"state": "offline"}).encode()
STATUS_ROW = 0  # the in-flight entry of the gateway's own status message (outbox ids start at 1)


class Forwarder:
    def __init__(self, cfg: MqttConfig, db: Path, site: str, window: int = WINDOW):
        self.cfg = cfg
        self.v5 = cfg.protocol == "5"
        self.store = Store(db, check=False)  # reads the outbox; the gateway checked the file at start
        self.deleter = Store(db, check=False)  # deletes run in the background on their own connection
        # Deleting an acknowledged row need not survive a power cut: at worst it is sent again
        # under the same id. Skipping the fsync keeps the writer's commits fast.
        self.deleter.conn.execute("PRAGMA synchronous = NORMAL")
        self.status_topic = f"{cfg.topic_prefix}/{site}/_gateway/status"
        self.max_window = window
        self.window = window  # lowered to what the broker accepts (MQTT 5 Receive Maximum)
        self.keepalive = float(cfg.keepalive)  # or the broker's Server Keep Alive
        self.inflight: dict[int, int] = {}  # packet id -> outbox row id, in the order sent
        self.mid = 0  # the last packet id used
        self.last_sent = 0
        self.resend_until = 0  # rows up to this id went out on an earlier connection: DUP when sent again
        self.acked: list[int] = []
        self.deleting_ids: list[int] = []
        self.last_delete = 0.0
        self.more = False  # the outbox may hold rows not sent yet
        self.closing = False
        self.last_refusal: str | None = None
        self.published = 0
        self.rejected = 0
        self.conn: Connection | None = None
        self.connected = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.keeper: asyncio.Task | None = None
        self.deleting: asyncio.Task | None = None

    def _refused(self, reason: str) -> None:
        """Log a refusal once per reason, not on every retry."""
        if reason != self.last_refusal:
            self.last_refusal = reason
            log.error("MQTT broker %s refused the connection: %s; retrying (results stay in the outbox)",
                      self.cfg.redacted(), reason)

    def _set_window(self, receive_maximum: int | None) -> None:
        """Keep within the broker's MQTT 5 Receive Maximum: a broker that enforces it drops a
        client with more unacknowledged QoS 1 messages. One slot stays free for the status message."""
        window = self.max_window if receive_maximum is None else max(1, min(self.max_window, receive_maximum - 1))
        if window < self.max_window and window != self.window:
            log.info("MQTT broker accepts %d unacknowledged messages (Receive Maximum): forwarding window %d; "
                     "raise it on the broker for throughput (Mosquitto: max_inflight_messages 0)",
                     receive_maximum, window)
        self.window = window

    def _connected(self, conn: Connection, props: dict[int, int]) -> None:
        """A new connection: announce the gateway online, then the run loop sends the outbox."""
        self.conn = conn
        self.last_refusal = None
        self.keepalive = float(props.get(mqtt_client.SERVER_KEEP_ALIVE, self.cfg.keepalive))
        self._set_window(props.get(mqtt_client.RECEIVE_MAXIMUM))
        conn.write(publish_packet(topic_bytes(self.status_topic), ONLINE, self._take_mid(STATUS_ROW), v5=self.v5,
                                  retain=True))
        log.info("MQTT connected to %s", self.cfg.redacted())
        self.connected.set()
        self.wakeup.set()

    def _lost(self, conn: Connection) -> None:
        """The rows in flight go out again on the next connection, oldest first."""
        self.conn = None
        unacked = [row for row in self.inflight.values() if row != STATUS_ROW]
        self.inflight.clear()
        if unacked:
            self.resend_until = max(self.resend_until, self.last_sent)
            self.last_sent = min(unacked) - 1
            self.more = True
        if not self.closing:
            log.warning("MQTT connection to %s lost; storing and retrying%s", self.cfg.redacted(),
                        f" ({conn.reason})" if conn.reason else "")
        self.connected.clear()
        self.wakeup.set()

    def _take_mid(self, row: int) -> int:
        """The next free packet id (1-65535), now in flight for ``row``."""
        mid, inflight = self.mid, self.inflight
        mid = mid % 65535 + 1
        while mid in inflight:
            mid = mid % 65535 + 1
        inflight[mid] = row
        self.mid = mid
        return mid

    def _acks(self, mids: list[int], refused: list[tuple[int, str]]) -> None:
        """PUBACKs of one read from the broker: the rows become deletes."""
        inflight, acked = self.inflight, self.acked
        for mid in mids:
            row = inflight.pop(mid, None)
            if row:  # None: not ours (never sent on this connection); STATUS_ROW: the status message
                acked.append(row)
                self.published += 1
        for mid, reason in refused:  # a negative PUBACK is final: retrying would be refused again
            row = inflight.pop(mid, None)
            if row:
                self.rejected += 1
                log.error("MQTT broker rejected outbox message %d: %s", row, reason)
                acked.append(row)
        if self.more and len(inflight) <= self.window // 2:  # no wake-up per PUBACK otherwise
            self.wakeup.set()

    def wake(self) -> None:
        """New rows were committed to the outbox."""
        self.more = True
        self.wakeup.set()

    def start(self) -> None:
        self.keeper = asyncio.create_task(self._keep_connected())
        log.info("MQTT forwarding to %s (QoS 1)", self.cfg.redacted())

    async def _keep_connected(self) -> None:
        """(Re)connect with back-off while there is no connection; keep-alive pings while there is."""
        delay = RECONNECT_MIN_S
        while not self.closing:
            conn = self.conn
            if conn is None:
                try:
                    conn, props = await mqtt_client.connect(self.cfg, self.status_topic, OFFLINE, self._acks)
                except mqtt_client.Refused as exc:
                    self._refused(str(exc))
                except ssl.SSLError as exc:  # a certificate problem will not go away by itself: say so
                    self._refused(f"TLS: {' '.join(str(exc).split())}")
                except (OSError, asyncio.TimeoutError) as exc:  # down or unreachable: the run loop warns once
                    log.debug("MQTT connect to %s failed: %s", self.cfg.redacted(), exc)
                else:
                    self._connected(conn, props)
                    delay = RECONNECT_MIN_S
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            conn.keep_alive(self.keepalive, waiting=len(self.inflight) > 0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(conn.lost.wait(), timeout=1.0)
            if conn.lost.is_set():
                self._lost(conn)

    def drained(self) -> bool:
        idle = self.deleting is None or self.deleting.done()
        return not self.inflight and not self.acked and idle and self.store.outbox_depth() == 0

    async def run(self, stop: asyncio.Event, grace_s: float = 2.0) -> None:
        """Forward until ``stop``; then keep going for up to ``grace_s`` while the broker is
        reachable and the outbox is not empty (what is left is sent after the next start)."""
        down_since: float | None = self.loop.time()
        deadline: float | None = None
        while True:
            now = self.loop.time()
            if stop.is_set():
                deadline = deadline or now + grace_s
                if not self.connected.is_set() or now >= deadline or self.drained():
                    break
            self.wakeup.clear()
            self._start_delete(force=stop.is_set())
            if self.conn is not None and self.connected.is_set():
                down_since = None
                if len(self.inflight) <= self.window // 2:  # refill in chunks, not one row per ack
                    free = self.window - len(self.inflight)
                    # a WAL read never waits for the writer: no worker thread, no wait for the GIL
                    rows = self.store.outbox_after(self.last_sent, free)
                    self.more = len(rows) == free
                    if rows:
                        self.send(rows)
            elif down_since is None:
                down_since = now
            elif now - down_since > UNREACHABLE_WARN_S:
                down_since = float("inf")  # warn once per outage
                log.warning("MQTT broker %s unreachable; results stay in the outbox until it is back",
                            self.cfg.redacted())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=0.05 if self.inflight else 0.5)
        if self.deleting is not None:
            await self.deleting
        self._start_delete(force=True)
        if self.deleting is not None:
            await self.deleting

    def send(self, rows: list[tuple[int, str, str]]) -> None:
        """Publish outbox rows (id, topic, payload) in one write. Rows an earlier connection
        sent go out with DUP, except those acknowledged meanwhile (their delete is pending)."""
        conn = self.conn
        if conn is None:
            return
        resend_until, v5 = self.resend_until, self.v5
        done = set(self.acked) | set(self.deleting_ids) if rows[0][0] <= resend_until else ()
        packets: list[bytes] = []
        take_mid = self._take_mid
        for row, topic, payload in rows:
            if row not in done:
                packets += publish_parts(topic_bytes(topic), payload.encode(), take_mid(row), v5=v5,
                                         dup=row <= resend_until)
        self.last_sent = rows[-1][0]
        if packets:
            conn.write(b"".join(packets))

    def _start_delete(self, force: bool = False) -> None:
        """Delete acknowledged rows in the background: the delete waits for the writer's
        transaction to end, and publishing must not wait with it."""
        due = force or len(self.acked) >= self.window // 2 or self.loop.time() - self.last_delete >= DELETE_EVERY_S
        if self.acked and due and (self.deleting is None or self.deleting.done()):
            self.last_delete = self.loop.time()
            if self.deleting is not None:
                self.deleting.result()  # a failed delete is a store failure: surface it
            self.deleting_ids, self.acked = self.acked, []
            self.deleting = asyncio.create_task(asyncio.to_thread(self.deleter.outbox_delete, self.deleting_ids))

    async def close(self) -> None:
        """Stop reconnecting; say "offline" (retained) and disconnect cleanly when connected."""
        log.info("MQTT: %d message(s) acknowledged, %d rejected, %d left in the outbox", self.published,
                 self.rejected, self.store.outbox_depth())
        self.closing = True
        if self.keeper is not None:
            self.keeper.cancel()
            await asyncio.gather(self.keeper, return_exceptions=True)
        if self.conn is not None:
            await self.conn.close(publish_packet(topic_bytes(self.status_topic), OFFLINE, 0, v5=self.v5,
                                                 retain=True, qos=0))
        self.store.close()
        self.deleter.close()
