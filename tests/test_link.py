"""Links over a real pty pair and real TCP sockets: frames, text, noise, timeouts, unplugging."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from tinyml.device import protocol as p
from tinyml.device.endpoints import free_tcp_port, listen_tcp, open_pty, socket_url
from tinyml.device.link import _open_error, open_link
from tinyml.errors import DeviceError, InputError


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """(master fd, slave path): the master plays the device."""
    master, slave, path = open_pty()
    yield master, path
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def tcp_device() -> Iterator[tuple[socket.socket, int]]:
    """(listener, port): a test accepts and plays the device."""
    listener = listen_tcp(0)
    yield listener, listener.getsockname()[1]
    listener.close()


def echo_device(read: callable, write: callable, stop: threading.Event) -> None:
    """A minimal device: ACKs INPUT, answers INFER with a RESULT, and prints debug text."""
    decoder = p.Decoder()
    while not stop.is_set():
        try:
            data = read()
        except OSError:
            return
        if not data:
            continue
        for msg in decoder.feed(data):
            if isinstance(msg, p.Input):
                write(b"dbg: got input\r\n" + p.encode(p.Ack(p.Input.TYPE, msg.offset + len(msg.data))))
            elif isinstance(msg, p.Infer):
                write(b"\x91\x92garbage" + p.encode(p.Result(msg.seq, 9, 0, 5, p.LATENCY_US, 1, 0.5, (1, 2))))


def test_pty_link_request_answer_with_text_and_noise(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    stop = threading.Event()
    os.set_blocking(master, False)

    def read() -> bytes:
        time.sleep(0.002)
        try:
            return os.read(master, 4096)
        except BlockingIOError:
            return b""

    thread = threading.Thread(target=echo_device, args=(read, lambda b: os.write(master, b), stop), daemon=True)
    thread.start()
    try:
        with open_link(path, timeout=2.0) as link:
            ack = link.request(p.Input(0, b"\x05" * 100), p.Ack, timeout=2.0)
            assert ack == p.Ack(p.Input.TYPE, 100)
            result = link.request(p.Infer(41), p.Result, timeout=2.0)
            assert (result.seq, result.output) == (41, (1, 2))
            assert "dbg: got input" in link.text_lines
            assert link.stats()["bad_frames"] == 1  # the garbage before the RESULT
    finally:
        stop.set()
        thread.join(2)


def test_tcp_link_survives_garbage_and_counts_it(tcp_device: tuple[socket.socket, int]) -> None:
    listener, port = tcp_device
    frames = [p.encode(p.Result(i, 1, i, 3, 2, 0, 0.25, (i,))) for i in range(20)]

    def device() -> None:
        conn, _ = listener.accept()
        with conn:
            for i, frame in enumerate(frames):
                noise = bytes([0x80 + i, 0xFE, 0x00]) if i % 4 == 0 else b""
                conn.sendall(noise + frame[: len(frame) // 2])
                time.sleep(0.001)
                conn.sendall(frame[len(frame) // 2:])
            time.sleep(0.5)

    threading.Thread(target=device, daemon=True).start()
    with open_link(socket_url(port), timeout=2.0) as link:
        got = [link.recv(2.0) for _ in frames]
        assert [m.seq for m in got] == list(range(20))
        assert link.stats()["bad_frames"] == 5


def test_no_answer_is_a_device_error_after_retries(tcp_device: tuple[socket.socket, int]) -> None:
    listener, port = tcp_device
    received = []

    def silent_device() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(2)
            try:
                while chunk := conn.recv(4096):
                    received.append(chunk)
            except OSError:
                pass

    threading.Thread(target=silent_device, daemon=True).start()
    with open_link(socket_url(port), timeout=1.0) as link:
        start = time.monotonic()
        with pytest.raises(DeviceError, match=r"no ACK from .* within 0.2 s \(3 tries of INPUT\)"):
            link.request(p.Input(0, b"x"), p.Ack, timeout=0.2, retries=2)
        assert time.monotonic() - start < 1.5
        assert link.stats()["retries"] == 2
    assert b"".join(received).count(p.encode(p.Input(0, b"x"))) == 3


def test_device_error_answer_is_reported(tcp_device: tuple[socket.socket, int]) -> None:
    listener, port = tcp_device

    def device() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(p.encode(p.Error(p.ERR_BAD_LENGTH, "offset 900 beyond 768")))
            time.sleep(0.5)

    threading.Thread(target=device, daemon=True).start()
    with open_link(socket_url(port), timeout=1.0) as link, \
            pytest.raises(DeviceError, match="error 3: offset 900 beyond 768") as info:
        link.request(p.Input(900, b"x"), p.Ack)
    assert "input tensor" in info.value.hint


def test_peer_closing_tcp_is_a_clear_disconnect(tcp_device: tuple[socket.socket, int]) -> None:
    listener, port = tcp_device

    def device() -> None:
        conn, _ = listener.accept()
        conn.sendall(p.encode(p.HelloReq()))
        conn.close()

    threading.Thread(target=device, daemon=True).start()
    with open_link(f"tcp://127.0.0.1:{port}", timeout=2.0) as link:
        assert link.recv(2.0) == p.HelloReq()
        with pytest.raises(DeviceError, match="disconnected .*closed the connection"):
            link.recv(2.0)


def test_pty_unplugged_mid_session_is_a_clear_disconnect(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    with open_link(path, timeout=2.0) as link:
        os.write(master, p.encode(p.Infer(1)))
        assert link.recv(2.0) == p.Infer(1)
        os.close(master)
        with pytest.raises(DeviceError, match=f"device on {path} disconnected"):
            link.recv(2.0)


def test_recv_times_out_with_none(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    with open_link(path, timeout=0.3) as link:
        start = time.monotonic()
        assert link.recv() is None
        assert 0.25 < time.monotonic() - start < 1.0


def test_missing_port_busy_port_and_closed_tcp_port(pty_pair: tuple[int, str]) -> None:
    with pytest.raises(DeviceError, match="serial port /dev/ttyNOPE0 not found") as info:
        open_link("/dev/ttyNOPE0")
    assert "tinyml ports" in info.value.hint
    _, path = pty_pair
    with open_link(path), pytest.raises(DeviceError, match="is busy") as busy:
        open_link(path)
    assert "close the other program" in busy.value.hint
    free = free_tcp_port()
    with pytest.raises(DeviceError, match=f"nothing is listening on 127.0.0.1:{free}"):
        open_link(f"socket://127.0.0.1:{free}")


def test_permission_denied_hint_names_dialout() -> None:
    # what pyserial raises for a port the user may not open (cannot be provoked as root)
    exc = serial.SerialException(13, "could not open port /dev/ttyUSB0: [Errno 13] Permission denied: '/dev/ttyUSB0'")
    err = _open_error("/dev/ttyUSB0", exc)
    assert "permission denied" in err.message and "dialout" in err.hint


@pytest.mark.parametrize(("port", "baud", "timeout"), [
    ("socket://127.0.0.1", 115200, 1.0), ("socket://:80", 115200, 1.0), ("tcp://host:99999", 115200, 1.0),
    ("/dev/null", 0, 1.0), ("/dev/null", 115200, 0.0),
])
def test_bad_link_arguments_are_input_errors(port: str, baud: int, timeout: float) -> None:
    with pytest.raises(InputError):
        open_link(port, baud, timeout)


def test_busy_port_names_the_process_holding_it(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    holder = subprocess.Popen([sys.executable, "-c", "import serial, sys, time; "
                               f"s = serial.Serial({path!r}, exclusive=True); print('open', flush=True); "
                               "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DeviceError, match=rf"is busy: in use by python\S* \(pid {holder.pid}\)"):
            open_link(path)
    finally:
        holder.kill()
        holder.wait()


def test_request_garbled_on_the_way_is_resent(tcp_device: tuple[socket.socket, int]) -> None:
    listener, port = tcp_device

    def device() -> None:  # the first INFER arrives damaged: the device says "bad frame"
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(p.encode(p.Error(p.ERR_BAD_FRAME, "bad frame: crc")))
            conn.recv(4096)
            conn.sendall(p.encode(p.Result(5, 1, 0, 1, 2, 0, 0.0, ())))
            time.sleep(0.5)

    threading.Thread(target=device, daemon=True).start()
    with open_link(socket_url(port), timeout=2.0) as link:
        assert link.request(p.Infer(5), p.Result).seq == 5
        assert link.stats()["retries"] == 1
