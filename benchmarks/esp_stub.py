"""Flasher stub versus ROM loader on the emulated ESP32: write + verify and read-back times.

Run: .venv/bin/python benchmarks/esp_stub.py [--size-kib 512] [--repeat 3]
Prints a markdown table of medians. The emulated loader answers at memory speed, so the
figures are esptool's host-side protocol cost per path (block size, round trips, MD5 form),
not a UART's: on hardware the line rate dominates.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

from tinyml.device.esp_rom import EspRomServer
from tinyml.flash import esp


def firmware_like(size: int) -> bytes:
    """Half repetitive (compresses like code), half random (like weights)."""
    half = size // 2
    return (bytes(range(256)) * (half // 256 + 1))[:half] + os.urandom(size - half)


def time_write(image: esp.EspImage, stub: bool, compress: bool, pty: bool) -> float:
    with EspRomServer(tcp_port=None if pty else 0, pty=pty) as server:
        options = esp.EspOptions(port=server.endpoint, chip="esp32", before="no-reset", after="no-reset",
                                 compress=compress, stub=stub)
        start = time.perf_counter()
        esp.flash_esp(image, options)
        return time.perf_counter() - start


def time_read(data: bytes, pty: bool) -> float:
    """esptool's stub READ_FLASH of ``data`` preloaded at 0x10000 (the ROM has no fast read)."""
    from esptool.cmds import connect_esp, run_stub

    with EspRomServer(tcp_port=None if pty else 0, pty=pty) as server:
        server.loader.flash[0x10000:0x10000 + len(data)] = data
        with contextlib.redirect_stdout(io.StringIO()):  # esptool's connection chatter
            loader = run_stub(connect_esp(port=server.endpoint, chip="esp32", before="no-reset"))
        try:
            start = time.perf_counter()
            back = loader.read_flash(0x10000, len(data))
            seconds = time.perf_counter() - start
        finally:
            loader._port.close()
    assert back == data, "read-back differs"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-kib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_kib * 1024
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "app.bin"
        app.write_bytes(firmware_like(size))
        image = esp.single_image(app, 0x10000)
        for transport, pty in (("TCP", False), ("pty", True)):
            for stub in (False, True):
                for compress in (True, False):
                    runs = [time_write(image, stub, compress, pty) for _ in range(args.repeat)]
                    seconds = statistics.median(runs)
                    path = "stub" if stub else "ROM"
                    kind = "compressed" if compress else "uncompressed"
                    rows.append((f"{transport}: {path}, {args.size_kib} KiB {kind}, write + MD5 verify",
                                 f"{seconds:.2f} s ({size * 8 / seconds / 1000:.0f} kbit/s)"))
            seconds = statistics.median(time_read(app.read_bytes(), pty) for _ in range(args.repeat))
            rows.append((f"{transport}: stub READ_FLASH, {args.size_kib} KiB",
                         f"{seconds:.2f} s ({size * 8 / seconds / 1000:.0f} kbit/s)"))
    print(f"load average {os.getloadavg()[0]:.1f}, median of {args.repeat}")
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
