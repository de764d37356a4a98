"""Flashing figures: esptool through the emulated ROM loader, UF2 conversion, sign and verify.

Run: .venv/bin/python benchmarks/flash_paths.py [--size-kib 512]
Prints a markdown table. The emulated loader answers at memory speed, so the esptool
figures measure esptool's ROM-protocol overhead on the host (no UART), an upper bound
for what a real 115200-921600 baud link can reach.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tinyml import signing
from tinyml.device.esp_rom import EspRomServer
from tinyml.flash import esp, uf2


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def app_image(size: int) -> bytes:
    """Firmware-like bytes: half code-ish (compressible), half random (constants, weights)."""
    half = size // 2
    return (bytes(range(256)) * (half // 256 + 1))[:half] + os.urandom(size - half)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-kib", type=int, default=512)
    args = parser.parse_args()
    size = args.size_kib * 1024
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        app = folder / "app.bin"
        app.write_bytes(app_image(size))
        image = esp.single_image(app, 0x10000)
        for compress in (True, False):
            with EspRomServer() as server:
                options = esp.EspOptions(port=server.endpoint, chip="esp32", before="no-reset", after="no-reset",
                                         compress=compress, stub=False)
                seconds = timed(lambda options=options: esp.flash_esp(image, options))
            label = "compressed" if compress else "uncompressed"
            rows.append((f"esptool ROM protocol, {args.size_kib} KiB {label}, write + MD5 verify",
                         f"{seconds:.2f} s ({size * 8 / seconds / 1000:.0f} kbit/s)"))
        data = app.read_bytes()
        seconds = timed(lambda: uf2.bin_to_uf2(data, 0x10000000, 0xE48BFF56))
        rows.append((f"UF2 conversion, {args.size_kib} KiB", f"{seconds * 1000:.1f} ms"))
        pub, _ = signing.keygen(folder / "key")
        seconds = timed(lambda: signing.sign_folder(folder, folder / "key"))
        rows.append((f"sign folder ({args.size_kib} KiB image)", f"{seconds * 1000:.1f} ms"))
        seconds = timed(lambda: signing.verify_folder(folder, [pub]))
        rows.append((f"verify folder ({args.size_kib} KiB image)", f"{seconds * 1000:.1f} ms"))
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
