"""Cost of the Python protocol codec: encoding and decoding RESULT frames, clean and noisy.

    .venv/bin/python benchmarks/protocol_codec.py

Prints microseconds per frame (best of 5 runs of 20,000 frames); asserts nothing.
"""

from __future__ import annotations

import random
import time

from tinyml.device import protocol as p

FRAMES = 20_000


def best_of(fn, runs: int = 5) -> float:  # noqa: ANN001 - any zero-argument callable
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = random.Random(0)
    msgs = [p.Result(i, 7, i * 10, 300, p.LATENCY_US, 1, 0.75, tuple(rng.randrange(-128, 128) for _ in range(3)))
            for i in range(FRAMES)]
    stream = b"".join(p.encode(m) for m in msgs)
    noisy = bytearray(stream)
    for _ in range(FRAMES // 10):
        noisy[rng.randrange(len(noisy))] = rng.randrange(256)
    chunks = [stream[i:i + 64] for i in range(0, len(stream), 64)]

    enc = best_of(lambda: [p.encode(m) for m in msgs])
    dec = best_of(lambda: p.Decoder().feed(stream))

    def chunked() -> None:
        d = p.Decoder()
        for c in chunks:
            d.feed(c)

    dec_chunks = best_of(chunked)
    dec_noisy = best_of(lambda: p.Decoder().feed(bytes(noisy)))
    frame = len(stream) / FRAMES
    print(f"RESULT frame with 3 outputs: {frame:.0f} bytes; at 115200 baud a line carries {11520 / frame:.0f}/s")
    print(f"encode: {enc / FRAMES * 1e6:.2f} us/frame")
    print(f"decode, one buffer: {dec / FRAMES * 1e6:.2f} us/frame")
    print(f"decode, 64-byte reads: {dec_chunks / FRAMES * 1e6:.2f} us/frame")
    print(f"decode, 1 corrupted byte per 10 frames: {dec_noisy / FRAMES * 1e6:.2f} us/frame")


if __name__ == "__main__":
    main()
