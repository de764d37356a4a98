"""Local serial endpoints, one way everywhere: free loopback ports, listening sockets, raw
ptys, and the QEMU chardev and pyserial URL that name them.

Emulated devices, the ESP32 ROM loader, emulated boards under QEMU, the local MQTT broker and
the tests all need the same few things; everything binds to loopback only.
"""

from __future__ import annotations

import os
import socket
import tty

from tinyml.errors import InputError

LOOPBACK = "127.0.0.1"


def free_tcp_port() -> int:
    """A loopback TCP port nobody listens on right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def socket_url(port: int, host: str = LOOPBACK) -> str:
    """The pyserial URL of a TCP serial endpoint (``tinyml.device.link.open_link`` takes it)."""
    return f"socket://{host}:{port}"


def qemu_chardev(port: int) -> str:
    """A QEMU serial backend that listens on loopback ``port`` and waits for its one client."""
    return f"tcp:{LOOPBACK}:{port},server=on,wait=on,nodelay=on"


def listen_tcp(port: int, *, hint: str = "pick a free port, or 0 for any") -> socket.socket:
    """A socket listening on loopback ``port`` (0: any free one) for one client."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((LOOPBACK, port))
    except OSError as exc:
        listener.close()
        raise InputError(f"cannot listen on {LOOPBACK}:{port}: {exc.strerror}", hint=hint) from exc
    listener.listen(1)
    return listener


def open_pty(*, blocking: bool = True) -> tuple[int, int, str]:
    """A raw pty: (master fd, slave fd, the slave's path for a serial client)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    if not blocking:
        os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)
