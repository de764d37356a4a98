"""A minimal QEMU Machine Protocol client: set emulated sensor values while the guest runs.

QEMU's ``-qmp unix:PATH,server=on,wait=off`` accepts one JSON client; after the greeting and
``qmp_capabilities`` every command is one JSON object per line and one answer (events may
come in between and are skipped). Used to drive the emulated TMP105's ``temperature``
property (millidegrees Celsius) from tests and the demo.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from tinyml.errors import DeviceError


class Qmp:
    """One QMP connection to a running QEMU (``connect`` retries until QEMU listens)."""

    def __init__(self, path: str | Path, *, timeout: float = 10.0):
        self.path, self.timeout = str(path), timeout
        self.sock: socket.socket | None = None
        self._buf = b""

    def connect(self) -> Qmp:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise DeviceError(f"QEMU's QMP socket {self.path} does not answer: {exc}",
                                      "start QEMU with -qmp unix:PATH,server=on,wait=off") from None
                time.sleep(0.02)
        self.sock = sock
        self._line()  # the greeting
        self.execute("qmp_capabilities")
        return self

    def _line(self) -> dict[str, Any]:
        assert self.sock is not None
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise DeviceError("QEMU closed its QMP socket", "the emulator ended: see its output")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run one command; its ``return`` value, or DeviceError with QEMU's reason."""
        if self.sock is None:
            raise DeviceError("QMP is not connected", "call connect() first")
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            answer = self._line()
            if "return" in answer:
                return answer["return"]
            if "error" in answer:
                raise DeviceError(f"QMP {command} failed: {answer['error'].get('desc')}",
                                  "check the device id and property name (info qtree)")

    def set_property(self, path: str, name: str, value: Any) -> None:
        self.execute("qom-set", path=path, property=name, value=value)

    def get_property(self, path: str, name: str) -> Any:
        return self.execute("qom-get", path=path, property=name)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> Qmp:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()
