"""A protocol link to one device over a serial port, a pty or TCP, with timeouts everywhere.

``open_link("/dev/ttyUSB0")``, ``open_link("/dev/pts/7")`` and
``open_link("socket://127.0.0.1:5555")`` all return a ``Link``. TCP uses a plain socket
with TCP_NODELAY rather than pyserial's ``socket://`` (whose ``close()`` sleeps 0.3 s and
whose ``open()`` throws away bytes already received). Every read has a deadline, and every
OS error becomes a ``DeviceError`` with a hint, so a caller never hangs or sees a traceback.
"""

from __future__ import annotations

import errno
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from tinyml.device import protocol as p
from tinyml.errors import DeviceError, InputError

TCP_SCHEMES = ("socket://", "tcp://")
POLL_S = 0.05  # longest single wait on a serial port; callers loop until their own deadline


class Transport(Protocol):
    def read(self, timeout: float) -> bytes: ...  # b"" on timeout, DeviceError when gone
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


def parse_tcp(port: str) -> tuple[str, int] | None:
    """(host, port) for ``socket://HOST:PORT`` or ``tcp://HOST:PORT``; None for other ports."""
    for scheme in TCP_SCHEMES:
        if port.startswith(scheme):
            host, _, num = port[len(scheme):].partition("/")[0].rpartition(":")
            if not host or not num.isdigit() or not 0 < int(num) < 65536:
                raise InputError(f"bad TCP address {port!r}", hint="write it as socket://127.0.0.1:PORT")
            return host, int(num)
    return None


def _gone(port: str, detail: str) -> DeviceError:
    return DeviceError(f"device on {port} disconnected ({detail})",
                       hint="check the cable and power, then reconnect (monitor retries with --reconnect)")


class SocketTransport:
    def __init__(self, host: str, port: int, connect_timeout: float):
        self.name = f"{host}:{port}"
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.sock = socket.create_connection((host, port), timeout=max(0.1, connect_timeout))
                break
            except ConnectionRefusedError as exc:
                if time.monotonic() >= deadline:
                    raise DeviceError(f"nothing is listening on {self.name}",
                                      hint="start the device or emulator first, e.g. `tinyml emulate --tcp PORT`"
                                      ) from exc
                time.sleep(0.02)
            except OSError as exc:
                raise DeviceError(f"cannot connect to {self.name}: {exc.strerror or exc}",
                                  hint="check the host and port") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read(self, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 0.0) or 1e-4)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise _gone(self.name, exc.strerror or str(exc)) from exc
        if not data:
            raise _gone(self.name, "the other end closed the connection")
        return data

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _gone(self.name, exc.strerror or str(exc)) from exc

    def close(self) -> None:
        self.sock.close()


class SerialTransport:
    def __init__(self, port: str, baud: int):
        import serial  # pyserial: only links to real ports need it

        self.name = port
        try:
            if "://" in port:
                self.ser = serial.serial_for_url(port, baudrate=baud, timeout=POLL_S)
            else:
                self.ser = serial.Serial(port, baudrate=baud, timeout=POLL_S, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise _open_error(port, exc) from exc

    def read(self, timeout: float) -> bytes:
        """Waits at most POLL_S (not ``timeout``): changing pyserial's timeout reconfigures the port."""
        import serial

        try:
            first = self.ser.read(1)
            return first + self.ser.read(self.ser.in_waiting) if first else b""
        except (serial.SerialException, OSError) as exc:
            raise _gone(self.name, " ".join(str(exc).split())) from exc

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.ser.write(data)
        except (serial.SerialException, OSError) as exc:
            raise _gone(self.name, " ".join(str(exc).split())) from exc

    def close(self) -> None:
        self.ser.close()


def _open_error(port: str, exc: Exception) -> DeviceError:
    """Say which of the usual reasons stops a serial port from opening."""
    code = getattr(exc, "errno", None)
    text = " ".join(str(exc).split())
    if code == errno.ENOENT or "No such file" in text or "could not open port" in text and "[Errno 2]" in text:
        return DeviceError(f"serial port {port} not found",
                           hint="plug the board in and list ports with `tinyml ports`")
    if code == errno.EACCES or "Permission denied" in text or "[Errno 13]" in text:
        return DeviceError(f"permission denied opening {port}",
                           hint="add your user to the dialout group (sudo usermod -aG dialout $USER), then log in again")
    if code == errno.EBUSY or "[Errno 16]" in text or "exclusively lock" in text or "busy" in text.lower():
        from tinyml.flash.ports import holders

        who = ", ".join(f"{name} (pid {pid})" for pid, name in holders(port))
        return DeviceError(f"serial port {port} is busy" + (f": in use by {who}" if who else ""),
                           hint="close the other program using it (a monitor, screen, minicom, another tinyml)")
    return DeviceError(f"cannot open {port}: {text}", hint="check the port name with `tinyml ports`")


class Link:
    """Frames over a transport: send messages, receive decoded events, request/answer."""

    def __init__(self, transport: Transport, name: str, timeout: float = 5.0):
        self.transport = transport
        self.name = name
        self.timeout = timeout
        self.decoder = p.Decoder()
        self._events: deque[p.Event] = deque()
        self.text_lines: deque[str] = deque(maxlen=200)  # recent debug text, for error reports
        self.unsolicited: deque[p.Message] = deque(maxlen=200)  # messages a request did not wait for
        self.sent = 0
        self.retries = 0
        self.timeouts = 0

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, msg: p.Message) -> None:
        self.transport.write(p.encode(msg))
        self.sent += 1

    def write_raw(self, data: bytes) -> None:
        """Bytes as they are (tests use it to put noise on the line)."""
        self.transport.write(data)

    def recv_event(self, timeout: float | None = None) -> p.Event | None:
        """The next event (message, text line or bad frame), or None after ``timeout`` seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._events:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for event in self.decoder.feed(self.transport.read(left)):
                if isinstance(event, p.Text):
                    self.text_lines.append(event.line)
                self._events.append(event)
        return self._events.popleft()

    def recv(self, timeout: float | None = None) -> p.Message | None:
        """The next message, skipping text and bad frames (both are counted)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            event = self.recv_event(max(0.0, deadline - time.monotonic()))
            if event is None:
                return None
            if not isinstance(event, (p.Text, p.BadFrame)):
                return event

    def request(self, msg: p.Message, expect: type, timeout: float | None = None, retries: int = 2,
                match: Callable[[p.Message], bool] | None = None) -> p.Message:
        """Send ``msg`` and wait for a message of type ``expect`` (and ``match``), resending on silence.

        A device ERROR answer raises DeviceError, except "bad frame" (the request was garbled
        on the line), which is resent; other messages (RESULTs of a device in run mode,
        HEARTBEATs) are kept in ``unsolicited``.
        """
        wait = self.timeout if timeout is None else timeout
        for attempt in range(retries + 1):
            if attempt:
                self.retries += 1
            self.send(msg)
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                answer = self.recv(left)
                if answer is None:
                    break
                if isinstance(answer, expect) and (match is None or match(answer)):
                    return answer
                if isinstance(answer, p.Error) and expect is not p.Error:
                    if answer.code == p.ERR_BAD_FRAME:  # our frame was garbled on the way: resend
                        break
                    raise DeviceError(f"device on {self.name} answered {p.type_name(msg)} with error "
                                      f"{answer.code}: {answer.message or ERROR_TEXT.get(answer.code, 'unknown')}",
                                      hint=ERROR_HINT.get(answer.code, "see docs/protocol.md for the error codes"))
                self.unsolicited.append(answer)
            self.timeouts += 1
        raise DeviceError(f"no {expect.__name__.upper()} from {self.name} within {wait:g} s "
                          f"({retries + 1} tries of {p.type_name(msg)})",
                          hint="check that the device runs tinyml firmware at this baud rate"
                          + (f"; it printed: {self.text_lines[-1]!r}" if self.text_lines else ""))

    def output(self, result: p.Result, output_bytes: int, timeout: float | None = None, retries: int = 2) -> bytes:
        """The whole raw output tensor of ``result`` (of a device whose HELLO says ``output_bytes``)."""
        return read_output(result, output_bytes,
                           lambda req, accept: self.request(req, p.Output, timeout, retries, match=accept))

    def stats(self) -> dict[str, Any]:
        return {**self.decoder.stats(), "sent": self.sent, "retries": self.retries, "timeouts": self.timeouts}

    def close(self) -> None:
        self.transport.close()


Accept = Callable[[p.Message], bool]


def read_output(result: p.Result, output_bytes: int, ask: Callable[[p.OutputReq, Accept], p.Message]) -> bytes:
    """The head a RESULT carries plus the tail fetched with OUTPUT_REQ, stop-and-wait.

    ``ask(request, accept)`` sends the request (resending as it sees fit) and returns the first
    answer ``accept`` takes: the OUTPUT of this seq at this offset, so a late duplicate answer
    to a resent request is never mistaken for the next chunk.
    """
    out = bytearray(v & 0xFF for v in result.output)
    if len(out) > output_bytes:
        raise DeviceError(f"RESULT {result.seq} carries {len(out)} output bytes, the device's HELLO said {output_bytes}",
                          hint="the device's firmware is broken: rebuild and flash it")
    while len(out) < output_bytes:
        req = p.OutputReq(result.seq, len(out))
        chunk = ask(req, lambda m, r=req: isinstance(m, p.Output) and (m.seq, m.offset) == (r.seq, r.offset))
        assert isinstance(chunk, p.Output)
        if len(out) + len(chunk.data) > output_bytes:
            raise DeviceError(f"OUTPUT {result.seq} at offset {chunk.offset} runs past the {output_bytes}-byte output",
                              hint="the device's firmware is broken: rebuild and flash it")
        out += chunk.data
    return bytes(out)


ERROR_TEXT = {p.ERR_BAD_FRAME: "bad frame", p.ERR_UNKNOWN_TYPE: "unknown type",
              p.ERR_BAD_LENGTH: "bad length or offset", p.ERR_UNSUPPORTED: "unsupported in this mode",
              p.ERR_INFERENCE: "inference failed", p.ERR_MODEL_MISMATCH: "model mismatch",
              p.ERR_SENSOR: "sensor failed"}
ERROR_HINT = {p.ERR_UNKNOWN_TYPE: "the firmware does not know this command: rebuild it with this tinyml version",
              p.ERR_BAD_LENGTH: "the offset or length does not fit the device's input tensor (INPUT) or output "
                                "tensor (OUTPUT_REQ): check the model",
              p.ERR_UNSUPPORTED: "this board or firmware mode does not support the command, or the device no "
                                 "longer holds the result asked for",
              p.ERR_INFERENCE: "the device could not run the model: check arena size with `tinyml inspect`",
              p.ERR_MODEL_MISMATCH: "flash the firmware built for this model",
              p.ERR_SENSOR: "check the sensor's wiring, power and address (docs/sensors.md)"}


def open_link(port: str, baud: int = 115200, timeout: float = 5.0, connect_timeout: float = 0.0) -> Link:
    """A Link on a serial device path, a pty, ``socket://HOST:PORT`` or another pyserial URL.

    ``connect_timeout``: how long to retry a TCP connection that is refused (an emulator
    that is still starting); 0 fails at once.
    """
    if baud <= 0:
        raise InputError(f"baud rate must be positive, got {baud}", hint="e.g. --baud 115200")
    if timeout <= 0:
        raise InputError(f"timeout must be positive, got {timeout}", hint="e.g. --timeout 5")
    tcp = parse_tcp(port)
    transport: Transport = SocketTransport(*tcp, connect_timeout) if tcp else SerialTransport(port, baud)
    return Link(transport, port, timeout)
