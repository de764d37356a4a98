""""Flashing" an emulated board: check the ELF suits the emulator and give its command line.

QEMU loads the ELF itself (``-kernel``), so there is nothing to write; what can go wrong
is handing it a file for another CPU, which QEMU reports obscurely or not at all.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tinyml.device.endpoints import qemu_chardev
from tinyml.errors import InputError
from tinyml.firmware.boards import Board

ELF_MAGIC = b"\x7fELF"
# e_machine values of the CPUs our emulators run.
MACHINES = {40: "ARM", 243: "RISC-V", 94: "Xtensa"}
EMULATOR_MACHINE = {"qemu-system-arm": 40, "qemu-system-riscv32": 243, "qemu-system-xtensa": 94}


def elf_machine(path: Path) -> int:
    """The ``e_machine`` of a 32-bit ELF file, refusing anything that is not one."""
    try:
        header = path.read_bytes()[:20]
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", hint="build the firmware first") from exc
    if len(header) < 20 or header[:4] != ELF_MAGIC:
        raise InputError(f"{path} is not an ELF file", hint="emulated boards run the .elf from FW/build/")
    if header[4] != 1:
        raise InputError(f"{path} is a 64-bit ELF", hint="build for the board's 32-bit CPU")
    endian = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack_from(endian + "H", header, 18)
    return machine


def check_elf_for_board(path: Path, board: Board) -> None:
    """Refuse an ELF whose CPU does not match the board's emulator."""
    if not board.emulator_command:
        raise InputError(f"board {board.name!r} has no emulator", hint="use a qemu-* board")
    expected = EMULATOR_MACHINE.get(Path(board.emulator_command[0]).name)
    machine = elf_machine(path)
    if expected is not None and machine != expected:
        raise InputError(f"{path.name} is built for {MACHINES.get(machine, f'machine {machine}')}, "
                         f"but {board.name} emulates {MACHINES[expected]}",
                         hint=f"rebuild the firmware with --board {board.name}")


def emulator_command(path: Path, board: Board, tcp_port: int = 5555) -> list[str]:
    """The emulator argv for ``path`` with its serial port on 127.0.0.1:``tcp_port``."""
    check_elf_for_board(path, board)
    return board.emulator_argv(path.resolve(), qemu_chardev(tcp_port))
