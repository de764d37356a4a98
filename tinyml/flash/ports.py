"""Serial ports: what is plugged in, which board it probably is, and whether we may open it.

Choosing among several ports and missing ``dialout`` permissions are the commonest
flashing complaints, so ``--port auto`` only picks a port when exactly one fits the board,
and every refusal says why (permission, or which process holds the port).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyml.errors import DeviceError

# (vid, pid or None for any) -> what that USB device is.
KNOWN_USB: dict[tuple[int, int | None], str] = {
    (0x10C4, 0xEA60): "Silicon Labs CP210x USB-UART (ESP32 DevKitC and many others)",
    (0x1A86, 0x7523): "WCH CH340 USB-UART (ESP32 and clone boards)",
    (0x0403, 0x6001): "FTDI FT232R USB-UART",
    (0x0403, 0x6010): "FTDI FT2232 dual USB-UART/JTAG",
    (0x0403, 0x6014): "FTDI FT232H USB-UART/JTAG",
    (0x0403, 0x6015): "FTDI FT230X USB-UART",
    (0x303A, 0x1001): "Espressif USB-Serial/JTAG (ESP32-S3/C3 built-in USB)",
    (0x0483, 0x374B): "ST-LINK/V2-1 (Nucleo/Discovery) virtual COM port",
    (0x0483, 0x374E): "ST-LINK/V3 virtual COM port",
    (0x0483, 0x374F): "ST-LINK/V3 virtual COM port",
    (0x0483, 0x3748): "ST-LINK/V2 probe",
    (0x1366, None): "SEGGER J-Link (virtual COM port)",
    (0x0D28, 0x0204): "Arm CMSIS-DAP/DAPLink (micro:bit, FRDM, ...)",
    (0x2E8A, 0x000A): "Raspberry Pi RP2040 USB CDC (Pico SDK stdio)",
    (0x2E8A, 0x0003): "Raspberry Pi RP2040 BOOTSEL (UF2 drive)",
}


@dataclass(frozen=True)
class PortGuess:
    """One serial port with what tinyml can tell about it."""

    device: str
    description: str
    vid_pid: str | None
    chip: str | None
    boards: tuple[str, ...]

    def line(self) -> str:
        usb = self.vid_pid or "no USB id"
        known = self.chip or self.description or "unknown device"
        boards = f"  boards: {', '.join(self.boards)}" if self.boards else ""
        return f"{self.device}  [{usb}]  {known}{boards}"


def vid_pid_text(vid: int | None, pid: int | None) -> str | None:
    return f"{vid:04x}:{pid:04x}" if vid is not None and pid is not None else None


def known_chip(vid: int | None, pid: int | None) -> str | None:
    if vid is None:
        return None
    return KNOWN_USB.get((vid, pid)) or KNOWN_USB.get((vid, None))


def board_matches(vid_pid: str | None, board_ids: Iterable[str]) -> bool:
    """Whether a port's ``vid:pid`` is one a board lists (``1366:*`` matches any product)."""
    if vid_pid is None:
        return False
    vid = vid_pid.split(":")[0]
    return any(entry.lower() in (vid_pid, f"{vid}:*") for entry in board_ids)


def guess_ports(ports: Sequence, boards: dict[str, tuple[str, ...]]) -> list[PortGuess]:
    """Describe pyserial ``ListPortInfo`` objects; ``boards`` maps board name -> its vid:pid list."""
    guesses = []
    for port in sorted(ports, key=lambda p: p.device):
        usb = vid_pid_text(port.vid, port.pid)
        matching = tuple(name for name, ids in sorted(boards.items()) if board_matches(usb, ids))
        description = port.description if port.description not in (None, "n/a") else ""
        guesses.append(PortGuess(port.device, description, usb, known_chip(port.vid, port.pid), matching))
    return guesses


def pick_port(guesses: list[PortGuess], board: str) -> str:
    """The only port that fits ``board``; otherwise stop and list what there is."""
    fitting = [g for g in guesses if board in g.boards]
    if len(fitting) == 1:
        return fitting[0].device
    if not fitting:
        listing = "; ".join(g.line() for g in guesses) or "no serial ports at all"
        raise DeviceError(f"no serial port looks like a {board} ({listing})",
                          hint="plug the board in (check the cable carries data), or pass --port")
    raise DeviceError(f"{len(fitting)} serial ports could be the {board}: "
                      + "; ".join(g.line() for g in fitting), hint="choose one with --port")


def list_serial_ports() -> list:
    """The host's serial ports as pyserial ``ListPortInfo`` objects."""
    from serial.tools import list_ports

    return list(list_ports.comports())


def holders(device: str, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """(pid, command name) of other processes that have ``device`` open (Linux /proc scan)."""
    try:
        target = os.path.realpath(device)
        entries = list(proc.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                if os.path.realpath(fd) == target:
                    name = (entry / "comm").read_text().strip()
                    found.append((int(entry.name), name))
                    break
            except OSError:
                continue
    return found


def check_port_usable(device: str) -> None:
    """Refuse a port we cannot open or that another program holds, saying how to fix it."""
    if "://" in device:
        return  # socket://, rfc2217:// and other pyserial URLs have no device node
    if not os.path.exists(device):
        raise DeviceError(f"serial port {device} does not exist",
                          hint="run `tinyml ports` to see what is plugged in")
    held = holders(device)
    if held:
        who = ", ".join(f"{name} (pid {pid})" for pid, name in held)
        raise DeviceError(f"serial port {device} is in use by {who}",
                          hint="close that program (a serial monitor?) and retry")
    if not os.access(device, os.R_OK | os.W_OK):  # not opened: opening toggles DTR and may reset the board
        raise DeviceError(f"permission denied opening {device}",
                          hint="add yourself to the dialout group (sudo usermod -aG dialout $USER) "
                               "and log in again")
