"""A local Mosquitto broker on a free loopback port, for the demo, the benchmark and the tests.

Loopback only, anonymous unless users are given (then a password file), optional TLS.
Persistence is off unless asked for: a durable broker saves its sessions and their queued
messages when stopped, which is what a "broker restart loses nothing" claim needs. The broker process is ours: started with ``start()`` and ended with ``stop()``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tinyml.device.endpoints import free_tcp_port
from tinyml.errors import ToolError


def mosquitto_path() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)
    if found is None:
        raise ToolError("mosquitto not found", "install it: apt-get install mosquitto")
    return found


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise ToolError(f"nothing listens on 127.0.0.1:{port}", "see the broker log for why it did not start")


class LocalBroker:
    """mosquitto -c <conf>: loopback only; optional password file, TLS and persistence."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None, port: int | None = None,
                 tls: tuple[Path, Path, Path] | None = None, durable: bool = False, acl: str | None = None,
                 receive_maximum: int = 0):
        self.workdir = workdir
        self.acl = acl  # mosquitto acl_file text (what each client may publish and read)
        self.receive_maximum = receive_maximum  # 0: none announced
        self.durable = durable
        self.tls = tls  # (ca, cert, key)
        self.port = port or free_tcp_port()
        self.users = users
        self.proc: subprocess.Popen | None = None
        self.log = workdir / f"mosquitto-{self.port}.log"

    def _conf(self) -> Path:
        # No per-subscriber queue limit: a slow local subscriber must see every message, not
        # lose those beyond mosquitto's default of 1000 queued (the tests count them all).
        # No Receive Maximum either unless asked (mosquitto announces 20 by default): the
        # forwarder keeps within what the broker announces, and 20 would bound its throughput.
        lines = [f"listener {self.port} 127.0.0.1", "log_dest stderr", "max_queued_messages 0",
                 f"max_inflight_messages {self.receive_maximum}"]
        if self.durable:
            lines += ["persistence true", f"persistence_location {self.workdir}/",
                      f"persistence_file mosquitto-{self.port}.db"]
        else:
            lines.append("persistence false")
        if os.geteuid() == 0:  # as root, mosquitto would switch to a user that cannot read our tmp files
            lines.append("user root")
        if self.users:
            pwfile = self.workdir / "passwd"
            pwfile.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
            pwfile.chmod(0o600)
            subprocess.run(["mosquitto_passwd", "-U", str(pwfile)], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            aclfile = self.workdir / f"acl-{self.port}"
            aclfile.write_text(self.acl)
            lines.append(f"acl_file {aclfile}")
        if self.tls:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> LocalBroker:
        self.proc = subprocess.Popen([mosquitto_path(), "-c", str(self._conf())], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "a"))  # noqa: SIM115 - lives as long as the broker
        wait_listening(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"
