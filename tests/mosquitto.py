"""Test helpers around a real Mosquitto: a deduplicating subscriber, a relay that can cut the
broker off, and throw-away TLS files. The broker itself is tinyml.gateway.broker.LocalBroker."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tinyml.device.endpoints import free_tcp_port, listen_tcp
from tinyml.gateway.broker import LocalBroker as Broker
from tinyml.gateway.broker import wait_listening

__all__ = ["Broker", "Gate", "Subscriber", "free_tcp_port", "make_tls_files", "wait_listening"]


def make_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1, as PEM files (ca, cert, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tinyml test CA")])

    def cert(subject: x509.Name, public_key, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(cert(ca_name, ca_key.public_key(), True).public_bytes(serialization.Encoding.PEM))
    server = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    paths[1].write_bytes(cert(server, key.public_key(), False).public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Subscriber:
    """Subscribes to tinyml/# and records every message, counting duplicates by id.

    With ``session`` it keeps a persistent MQTT session under that client id: a durable broker
    then queues what arrives while the subscriber is away, across a broker restart too."""

    def __init__(self, port: int, topic: str = "tinyml/#", username: str | None = None,
                 password: str | None = None, messages: list[tuple[str, dict]] | None = None,
                 ca: Path | None = None, session: str | None = None):
        self.messages: list[tuple[str, dict]] = [] if messages is None else messages
        self.batches = 0  # .../results messages received (each adds its results to ``messages``)
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=session or "", protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        if ca:
            self.client.tls_set(ca_certs=str(ca))
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        if session:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self.client.connect_async("127.0.0.1", port, clean_start=False, properties=props)
        else:
            self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise TimeoutError("subscriber did not connect")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        payload = json.loads(msg.payload)
        with self.lock:
            if msg.topic.endswith("/results"):  # a batch ([mqtt] batch): each result as if sent alone
                self.batches += 1
                self.messages += [(msg.topic[:-1], r) for r in payload["results"]]
            else:
                self.messages.append((msg.topic, payload))

    def ids(self, kind: str = "result") -> list[str]:
        with self.lock:
            return [p["id"] for t, p in self.messages if t.endswith("/" + kind) and "id" in p]

    def payloads(self, kind: str) -> list[dict]:
        with self.lock:
            return [p for t, p in self.messages if t.endswith("/" + kind)]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Gate:
    """A TCP relay to the broker that can be shut: the gateway sees an unreachable broker
    while subscribers, connected directly, miss nothing."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.server = listen_tcp(0)
        self.port = self.server.getsockname()[1]
        self.open = False
        self.links: list[socket.socket] = []
        self.frozen: set[socket.socket] = set()  # links that pass nothing on (a half-open connection)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def freeze(self) -> None:
        """The links open now go silent both ways without closing, as when a broker's host
        vanishes; new links work."""
        self.frozen.update(self.links)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while src in self.frozen:
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        self.server.close()
        for s in self.links:
            s.close()
