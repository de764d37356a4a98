"""Drain the store's outbox to an MQTT broker, QoS 1, in order, deleting a row only on PUBACK.

paho-mqtt runs inside the gateway's event loop (its socket is watched with add_reader and
add_writer): with paho's own network thread, a busy ingest loop starved it of the GIL and
forwarding fell to a few hundred messages per second. Only the blocking TCP/TLS connect runs
in a worker thread; this module reconnects with back-off itself. Messages in flight when the
connection drops are re-sent by paho after reconnecting, in order. The forwarder feeds paho a
bounded window of outbox rows (oldest first, so per-device order is kept) and turns PUBACKs
into deletes. After a restart everything still in the outbox is
sent again under the same message ids, so consumers deduplicate by ``id``: delivery is
at-least-once, and exactly-once per id for a deduplicating subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tinyml.gateway.config import MqttConfig
from tinyml.gateway.mqtt_client import LeanAckClient, apply_credentials
from tinyml.gateway.store import Store

log = logging.getLogger("tinyml.gateway")
# Outbox rows handed to paho and not yet acknowledged. A busy event loop turns around about
# one refill per few ingest reads, so the window, not the broker, bounds the forwarding rate.
WINDOW = 2000
UNREACHABLE_WARN_S = 3.0
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 8.0
DELETE_EVERY_S = 0.1  # acknowledged rows are deleted in batches, not one transaction per PUBACK


class Forwarder:
    def __init__(self, cfg: MqttConfig, db: Path, site: str, window: int = WINDOW):
        self.cfg = cfg
        self.store = Store(db, check=False)  # reads the outbox; the gateway checked the file at start
        self.deleter = Store(db, check=False)  # deletes run in the background on their own connection
        # Deleting an acknowledged row need not survive a power cut: at worst it is sent again
        # under the same id. Skipping the fsync keeps the writer's commits fast.
        self.deleter.conn.execute("PRAGMA synchronous = NORMAL")
        self.status_topic = f"{cfg.topic_prefix}/{site}/_gateway/status"
        self.max_window = window
        self.window = window  # lowered to what the broker accepts (MQTT 5 Receive Maximum)
        self.inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self.last_sent = 0
        self.acked: list[int] = []
        self.last_delete = 0.0
        self.more = False  # the outbox may hold rows not handed to paho yet
        self.closing = False
        self.last_refusal: str | None = None
        self.published = 0
        self.rejected = 0
        self.connected = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.keeper: asyncio.Task | None = None
        self.deleting: asyncio.Task | None = None
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        cfg = self.cfg
        client = LeanAckClient(CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                               protocol=mqtt.MQTTv5 if cfg.protocol == "5" else mqtt.MQTTv311)
        apply_credentials(client, cfg)
        # No paho limit: the forwarder bounds what is in flight itself, and with a limit paho
        # scans every queued message on each PUBACK (quadratic in the window).
        client.max_inflight_messages_set(0)
        client.will_set(self.status_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = lambda c, u, sock: self._in_loop(self.loop.add_reader, sock, self._readable, sock)
        client.on_socket_close = lambda c, u, sock: self._in_loop(self._forget, sock)
        client.on_socket_register_write = lambda c, u, sock: self._in_loop(self.loop.add_writer, sock,
                                                                           client.loop_write)
        client.on_socket_unregister_write = lambda c, u, sock: self._in_loop(self.loop.remove_writer, sock)
        return client

    def _in_loop(self, fn: Any, *args: Any) -> None:
        """Run on the event loop's thread: paho calls back from the connect thread too."""
        if threading.get_ident() == self.loop_thread:
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def _forget(self, sock: Any) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)

    def _readable(self, sock: Any) -> None:
        self.client.loop_read(max_packets=1000)
        # TLS may hold decrypted bytes the selector cannot see
        while isinstance(sock, ssl.SSLSocket) and self.client.socket() is sock and sock.pending():
            self.client.loop_read(max_packets=1000)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._in_loop(self._refused, str(reason))
            return
        client.publish(self.status_topic, json.dumps({"state": "online"}), qos=1, retain=True)
        self._in_loop(self._set_window, getattr(props, "ReceiveMaximum", None))
        self._in_loop(self._set_connected, True)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._in_loop(self._set_connected, False)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._in_loop(self._ack, mid, reason.is_failure, str(reason) if reason.is_failure else "")

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

    def _set_connected(self, up: bool) -> None:
        if up:
            self.last_refusal = None
        if up and not self.connected.is_set():
            log.info("MQTT connected to %s", self.cfg.redacted())
            self.connected.set()
        elif not up and self.connected.is_set() and not self.closing:
            log.warning("MQTT connection to %s lost; storing and retrying", self.cfg.redacted())
            self.connected.clear()
        self.wakeup.set()

    def _ack(self, mid: int, failed: bool, reason: str) -> None:
        row = self.inflight.pop(mid, None)
        if row is None:
            return  # the gateway status message, or a mid from before a restart of paho's session
        if failed:  # a negative PUBACK is final: retrying would be refused again
            self.rejected += 1
            log.error("MQTT broker rejected outbox message %d: %s", row, reason)
        else:
            self.published += 1
        self.acked.append(row)
        if self.more and len(self.inflight) <= self.window // 2:  # no wake-up per PUBACK otherwise
            self.wakeup.set()

    def wake(self) -> None:
        """New rows were committed to the outbox."""
        self.more = True
        self.wakeup.set()

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.keeper = asyncio.create_task(self._keep_connected())
        log.info("MQTT forwarding to %s (QoS 1)", self.cfg.redacted())

    async def _keep_connected(self) -> None:
        """(Re)connect with back-off while there is no socket; keep-alive pings while there is."""
        delay = RECONNECT_MIN_S
        while not self.closing:
            if self.client.socket() is None:
                try:
                    await asyncio.to_thread(self.client.reconnect)  # blocking TCP connect and TLS handshake
                    delay = RECONNECT_MIN_S
                except ssl.SSLError as exc:  # a certificate problem will not go away by itself: say so
                    self._refused(f"TLS: {' '.join(str(exc).split())}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX_S)
                    continue
                except (OSError, ValueError) as exc:  # down or unreachable: the run loop warns once
                    log.debug("MQTT connect to %s failed: %s", self.cfg.redacted(), exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX_S)
                    continue
            else:
                self.client.loop_misc()
            await asyncio.sleep(1.0)

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
            if self.connected.is_set():
                down_since = None
                if len(self.inflight) <= self.window // 2:  # refill in chunks, not one row per ack
                    free = self.window - len(self.inflight)
                    # a WAL read never waits for the writer: no worker thread, no wait for the GIL
                    rows = self.store.outbox_after(self.last_sent, free)
                    self.more = len(rows) == free
                    for row_id, topic, payload in rows:
                        self.inflight[self.client.publish(topic, payload, qos=1).mid] = row_id
                    if rows:
                        self.last_sent = rows[-1][0]
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

    def _start_delete(self, force: bool = False) -> None:
        """Delete acknowledged rows in the background: the delete waits for the writer's
        transaction to end, and publishing must not wait with it."""
        due = force or len(self.acked) >= self.window // 2 or self.loop.time() - self.last_delete >= DELETE_EVERY_S
        if self.acked and due and (self.deleting is None or self.deleting.done()):
            self.last_delete = self.loop.time()
            if self.deleting is not None:
                self.deleting.result()  # a failed delete is a store failure: surface it
            ids, self.acked = self.acked, []
            self.deleting = asyncio.create_task(asyncio.to_thread(self.deleter.outbox_delete, ids))

    def close(self) -> None:
        log.info("MQTT: %d message(s) acknowledged, %d rejected, %d left in the outbox", self.published,
                 self.rejected, self.store.outbox_depth())
        self.closing = True
        if self.keeper is not None:
            self.keeper.cancel()
        if self.connected.is_set():
            self.client.publish(self.status_topic, json.dumps({"state": "offline"}), qos=0, retain=True)
        self.client.disconnect()
        self.client.loop_write()  # flush the status and DISCONNECT; paho then closes the socket
        self.store.close()
        self.deleter.close()
