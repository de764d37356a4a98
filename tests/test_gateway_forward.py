"""The forwarder against a real Mosquitto: the lean PUBACK path acknowledges what paho would,
and a negative PUBACK still goes through paho, is logged, counted and not retried."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.mosquitto import Broker, Subscriber
from tinyml.gateway.config import GatewayConfig, parse_mqtt_url
from tinyml.gateway.forward import Forwarder
from tinyml.gateway.mqtt_client import LeanAckClient
from tinyml.gateway.processor import Processor
from tinyml.gateway.store import Store

pytestmark = [pytest.mark.mosquitto]

# The gateway may publish everything but the "denied" device's topics (mosquitto then answers
# with PUBACK 0x87 "not authorized"); everyone may read.
ACL = "topic deny tinyml/default/denied/#\ntopic write tinyml/#\ntopic read #\n"


def test_installed_paho_has_the_hooks_of_the_lean_path() -> None:
    assert LeanAckClient.fast_acks  # else every PUBACK takes paho's slower path: a paho upgrade to look at


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
        forwarder.close()


async def until(predicate, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def test_acks_take_the_lean_path_and_a_rejection_is_final(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    slow_path: list[int] = []
    paho_handler = mqtt.Client._handle_pubackcomp

    def counted(self: mqtt.Client, cmd: str) -> mqtt.MQTTErrorCode:
        slow_path.append(len(self._in_packet["packet"]))
        return paho_handler(self, cmd)

    monkeypatch.setattr(mqtt.Client, "_handle_pubackcomp", counted)
    broker = Broker(tmp_path, acl=ACL).start()
    sub = Subscriber(broker.port, topic="tinyml/default/watched/#")
    db = tmp_path / "gateway.db"
    Processor(Store(db), GatewayConfig(ports=(), db=db, mqtt=parse_mqtt_url(broker.url)))
    # "watched" has a subscriber (2-byte PUBACK), "unwatched" none (3 bytes: 0x10, no subscribers)
    accepted = [("watched" if i % 2 else "unwatched", f"m{i}") for i in range(600)]
    enqueue(db, accepted)

    async def forward() -> Forwarder:
        forwarder = Forwarder(parse_mqtt_url(broker.url), db, "default", window=200)
        async with running(forwarder):
            await until(forwarder.drained)
            assert (forwarder.published, forwarder.rejected) == (len(accepted), 0)
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
    assert "rejected outbox message" in caplog.text and "Not authorized" in caplog.text
    assert slow_path == [3]  # only the negative PUBACK (reason 0x87) went through paho's decoder
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
    in_flight_at_publish: list[int] = []

    async def forward() -> Forwarder:
        forwarder = Forwarder(parse_mqtt_url(broker.url), db, "default", window=200)
        publish = forwarder.client.publish

        def counted(topic: str, payload: str, qos: int = 0, retain: bool = False) -> mqtt.MQTTMessageInfo:
            if not retain:  # result messages, not the gateway's retained status
                in_flight_at_publish.append(len(forwarder.inflight))
            return publish(topic, payload, qos=qos, retain=retain)

        forwarder.client.publish = counted
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
    assert len(in_flight_at_publish) >= len(rows) and max(in_flight_at_publish) < 4
    assert "Receive Maximum" in caplog.text
