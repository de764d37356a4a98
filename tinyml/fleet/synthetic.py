"""A synthetic gateway: publishes result messages in the gateway's exact format (its own
encoder) at a chosen rate, QoS 1, for the fleet benchmark and tests that need more, or
stranger, traffic than emulated devices on serial lines produce."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tinyml.device import protocol
from tinyml.gateway.processor import result_id, result_payload


def result_message(site: str, device: str, boot_id: int, seq: int, *, received_at: float | None = None,
                   prefix: str = "tinyml") -> tuple[str, str, str]:
    """(topic, id, payload) of one result, as `tinyml gateway run` forwards it."""
    r = protocol.Result(seq, boot_id, seq * 10, 1000, protocol.LATENCY_US, seq % 2, (seq % 100) / 100, (1, 2, 3))
    at = time.time() if received_at is None else received_at
    return (f"{prefix}/{site}/{device}/result", result_id(device, boot_id, seq),
            result_payload(site, device, r, at, None, seq % 2 == 1))


class Publisher:
    """One MQTT 5 client publishing QoS 1; ``acked`` holds the ids the broker PUBACKed."""

    def __init__(self, host: str, port: int, *, client_id: str = "", window: int = 2000):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(0)
        self.window = threading.BoundedSemaphore(window)
        self.pending: dict[int, str] = {}
        self.early: set[int] = set()
        self.acked: list[str] = []
        self.lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1" if host == "localhost" else host, port)
        self.client.loop_start()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        with self.lock:
            msg_id = self.pending.pop(mid, None)
            if msg_id is None:  # acknowledged before publish() noted it
                self.early.add(mid)
            else:
                self.acked.append(msg_id)
                self.window.release()

    def publish(self, topic: str, msg_id: str, payload: str | bytes) -> None:
        self.window.acquire()
        mid = self.client.publish(topic, payload, qos=1).mid  # not under self.lock: paho calls back holding its own
        with self.lock:
            if mid in self.early:
                self.early.discard(mid)
                self.acked.append(msg_id)
                self.window.release()
            else:
                self.pending[mid] = msg_id

    def run(self, *, site: str, devices: int, count: int, rate: float, boot_id: int = 0x1234) -> None:
        """``count`` results per device, round robin, paced at ``rate`` results/s overall (0: no pacing)."""
        start = time.monotonic()
        n = 0
        for seq in range(count):
            for d in range(devices):
                topic, msg_id, payload = result_message(site, f"dev-{d:05d}", boot_id, seq)
                self.publish(topic, msg_id, payload)
                n += 1
                if rate and n % 50 == 0:
                    ahead = start + n / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)

    def wait_acked(self, n: int, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.acked) >= n:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
