"""ESP-IDF project settings taken from the board file.

The flash size and CPU clock go into ``sdkconfig.defaults``: without them IDF assumes 2 MB of
flash (and warns at every boot on a 4 or 8 MB module) and runs the ESP32 and S3 at 160 MHz.
(The IDF versions a project builds with are handled in the template's ``main/CMakeLists.txt``,
which picks the UART driver's component by ``IDF_VERSION``.)
"""

from __future__ import annotations

from typing import Any

from tinyml.errors import InputError
from tinyml.firmware.boards import Board

FLASH_SIZES_MB = (1, 2, 4, 8, 16, 32, 64, 128)  # CONFIG_ESPTOOLPY_FLASHSIZE_<N>MB choices
CPU_MHZ = {"esp32": (80, 160, 240), "esp32s3": (80, 160, 240), "esp32c3": (80, 160)}  # DEFAULT_CPU_FREQ choices


def sdkconfig_values(board: Board) -> dict[str, Any]:
    """Flash size (e.g. ``4MB``) and CPU clock in MHz for ``board``'s sdkconfig.defaults."""
    mb, rest = divmod(board.flash_bytes, 1 << 20)
    if rest or mb not in FLASH_SIZES_MB:
        raise InputError(f"board file {board.source}: memory.flash_bytes {board.flash_bytes} is not an ESP flash "
                         f"size", f"use one of {', '.join(f'{n} MiB' for n in FLASH_SIZES_MB)} in bytes")
    clock = board.hardware.get("clock_hz")
    allowed = CPU_MHZ.get(str(board.idf_target))
    if allowed is None:
        raise InputError(f"board file {board.source}: toolchain.idf_target {board.idf_target!r} is unknown here",
                         f"use one of: {', '.join(CPU_MHZ)}")
    if not isinstance(clock, int) or clock % 1_000_000 or clock // 1_000_000 not in allowed:
        raise InputError(f"board file {board.source}: hardware.clock_hz {clock!r} is not a CPU clock the "
                         f"{board.idf_target} offers", f"use one of {', '.join(f'{m}000000' for m in allowed)}")
    return {"flash_size": f"{mb}MB", "cpu_mhz": clock // 1_000_000}
