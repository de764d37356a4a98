"""The forwarder and its own MQTT client against a real Mosquitto: PUBACKs (2 and 3 bytes) become
deletes, a negative PUBACK is logged, counted and not retried, the broker's Receive Maximum is
kept, and a broker restart with messages in flight loses nothing and keeps each device's order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.mosquitto import Broker, Gate, Subscriber, free_tcp_port
from tinyml.gateway.config import GatewayConfig, parse_mqtt_url
from tinyml.gateway.forward import Forwarder
from tinyml.gateway.processor import Processor
from tinyml.gateway.store import Store

pytestmark = [pytest.mark.mosquitto]

# The gateway may publish everything but the "denied" device's topics (mosquitto then answers
# with PUBACK 0x87 "not authorized"); everyone may read.
ACL = "topic deny tinyml/default/denied/#\ntopic write tinyml/#\ntopic read #\n"


def enqueue(db: Path, rows: list[tuple[str, str]]) -> None:
    store = Store(db, check=False)
    with store.transaction():
        store.enqueue([(dev, f"tinyml/default/{dev}/result", msg_id, f'{{"id":"{msg_id}"}}', 0.0)
                       for dev, msg_id in rows])
    store.close()


@contextlib.asynccontextmanager
async def running(forwarder: Forwarder) -> AsyncIterator[None]:
    """The forwarder connected and forwarding; stopped and closed on the way out."""
    forwarder.start()
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await forwarder.close()


async def until(predicate, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_acks_become_deletes_and_a_rejection_is_final(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      protocol: str) -> None:
    broker = Broker(tmp_path, acl=ACL).start()
    sub = Subscriber(broker.port, topic="tinyml/default/watched/#")
    db = tmp_path / "gateway.db"
    Processor(Store(db), GatewayConfig(ports=(), db=db, mqtt=parse_mqtt_url(broker.url)))
    # "watched" has a subscriber (2-byte PUBACK), "unwatched" none (3 bytes: 0x10, no subscribers)
    accepted = [("watched" if i % 2 else "unwatched", f"m{i}") for i in range(600)]
    enqueue(db, accepted)
    cfg = parse_mqtt_url(broker.url, {"protocol": protocol})

    async def forward() -> Forwarder:
        forwarder = Forwarder(cfg, db, "default", window=200)
        async with running(forwarder):
            await until(forwarder.drained)
            assert (forwarder.published, forwarder.rejected) == (len(accepted), 0)
            if protocol == "5":  # MQTT 3.1.1 has no negative PUBACK
                enqueue(db, [("denied", "d0")])  # alone in flight: mosquitto 2.0 drops the link after it
                forwarder.wake()
                await until(lambda: forwarder.rejected == 1 and forwarder.drained())
        return forwarder

    try:
        with caplog.at_level(logging.ERROR, logger="tinyml.gateway"):
            forwarder = asyncio.run(forward())
        assert sub.wait_for(lambda: len(sub.ids()) == 300)
    finally:
        sub.close()
        broker.stop()
    assert sorted(sub.ids()) == sorted(m for d, m in accepted if d == "watched")
    assert forwarder.published == len(accepted)
    if protocol == "5":
        assert "rejected outbox message" in caplog.text and "Not authorized" in caplog.text
    assert Store(db, check=False).outbox_depth() == 0


def test_forwarding_keeps_within_the_brokers_receive_maximum(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A broker announcing Receive Maximum 5 never sees more than 4 result messages in flight
    (one slot stays free for the status message), and everything is still delivered."""
    broker = Broker(tmp_path, receive_maximum=5).start()
    sub = Subscriber(broker.port)
    db = tmp_path / "gateway.db"
    Processor(Store(db), GatewayConfig(ports=(), db=db, mqtt=parse_mqtt_url(broker.url)))
    rows = [("dev", f"m{i}") for i in range(300)]
    enqueue(db, rows)
    in_flight_after_send: list[int] = []

    async def forward() -> Forwarder:
        forwarder = Forwarder(parse_mqtt_url(broker.url), db, "default", window=200)
        send = forwarder.send

        def counted(rows: list[tuple[int, str, str]]) -> None:
            send(rows)
            in_flight_after_send.append(len(forwarder.inflight))  # the status message included

        forwarder.send = counted  # type: ignore[method-assign]
        async with running(forwarder):
            await until(forwarder.drained)
        return forwarder

    try:
        with caplog.at_level(logging.INFO, logger="tinyml.gateway"):
            forwarder = asyncio.run(forward())
        assert sub.wait_for(lambda: len(set(sub.ids())) == len(rows))
    finally:
        sub.close()
        broker.stop()
    assert forwarder.window == 4 and forwarder.published == len(rows)
    assert len(in_flight_after_send) >= len(rows) // 4 and max(in_flight_after_send) <= 4
    assert "Receive Maximum" in caplog.text


def test_a_broker_restart_with_messages_in_flight_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    """The broker stops while hundreds of messages are in flight and comes back: every row is
    delivered to a persistent subscriber, each device's first deliveries in order, and the
    outbox ends empty."""
    broker = Broker(tmp_path, port=free_tcp_port(), durable=True).start()
    sub = Subscriber(broker.port, session="forward-restart")
    db = tmp_path / "gateway.db"
    Processor(Store(db), GatewayConfig(ports=(), db=db, mqtt=parse_mqtt_url(broker.url)))
    rows = [(f"dev{i % 3}", f"dev{i % 3}/{i:05d}") for i in range(6000)]
    enqueue(db, rows)

    async def forward() -> Forwarder:
        forwarder = Forwarder(parse_mqtt_url(broker.url), db, "default", window=500)
        async with running(forwarder):
            await until(lambda: forwarder.published >= 500)
            broker.stop()  # mid-stream: up to a window of messages unacknowledged
            await until(lambda: not forwarder.connected.is_set())
            broker.start()
            await until(forwarder.drained, timeout=60)
        return forwarder

    try:
        forwarder = asyncio.run(forward())
        assert sub.wait_for(lambda: set(sub.ids()) >= {m for _, m in rows}, 60)
    finally:
        sub.close()
        broker.stop()
    assert forwarder.published >= len(rows) and Store(db, check=False).outbox_depth() == 0
    first = list(dict.fromkeys(sub.ids()))
    for device in ("dev0", "dev1", "dev2"):
        mine = [m for m in first if m.startswith(device + "/")]
        assert mine == sorted(mine) and len(mine) == 2000


def test_a_broker_that_goes_silent_is_dropped_after_the_keep_alive_and_nothing_is_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The link to the broker goes silent (writes still succeed, nothing comes back) while
    messages are in flight: after the keep-alive the forwarder drops it, reconnects and sends
    them again."""
    broker = Broker(tmp_path).start()
    sub = Subscriber(broker.port)
    gate = Gate(broker.port)
    gate.open = True
    db = tmp_path / "gateway.db"
    Processor(Store(db), GatewayConfig(ports=(), db=db, mqtt=parse_mqtt_url(broker.url)))
    first = [("dev", f"a{i}") for i in range(50)]
    later = [("dev", f"b{i}") for i in range(50)]
    enqueue(db, first)

    async def forward() -> Forwarder:
        forwarder = Forwarder(parse_mqtt_url(f"mqtt://127.0.0.1:{gate.port}", {"keepalive": 2}), db, "default")
        async with running(forwarder):
            await until(forwarder.drained)
            gate.freeze()
            enqueue(db, later)
            forwarder.wake()
            await until(forwarder.drained, timeout=30)
        return forwarder

    try:
        with caplog.at_level(logging.WARNING, logger="tinyml.gateway"):
            forwarder = asyncio.run(forward())
        assert sub.wait_for(lambda: set(sub.ids()) >= {m for _, m in first + later})
    finally:
        sub.close()
        gate.close()
        broker.stop()
    assert "keep-alive" in caplog.text and forwarder.published >= len(first) + len(later)
