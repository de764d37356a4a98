"""Cortex-M flashing through a debug probe: OpenOCD and pyOCD back ends.

Each board file names its probe and target (``[flash] interface``/``target`` for OpenOCD,
``target`` for pyOCD). Both tools program, verify and reset in one run; their output is
shown live, and the usual failures (no probe, wrong target, no tool) become one-line errors.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from tinyml.errors import DeviceError, InputError, ToolError
from tinyml.flash.runner import ToolRun, run_tool

NO_PROBE_PATTERNS = ("open failed", "no connected debug probes", "no device found", "unable to find",
                     "no j-link device found", "no target device available", "libusb_open() failed",
                     "could not find", "error connecting dp")


# characters that are inert inside a Tcl brace word: no braces, brackets, $, backslash, quotes, ;
_TCL_SAFE_PATH = re.compile(r"^[A-Za-z0-9 ._/+@%,=:~-]+$")


def tcl_path(image: Path) -> str:
    """``image`` as an absolute path for an OpenOCD (Tcl) command, refusing names that could end the
    brace quoting and run commands (``}; exec ...``, ``[...]``); such a name is refused, not rewritten."""
    path = str(image.absolute())
    if not _TCL_SAFE_PATH.match(path):
        raise InputError(f"the image path {path!r} has characters OpenOCD's Tcl would interpret",
                         hint="rename or copy the image to a path of letters, digits, spaces and ._/+@%,=:~-")
    return path


def _needs_address(image: Path) -> bool:
    return image.suffix == ".bin"


def openocd_argv(image: Path, interface: str, target: str, address: int | None,
                 openocd: str = "openocd") -> list[str]:
    """``openocd -f IFACE -f TARGET -c "program IMAGE verify reset exit [ADDR]"``."""
    if _needs_address(image) and address is None:
        raise InputError(f"{image.name} is a raw binary and the board has no flash_origin",
                         hint="flash the .elf, or add memory.flash_origin to the board file")
    program = f"program {{{tcl_path(image)}}} verify reset exit"
    if _needs_address(image):
        program += f" {address:#x}"
    return [openocd, "-f", interface, "-f", target, "-c", program]


def pyocd_command() -> list[str]:
    """How to start pyOCD: the installed module under this Python, else ``pyocd`` on PATH."""
    if importlib.util.find_spec("pyocd") is not None:
        return [sys.executable, "-m", "pyocd"]
    found = shutil.which("pyocd")
    if found is None:
        raise ToolError("pyOCD is not installed", hint="pip install 'tinyml-toolchain[flash]'")
    return [found]


def pyocd_argv(image: Path, target: str, address: int | None, probe: str | None = None,
               pyocd: list[str] | None = None) -> list[str]:
    """``pyocd load --no-wait -t TARGET [-u PROBE] [--base-address ADDR] IMAGE``."""
    if _needs_address(image) and address is None:
        raise InputError(f"{image.name} is a raw binary and the board has no flash_origin",
                         hint="flash the .elf, or add memory.flash_origin to the board file")
    argv = [*(pyocd or pyocd_command()), "load", "--no-wait", "-t", target]
    if probe:
        argv += ["-u", probe]
    if _needs_address(image):
        argv += ["--base-address", f"{address:#x}"]
    return argv + [str(image.absolute())]  # absolute: a name starting with "-" is not an option


def check_run(run: ToolRun, tool: str) -> None:
    """Turn a failed OpenOCD/pyOCD run into one clear error."""
    if run.returncode == 0:
        return
    text = run.output.lower()
    if any(pattern in text for pattern in NO_PROBE_PATTERNS):
        raise DeviceError(f"{tool}: no debug probe found",
                          hint="plug in the board's probe (ST-LINK, J-Link, CMSIS-DAP), check the USB cable "
                               "and udev rules, then retry")
    last = next((ln.strip() for ln in reversed(run.output.splitlines()) if "error" in ln.lower()),
                run.output.strip().splitlines()[-1] if run.output.strip() else f"exit code {run.returncode}")
    raise DeviceError(f"{tool} failed: {last}", hint="run the printed command by hand to see the full log")


def flash_openocd(image: Path, flash: dict, address: int | None, timeout: float = 120,
                  echo: Callable[[str], None] | None = None) -> list[str]:
    """Program, verify and reset with OpenOCD; returns the command that ran."""
    for key in ("interface", "target"):
        if not isinstance(flash.get(key), str):
            raise InputError(f"the board's [flash] table has no OpenOCD {key}",
                             hint='add e.g. interface = "interface/stlink.cfg", target = "target/stm32f4x.cfg"')
    argv = openocd_argv(image, flash["interface"], flash["target"], address)
    check_run(run_tool(argv, timeout, "openocd (apt-get install openocd)", echo), "OpenOCD")
    return argv


def flash_pyocd(image: Path, flash: dict, address: int | None, probe: str | None = None,
                timeout: float = 120, echo: Callable[[str], None] | None = None) -> list[str]:
    """Program, verify and reset with pyOCD; returns the command that ran."""
    if not isinstance(flash.get("target"), str):
        raise InputError("the board's [flash] table has no pyOCD target", hint='add e.g. target = "nrf52840"')
    argv = pyocd_argv(image, flash["target"], address, probe)
    check_run(run_tool(argv, timeout, "pyocd (pip install pyocd)", echo), "pyOCD")
    return argv
