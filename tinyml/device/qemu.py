"""Boot an emulated board with its UART on a local TCP port, and always clean it up.

QEMU listens on 127.0.0.1 (``server=on,wait=on``: the guest starts only once the host is
connected, so no early byte is lost; ``nodelay=on``: without it every round trip costs
~40 ms of Nagle delay). ``EmulatedBoard`` is a context manager that kills the emulator's
whole process group on exit, on errors and on Ctrl-C, so no QEMU is ever left behind.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import serial

from tinyml.errors import DeviceError, InputError, ToolError
from tinyml.firmware.boards import Board

START_TIMEOUT_S = 10.0


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmulatedBoard:
    """A running emulator for ``board`` booting ``elf``; ``url`` is its serial port for pyserial."""

    def __init__(self, board: Board, elf: str | Path):
        if not board.emulated:
            raise InputError(f"board {board.name!r} is not emulated", "pass --port for a real board")
        self.board, self.elf = board, Path(elf)
        if not self.elf.is_file():
            raise InputError(f"firmware not found: {self.elf}", "build it first with `tinyml build DIR`")
        exe = board.emulator_command[0]
        if shutil.which(exe) is None:
            raise ToolError(f"emulator {exe!r} not found on PATH",
                            f"install it: apt-get install {board.emulator_package or exe}")
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the emulator; closed in stop()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> EmulatedBoard:
        self.port = free_tcp_port()
        serial = f"tcp:127.0.0.1:{self.port},server=on,wait=on,nodelay=on"
        self.proc = subprocess.Popen(self.board.emulator_argv(self.elf, serial), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def connect(self, timeout: float = 2.0) -> serial.SerialBase:
        """Open the emulated UART; QEMU listens a few ms after start, so retry until then.

        The first connection is the one QEMU serves (``wait=on``), so it is never probed and
        dropped: the guest starts only once this returns."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc is None or self.proc.poll() is not None:
                rc = None if self.proc is None else self.proc.returncode
                raise ToolError(f"{self.board.emulator_command[0]} exited at start (rc {rc}): "
                                f"{' '.join(self.output()[-300:].split())}",
                                "check the firmware was built for this board")
            try:
                return serial.serial_for_url(self.url, timeout=timeout)
            except serial.SerialException:
                if time.monotonic() > deadline:
                    raise DeviceError(f"{self.board.name}: emulator did not open its serial port in "
                                      f"{START_TIMEOUT_S:g} s", "the machine may be overloaded; retry") from None
                time.sleep(0.01)

    def output(self) -> str:
        """What the emulator itself printed (errors, semihosting console)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def wait(self, timeout: float) -> int | None:
        """The emulator's exit code, or None when it is still running after ``timeout``."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Kill the emulator's process group; safe to call any number of times."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        self._log.close()

    def __enter__(self) -> EmulatedBoard:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
