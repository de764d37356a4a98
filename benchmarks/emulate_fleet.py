"""How many emulated devices one core can serve at line rate, and what a reader receives.

Starts `tinyml emulate --count N --tcp 0 --rate line --baud B` as its own process, connects
to every device from this process, decodes everything for ``--seconds`` and prints what
arrived (frames/s, bytes/s against the line rate, bad frames) and the emulator's CPU use
(from /proc, user + system time over the window). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/emulate_fleet.py --count 64 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

from tinyml.device import protocol as p
from tinyml.paths import shared_dir


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--model", default=str(shared_dir() / "models" / "vib_cnn_int8.tflite"))
    args = ap.parse_args()

    emu = subprocess.Popen([sys.executable, "-m", "tinyml", "emulate", "--model", args.model, "--count",
                            str(args.count), "--tcp", "0", "--rate", "line", "--baud", str(args.baud)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        addresses = [emu.stdout.readline().split()[1] for _ in range(args.count)]
        sel = selectors.DefaultSelector()
        decoders = []
        for address in addresses:
            host, port = address.removeprefix("socket://").rsplit(":", 1)
            sock = socket.create_connection((host, int(port)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            decoders.append(p.Decoder())
            sel.register(sock, selectors.EVENT_READ, decoders[-1])
        seqs: dict[int, list[int]] = {}

        def pump(seconds: float) -> int:
            """Read and decode every device for ``seconds``; the number of RESULTs."""
            results, end = 0, time.monotonic() + seconds
            seqs.clear()
            while time.monotonic() < end:
                for key, _ in sel.select(0.1):
                    try:
                        data = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    for event in key.data.feed(data):
                        if isinstance(event, p.Result):
                            results += 1
                            seqs.setdefault(id(key.data), []).append(event.seq)
            return results

        pump(1.0)  # warm-up: every device's line budget fills, then the window is steady
        bytes0, bad0 = sum(d.bytes_in for d in decoders), sum(d.bad_frames for d in decoders)
        cpu0, t0, reader0 = cpu_seconds(emu.pid), time.monotonic(), time.process_time()
        results = pump(args.seconds)
        elapsed, cpu = time.monotonic() - t0, cpu_seconds(emu.pid) - cpu0
        reader_cpu = time.process_time() - reader0
        lost = sum(max(s) - min(s) + 1 - len(s) for s in seqs.values())
        received = sum(d.bytes_in for d in decoders) - bytes0
        bad = sum(d.bad_frames for d in decoders) - bad0
        line = args.count * args.baud / 10 * elapsed
        print(f"devices={args.count} baud={args.baud} window={elapsed:.1f}s model={Path(args.model).name}")
        print(f"results/s total={results / elapsed:.0f} per device={results / elapsed / args.count:.1f}")
        print(f"bytes received={received} ({100 * received / line:.1f}% of the line rate) bad_frames={bad}")
        print(f"results lost (seq gaps: dropped because the reader fell behind)={lost}")
        print(f"emulator CPU={100 * cpu / elapsed:.1f}% of one core, reader CPU={100 * reader_cpu / elapsed:.1f}%")
        per_result = cpu / max(results, 1)
        line_results = args.baud / 10 / (received / max(results, 1))  # results/s one device's line carries
        print(f"emulator CPU per result={per_result * 1e6:.1f} us -> one core serves about "
              f"{1 / (per_result * line_results):.0f} devices at line rate (load-independent estimate)")
    finally:
        emu.terminate()
        emu.wait(10)


if __name__ == "__main__":
    main()
