"""Gateway ingest CPU cost without sockets or MQTT: N devices' RESULT streams decoded by the
line state and committed by the writer (SQLite, outbox rows included) in batches as
`gateway run` makes them. Prints CPU microseconds per result (median of the runs), which a
busy machine disturbs far less than wall-clock rates; ``--profile`` prints the top functions.

    .venv/bin/python benchmarks/gateway_ingest_cpu.py [--devices 64] [--results 400] [--runs 3] [--profile]
        [--read-size 4096]   (e.g. 94: one frame per read, as at low rates)
        [--auth]             devices with keys: AUTH_RESULT frames, each MAC checked (issue 16)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import statistics
import tempfile
import time
from pathlib import Path

from tinyml.device import auth, protocol
from tinyml.gateway.config import GatewayConfig, parse_mqtt_url
from tinyml.gateway.identity import AuthConfig, Identity
from tinyml.gateway.ingest import LineState, Record, batch_size
from tinyml.gateway.processor import Processor
from tinyml.gateway.service import BATCH_MAX
from tinyml.gateway.store import Store

OUTPUTS = 64  # the feat_ae model's output size


def hello(device: int) -> protocol.Hello:
    return protocol.Hello(1, "bench", "1", f"dev{device}", bytes(8), 0, 0, OUTPUTS, 7, protocol.LATENCY_US)


def device_stream(device: int, results: int, rng: random.Random, key: bytes | None) -> bytes:
    """The device's results (after its HELLO when it has no key: a keyed one proves itself in ``ingest``)."""
    frames = [] if key else [protocol.encode(hello(device))]
    for seq in range(results):
        r = protocol.Result(seq, 7, seq * 10, 1000, protocol.LATENCY_US, rng.randrange(2), rng.random(),
                            tuple(rng.randrange(-128, 128) for _ in range(OUTPUTS)))
        frames.append(protocol.encode(auth.authenticated_result(key, r) if key else r))
    return b"".join(frames)


def ingest(processor: Processor, streams: list[bytes], read_size: int, keys: dict[str, bytes]) -> None:
    """Read every line round-robin in pieces of read_size; commit a batch whenever it is full.
    Keyed devices first answer their line's challenge (not timed apart: once per line)."""
    identity = Identity(AuthConfig("keys", "required" if keys else "optional"), keys)
    lines = [LineState(f"port{i}", identity=identity) for i in range(len(streams))]
    batch: list[Record] = []
    for i, line in enumerate(lines):
        key = keys.get(f"dev{i}")
        if key:
            batch += line.feed(protocol.encode(hello(i)), time.time())
            nonce = next(e.nonce for e in protocol.Decoder().feed(line.take_outgoing())
                         if isinstance(e, protocol.AuthChallenge))
            batch += line.feed(protocol.encode(auth.authenticated_hello(key, hello(i), nonce)), time.time())
    size = 0
    for pos in range(0, max(map(len, streams)), read_size):
        for line, stream in zip(lines, streams, strict=True):
            records = line.feed(stream[pos:pos + read_size], time.time())
            batch += records
            size += batch_size(records)
        if size >= BATCH_MAX:
            processor.process(batch, time.time())
            batch, size = [], 0
    processor.process(batch, time.time())


def run_once(streams: list[bytes], read_size: int, profile: cProfile.Profile | None,
             keys: dict[str, bytes]) -> tuple[int, float]:
    """Ingest into a fresh database; returns (results stored, CPU seconds)."""
    db = Path(tempfile.mkdtemp(prefix="gw-ingest-")) / "gateway.db"
    config = GatewayConfig(ports=(), db=db, mqtt=parse_mqtt_url("mqtt://127.0.0.1:1883"))
    store = Store(db)
    processor = Processor(store, config)
    t0 = time.process_time()
    if profile:
        profile.runcall(ingest, processor, streams, read_size, keys)
    else:
        ingest(processor, streams, read_size, keys)
    cpu = time.process_time() - t0
    stored = store.result_count()
    store.close()
    return stored, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=64)
    ap.add_argument("--results", type=int, default=400, help="results per device")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--read-size", type=int, default=4096, help="bytes per port read (the gateway reads up to 4096)")
    ap.add_argument("--profile", action="store_true", help="cProfile one run, print the top functions")
    ap.add_argument("--auth", action="store_true", help="devices with keys: every result's MAC is checked")
    args = ap.parse_args()
    rng = random.Random(1)
    keys = {f"dev{i}": bytes([i % 256]) * 32 for i in range(args.devices)} if args.auth else {}
    streams = [device_stream(i, args.results, rng, keys.get(f"dev{i}")) for i in range(args.devices)]
    profile = cProfile.Profile() if args.profile else None
    per_result = []
    for _ in range(1 if profile else args.runs):
        stored, cpu = run_once(streams, args.read_size, profile, keys)
        per_result.append(cpu / stored * 1e6)
    print(f"{args.devices} {'authenticated ' if keys else ''}devices x {args.results} results, "
          f"{len(streams[0]) // (args.results + 1)} B per frame, "
          f"{args.read_size} B reads, "
          f"{stored} stored per run, load average {os.getloadavg()[0]:.1f}: "
          f"{statistics.median(per_result):.1f} us of CPU per result (runs: {', '.join(f'{x:.1f}' for x in per_result)})")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
