"""Boot an emulated board with its UART on a local TCP port, and always clean it up.

QEMU listens on 127.0.0.1 (``server=on,wait=on``: the guest starts only once the host is
connected, so no early byte is lost; ``nodelay=on``: without it every round trip costs
~40 ms of Nagle delay). ``EmulatedBoard`` is a context manager that kills the emulator's
process on exit, on errors and on Ctrl-C, and the kernel kills it if tinyml itself is
killed (PR_SET_PDEATHSIG), so no QEMU is ever left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tinyml.device.endpoints import free_tcp_port, qemu_chardev, socket_url
from tinyml.errors import InputError, ToolError
from tinyml.firmware.boards import Board

CONNECT_TIMEOUT_S = 10.0


def _die_with_parent() -> None:
    """Runs in the child before exec: on Linux the kernel sends it SIGKILL when tinyml dies,
    even by SIGKILL or SIGTERM, where no ``finally`` runs, so no emulator outlives tinyml."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class EmulatedBoard:
    """A running emulator for ``board`` booting ``elf``; ``url`` is its serial port."""

    def __init__(self, board: Board, elf: str | Path, extra_args: tuple[str, ...] = ()):
        if not board.emulated:
            raise InputError(f"board {board.name!r} is not emulated", "pass --port for a real board")
        self.board, self.elf, self.extra_args = board, Path(elf), tuple(extra_args)
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
        """The serial port for ``tinyml.device.link.open_link`` (connect with a retry: QEMU
        listens a few ms after start, and the first connection is the one it serves)."""
        return socket_url(self.port)

    def start(self) -> EmulatedBoard:
        self.port = free_tcp_port()
        serial = qemu_chardev(self.port)
        argv = [*self.board.emulator_argv(self.elf, serial), *self.extra_args]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        return self

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
