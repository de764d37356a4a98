"""Scripted protocol devices for gateway tests, served on TCP or a pty.

They speak the real protocol (tinyml.device.protocol.encode) and, like a real board in
run mode, keep producing results whether or not anyone listens; the test controls
exactly what they send (scores, labels, garbage, reboots, disappearing ports), which the
alert, drift and loss checks need.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Callable

from tinyml.device import protocol
from tinyml.device.endpoints import listen_tcp, open_pty, socket_url

Outcome = Callable[[int], tuple[int, float]]  # seq -> (label, score)


def normal_scores(seed: int = 0) -> Outcome:
    rng = random.Random(seed)
    return lambda seq: (0, rng.uniform(0.0, 0.2))


class ScriptedDevice:
    """One device: HELLO at boot and on HELLO_REQ, RESULT frames at ``rate`` Hz."""

    def __init__(self, device_id: str, rate: float = 50.0, outcome: Outcome | None = None,
                 garbage_every: int = 0, pty: bool = False, model_hash: bytes = b"\x01" * 8,
                 hold_until_connected: bool = False):
        self.device_id = device_id
        self.rate = rate
        self.outcome = outcome or normal_scores(hash(device_id) & 0xFFFF)
        self.garbage_every = garbage_every
        self.model_hash = model_hash
        self.boot_id = random.getrandbits(32)
        self.seq = 0
        self.sent: list[tuple[int, int]] = []  # (boot_id, seq) actually written to a listener
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.conn: socket.socket | None = None
        self.master: int | None = None
        self.pty = pty
        self.server: socket.socket | None = None
        self.port = 0
        self.path = ""
        self.threads: list[threading.Thread] = []
        self.connected = threading.Event()  # a TCP listener arrived (ptys count as always connected)
        self.hold_until_connected = hold_until_connected

    # --- transport ----------------------------------------------------------------------
    def start(self) -> ScriptedDevice:
        if self.pty:
            self.open_pty()
        else:
            self.server = listen_tcp(self.port)
            self.port = self.server.getsockname()[1]
            self._thread(self._accept)
        self._thread(self._produce)
        return self

    def open_pty(self) -> None:
        master, slave, self.path = open_pty(blocking=False)
        self.slave = slave
        with self.lock:
            self.master = master
        self._thread(self._read_pty, master)

    def close_pty(self) -> None:
        """The port disappears, as when a USB adapter is unplugged."""
        with self.lock:
            master, self.master = self.master, None
        if master is not None:
            os.close(master)
            os.close(self.slave)

    @property
    def url(self) -> str:
        return self.path if self.pty else socket_url(self.port)

    def _thread(self, target: Callable, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self) -> None:
        assert self.server is not None
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                if self.conn:
                    self.conn.close()
                self.conn = conn
            self.connected.set()
            self._thread(self._read_socket, conn)

    def _read_socket(self, conn: socket.socket) -> None:
        decoder = protocol.Decoder()
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                with self.lock:
                    if self.conn is conn:
                        self.conn = None
                return
            self._commands(decoder.feed(data))

    def _read_pty(self, master: int) -> None:
        decoder = protocol.Decoder()
        while not self.stopping.is_set() and self.master == master:
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            except OSError:
                return
            self._commands(decoder.feed(data))

    def _commands(self, events: list) -> None:
        if any(isinstance(e, protocol.HelloReq) for e in events):
            self._send(self._hello())

    def _send(self, data: bytes, seq: tuple[int, int] | None = None) -> None:
        with self.lock:
            try:
                if self.conn is not None:
                    self.conn.sendall(data)
                elif self.master is not None:
                    os.write(self.master, data)
                else:
                    return
            except OSError:
                return
            if seq is not None:
                self.sent.append(seq)

    # --- behaviour -----------------------------------------------------------------------
    def _hello(self) -> bytes:
        return protocol.encode(protocol.Hello(1, "scripted", "1.0", self.device_id, self.model_hash,
                                              4096, 64, 3, self.boot_id, protocol.LATENCY_US))

    def reboot(self) -> None:
        with self.lock:
            self.boot_id = random.getrandbits(32)
            self.seq = 0
        self._send(self._hello())

    def _produce(self) -> None:
        if self.hold_until_connected and not self.pty:  # the test must see seq 0 onwards
            self.connected.wait()
        self._send(self._hello())
        n = 0
        while not self.stopping.is_set():
            with self.lock:
                seq, boot = self.seq, self.boot_id
                self.seq += 1
            label, score = self.outcome(seq)
            frame = protocol.encode(protocol.Result(seq, boot, int(time.monotonic() * 1000) & 0xFFFFFFFF,
                                                    1000 + seq % 100, protocol.LATENCY_US, label, score, (1, 2, 3)))
            n += 1
            if self.garbage_every and n % self.garbage_every == 0:
                junk = bytes(random.getrandbits(8) for _ in range(random.randint(1, 40)))
                frame = junk + b"\x00" + frame[: len(frame) // 2] + b"\x00" + frame + b"debug: tick\n"
            self._send(frame, (boot, seq))
            time.sleep(1.0 / self.rate)

    def stop(self) -> None:
        """Stop sending and hang up: the gateway sees the connection end and the port refuse."""
        self.stopping.set()
        with self.lock:
            if self.conn:
                _hang_up(self.conn)
                self.conn = None
        if self.server:
            _hang_up(self.server)
        self.close_pty()


def _hang_up(sock: socket.socket) -> None:
    """shutdown before close: a plain close leaves the socket open while another thread is still
    blocked in its recv or accept, so the peer would see no end and new connections would queue."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
