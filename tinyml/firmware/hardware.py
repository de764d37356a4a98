"""What a board file's ``[hardware]`` table may hold: the values the bare-metal templates use.

Checked when the board is loaded (``tinyml.firmware.boards``), so a misspelt key or an unknown
UART driver is one error naming the file and the key, not a template that fails to render
later. A new UART driver or exit method is one entry here plus its code in the templates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyml.flash.methods import Key, check_table

# UART drivers in firmware_templates/*/src, and the keys each needs
UART_DRIVERS: dict[str, tuple[str, ...]] = {
    "cmsdk": ("uart_base",),              # Arm CMSDK APB UART (MPS2/MPS3)
    "stm32-usart": ("uart_base",),
    "nrf-uart": ("uart_base", "uart_tx_pin", "uart_rx_pin"),
    "ns16550a": ("uart_base",),
    "simcall": (),                        # Xtensa ISS simcalls
}
# how an emulated program ends with an exit code
EXIT_METHODS: dict[str, tuple[str, ...]] = {
    "semihosting": (), "sifive-test": ("exit_base",), "simcall": (), "none": (),
}
KEYS: dict[str, Key] = {
    "uart": Key(str, choices=tuple(UART_DRIVERS)), "uart_base": Key(int), "uart_rx_irq": Key(int),
    "uart_irq": Key(int), "plic_base": Key(int), "uart_tx_pin": Key(int), "uart_rx_pin": Key(int),
    "clock_hz": Key(int), "fpu": Key(bool), "exit": Key(str, choices=tuple(EXIT_METHODS)), "exit_base": Key(int),
    "double_math": Key(bool),
    "onchip_temperature": Key(str),     # the on-chip sensor a --sensor can read (tinyml/firmware/sensors.py)
}


def check_hardware(table: dict[str, Any], path: Path) -> None:
    check_table(table, path, "hardware", KEYS)
    needed = [*UART_DRIVERS.get(table.get("uart", ""), ()), *EXIT_METHODS.get(table.get("exit", ""), ())]
    if "uart_irq" in table and "plic_base" not in table:
        needed.append("plic_base")
    for key in needed:
        if key not in table:
            raise_missing(path, key, table)


def raise_missing(path: Path, key: str, table: dict[str, Any]) -> None:
    from tinyml.errors import InputError

    why = f"uart {table['uart']!r}" if key in UART_DRIVERS.get(table.get("uart", ""), ()) else "this board"
    raise InputError(f"board file {path}: missing key hardware.{key} (needed by {why})", "add it (see docs/boards.md)")
