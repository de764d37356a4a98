"""The Python decoder on floods (issue 16): one feed of printable lines, a printable run without
newlines, and random bytes, at growing sizes. Linear decoding shows as a flat ns/byte column and
a 256 KB / 64 KB time ratio near 4 (it was ~12 when each cut re-scanned the run).

    .venv/bin/python benchmarks/decoder_flood.py

Prints the median of 5 runs per case; asserts nothing.
"""

from __future__ import annotations

import random
import statistics
import time

from tinyml.device.protocol import Decoder

SIZES_KB = (16, 64, 256)


def flood(kind: str, size: int) -> bytes:
    if kind == "lines 'A\\n'":
        return b"A\n" * (size // 2)
    if kind == "printable, no newline":
        return b"A" * size
    return random.Random(0).randbytes(size)


def median_seconds(data: bytes, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        Decoder().feed(data)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    print(f"{'flood':24} {'size':>7} {'median ms':>10} {'ns/byte':>8}")
    for kind in ("lines 'A\\n'", "printable, no newline", "random bytes"):
        seconds = {}
        for kb in SIZES_KB:
            seconds[kb] = median_seconds(flood(kind, kb * 1024))
            print(f"{kind:24} {kb:>5}KB {seconds[kb] * 1e3:>10.2f} {seconds[kb] / (kb * 1024) * 1e9:>8.1f}")
        print(f"{kind:24} ratio 256KB/64KB = {seconds[256] / seconds[64]:.2f} (linear: 4)")


if __name__ == "__main__":
    main()
