"""The gateway's per-stage CPU budget per result (issue 20): each stage of `gateway run` timed on
its own, on the same 64 devices' RESULT streams (feat_ae-sized frames, 4 KiB reads).

- decode: the line state (`LineState.feed`: frames -> records), also at 1 and 3 frames per read;
- rules and drift: `DeviceRules.on_result` and `DriftMonitor.observe` for every result;
- JSON: the result message (`_result_json`) for every result;
- store: the writer's transaction without MQTT (results, counters, rules and drift inside);
- store + outbox: the writer with one outbox row per result, or with ``[mqtt] batch``;
- commit size: the writer at 8 results per transaction (what a low load gives with group
  commit), at 150 (a paced commit at 64 devices on line rate; also with the records of reads of
  1 and 3 frames) and at 2,000, and at 8 without a flush per commit (``[ingest] fsync = false``);
- shard pipe (``[ingest] shards``): packing a read's records in the shard and unpacking them
  in the writer (tinyml/gateway/shards.py), against pickling the record objects as they are.

MQTT publish and PUBACK are `benchmarks/gateway_forward_cpu.py` (per message; ``--batch N``).
CPU time (process_time), median of ``--runs``; a busy machine disturbs it far less than rates.

    .venv/bin/python benchmarks/gateway_stages.py [--devices 64] [--results 400] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.gateway_ingest_cpu import device_stream
from tinyml.gateway.config import GatewayConfig, parse_mqtt_url
from tinyml.gateway.drift import DriftConfig, DriftMonitor
from tinyml.gateway.ingest import LineState, Record, ResultsRecord
from tinyml.gateway.processor import Processor, _result_json, _source_json
from tinyml.gateway.rules import DeviceRules, RuleConfig
from tinyml.gateway.shards import pack, unpack
from tinyml.gateway.store import Store

READ = 4096


def decode(streams: list[bytes], frames_per_read: int = 0) -> list[list[Record]]:
    """Each line's reads decoded into records, as the port readers do: 4 KiB reads, or reads of
    ``frames_per_read`` whole frames (what a port read at line rate holds: about one when read as
    soon as it is readable, two or three when polled every 16-32 ms, ``[ingest] poll_ms``)."""
    out = []
    for i, stream in enumerate(streams):
        line = LineState(f"port{i}")
        if frames_per_read:
            frames = [b"\x00" + f + b"\x00" for f in stream.split(b"\x00") if f]
            reads = [b"".join(frames[j:j + frames_per_read]) for j in range(0, len(frames), frames_per_read)]
        else:
            reads = [stream[pos:pos + READ] for pos in range(0, len(stream), READ)]
        out.append([r for data in reads for r in line.feed(data, 1.0)])
    return out


def write(records: list[list[Record]], mqtt: str | None, batch: bool, per_commit: int, fsync: bool = True) -> None:
    """The writer over every line's records, ``per_commit`` results per transaction (round-robin
    by read); ``fsync=False`` as ``[ingest] fsync = false`` runs it."""
    db = Path(tempfile.mkdtemp(prefix="gw-stages-")) / "gateway.db"
    cfg = parse_mqtt_url(mqtt, {"batch": batch}) if mqtt else None
    proc = Processor(Store(db), GatewayConfig(ports=(), db=db, mqtt=cfg))
    if not fsync:
        proc.store.conn.execute("PRAGMA synchronous = NORMAL")
    pending: list[Record] = []
    size = 0
    for group in zip(*records, strict=False):
        for rec in group:
            pending.append(rec)
            size += len(rec.results) if type(rec) is ResultsRecord else 1
            if size >= per_commit:
                proc.process(pending, 1.0)
                pending, size = [], 0
    proc.process(pending, 1.0)
    proc.store.close()


def cpu(fn: Callable[[], object], runs: int, results: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) / results * 1e6)
    return statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=64)
    ap.add_argument("--results", type=int, default=400, help="results per device")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(1)
    streams = [device_stream(i, args.results, rng, None) for i in range(args.devices)]
    n = args.devices * args.results
    records = decode(streams)
    results = [r for recs in records for rec in recs if type(rec) is ResultsRecord for r in rec.results]
    mqtt = "mqtt://127.0.0.1:1883"

    def rules_and_drift() -> None:
        rules, drift = DeviceRules(RuleConfig(), 0.5), DriftMonitor(DriftConfig(), None)
        for r in results:
            rules.on_result(bool(r.label), r.score, 1.0)
            drift.observe(r.score)

    def json_only() -> None:
        source = _source_json("socket://127.0.0.1:7000", False)
        for r in results:
            _result_json('"default"', '"dev7"', r, "1764201600.123456", "null", bool(r.label), source)

    packed = [pack(recs) for recs in records]
    pickled = [pickle.dumps(recs, protocol=pickle.HIGHEST_PROTOCOL) for recs in records]
    by_frames = {k: decode(streams, k) for k in (1, 3)}
    stages: list[tuple[str, Callable[[], object]]] = [
        ("decode", lambda: decode(streams)),
        ("decode, 1 frame per read (ports read when readable)", lambda: decode(streams, 1)),
        ("decode, 3 frames per read (ports polled, [ingest] poll_ms)", lambda: decode(streams, 3)),
        ("rules and drift", rules_and_drift),
        ("JSON of the result message", json_only),
        ("store, no MQTT (rules, drift, counters inside), 2000 per commit", lambda: write(records, None, False, 2000)),
        ("store + outbox, one row per result, 2000 per commit", lambda: write(records, mqtt, False, 2000)),
        ("store + outbox, [mqtt] batch, 2000 per commit", lambda: write(records, mqtt, True, 2000)),
        ("store + outbox, one row per result, 8 per commit", lambda: write(records, mqtt, False, 8)),
        ("store + outbox, [mqtt] batch, 8 per commit", lambda: write(records, mqtt, True, 8)),
        ("store + outbox, [mqtt] batch, 8 per commit, [ingest] fsync = false", lambda: write(records, mqtt, True, 8, False)),
        ("store + outbox, [mqtt] batch, 150 per commit (paced, 64 devices)", lambda: write(records, mqtt, True, 150)),
        ("the same, the records of reads of 1 frame", lambda: write(by_frames[1], mqtt, True, 150)),
        ("the same, the records of reads of 3 frames", lambda: write(by_frames[3], mqtt, True, 150)),
        ("shard pipe: pack a read's records (shard)", lambda: [pack(recs) for recs in records]),
        ("shard pipe: unpack them (writer)", lambda: [unpack(m) for m in packed]),
        ("shard pipe, not used: pickle.dumps of the record objects", lambda: [pickle.dumps(r) for r in records]),
        ("shard pipe, not used: pickle.loads of them", lambda: [pickle.loads(m) for m in pickled]),  # noqa: S301
    ]
    print(f"{args.devices} devices x {args.results} results ({len(streams[0]) // (args.results + 1)} B frames), "
          f"load average {os.getloadavg()[0]:.1f}, median of {args.runs} runs, CPU us per result:")
    for name, fn in stages:
        med, times = cpu(fn, args.runs, n)
        print(f"  {name:66s} {med:6.1f}  ({', '.join(f'{t:.1f}' for t in times)})", flush=True)


if __name__ == "__main__":
    main()
