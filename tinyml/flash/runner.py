"""Run an external flashing tool, showing its output live and keeping it for diagnosis."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tinyml.errors import DeviceError, ToolError


@dataclass(frozen=True)
class ToolRun:
    argv: list[str]
    returncode: int
    output: str


def run_tool(argv: list[str], timeout: float, package: str,
             echo: Callable[[str], None] | None = None) -> ToolRun:
    """Run ``argv`` to completion (stdout and stderr merged); kill it after ``timeout`` s."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, errors="replace")
    except FileNotFoundError as exc:
        raise ToolError(f"{argv[0]} is not installed", hint=f"install {package}") from exc
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        proc.kill()

    killer = threading.Timer(timeout, kill)
    killer.start()
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if echo:
                echo(line.rstrip("\n"))
        proc.wait()
    finally:
        killer.cancel()
    if fired.is_set():
        raise DeviceError(f"{argv[0]} did not finish within {timeout:.0f} s", hint="check the probe and the board's power")
    return ToolRun(argv, proc.returncode, "".join(lines))
