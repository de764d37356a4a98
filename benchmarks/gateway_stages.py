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

The writer stages start from a fresh database, or with ``--history N`` from a copy of one that
holds N results per device already (deeper indexes, full drift baselines: a check every 20
results, as in a gateway that has run for a while); opening it is not timed.

MQTT publish and PUBACK are `benchmarks/gateway_forward_cpu.py` (per message; ``--batch N``).
CPU time (process_time), median of ``--runs``; a busy machine disturbs it far less than rates.

    .venv/bin/python benchmarks/gateway_stages.py [--devices 64] [--results 400] [--runs 5] [--history 1000]
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import shutil
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


def writer(mqtt: str | None, batch: bool, template: Path | None, fsync: bool = True) -> Processor:
    """A writer on a fresh database, or on a copy of ``template``; ``fsync=False`` as ``[ingest]
    fsync = false`` runs it."""
    db = Path(tempfile.mkdtemp(prefix="gw-stages-")) / "gateway.db"
    if template is not None:
        shutil.copyfile(template, db)
    cfg = parse_mqtt_url(mqtt, {"batch": batch}) if mqtt else None
    proc = Processor(Store(db, check=False), GatewayConfig(ports=(), db=db, mqtt=cfg))
    if not fsync:
        proc.store.conn.execute("PRAGMA synchronous = NORMAL")
    return proc


def write(proc: Processor, records: list[list[Record]], per_commit: int) -> None:
    """The writer over every line's records, ``per_commit`` results per transaction (round-robin by read)."""
    pending: list[Record] = []
    size = 0
    for group in zip(*records, strict=False):
        for rec in group:
            pending.append(rec)
            size += len(rec.results) if type(rec) is ResultsRecord else 0  # (reads of one frame: as many records)
            if size >= per_commit:
                proc.process(pending, 1.0)
                pending, size = [], 0
    proc.process(pending, 1.0)
    proc.store.close()


def split(records: list[Record], history: int) -> tuple[list[Record], list[Record]]:
    """A line's records cut after its first ``history`` results (a read that holds both cut in two)."""
    seen = 0
    for i, rec in enumerate(records):
        if type(rec) is ResultsRecord:
            if seen + len(rec.results) > history:
                k = history - seen
                head, tail = (ResultsRecord(rec.port, rec.device, part, rec.at, rec.authenticated)
                              for part in (rec.results[:k], rec.results[k:]))
                return [*records[:i], head], [tail, *records[i + 1:]]
            seen += len(rec.results)
    return records, []


def count(records: list[list[Record]]) -> int:
    return sum(len(rec.results) for recs in records for rec in recs if type(rec) is ResultsRecord)


def cpu(fn: Callable[..., object], runs: int, results: int,
        setup: Callable[[], object] | None = None) -> tuple[float, list[float]]:
    """CPU us per result of ``fn``, or of ``fn(setup())`` with the setup not timed (a writer's
    database is deleted after it, untimed too)."""
    times = []
    for _ in range(runs):
        arg = None if setup is None else setup()
        t0 = time.process_time()
        fn() if setup is None else fn(arg)
        times.append((time.process_time() - t0) / results * 1e6)
        if isinstance(arg, Processor):
            shutil.rmtree(arg.store.path.parent)
    return statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=64)
    ap.add_argument("--results", type=int, default=400, help="results per device")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--history", type=int, default=0, help="results per device stored before the writer stages")
    ap.add_argument("--only", default="", help="run only the stages whose name contains this")
    args = ap.parse_args()
    rng = random.Random(1)
    streams = [device_stream(i, args.results, rng, None) for i in range(args.devices)]
    n = args.devices * args.results
    records = decode(streams)
    # The writer stages time the same results, after ``history`` stored ones when asked (the devices' streams
    # then go on: the stored part is written once into a template database the stages copy).
    longer = ([device_stream(i, args.history + args.results, random.Random(i), None) for i in range(args.devices)]
              if args.history else streams)

    def after_history(lines: list[list[Record]]) -> tuple[list[list[Record]], list[list[Record]]]:
        if not args.history:
            return [], lines
        stored, rest = zip(*(split(recs, args.history) for recs in lines), strict=True)
        return list(stored), list(rest)

    template = None
    stored, written = after_history(decode(longer))
    if stored:
        proc = writer(None, False, None)
        write(proc, stored, 2000)
        template = proc.store.path
    n_written = count(written)
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
    def stage(mqtt_url: str | None, batch: bool, per_commit: int, fsync: bool = True,
              lines: list[list[Record]] | None = None) -> tuple[Callable[[Processor], None], Callable[[], Processor]]:
        """A writer stage: the timed writes, and the untimed opening of their database."""
        timed = written if lines is None else lines
        return (lambda proc: write(proc, timed, per_commit), lambda: writer(mqtt_url, batch, template, fsync))

    by_frames = {k: after_history(decode(longer, k))[1] for k in (1, 3)}
    stages: list[tuple[str, Callable[..., object], Callable[[], object] | None]] = [
        ("decode", lambda: decode(streams), None),
        ("decode, 1 frame per read (ports read when readable)", lambda: decode(streams, 1), None),
        ("decode, 3 frames per read (ports polled, [ingest] poll_ms)", lambda: decode(streams, 3), None),
        ("rules and drift", rules_and_drift, None),
        ("JSON of the result message", json_only, None),
        ("store, no MQTT (rules, drift, counters inside), 2000 per commit", *stage(None, False, 2000)),
        ("store + outbox, one row per result, 2000 per commit", *stage(mqtt, False, 2000)),
        ("store + outbox, [mqtt] batch, 2000 per commit", *stage(mqtt, True, 2000)),
        ("store + outbox, one row per result, 8 per commit", *stage(mqtt, False, 8)),
        ("store + outbox, [mqtt] batch, 8 per commit", *stage(mqtt, True, 8)),
        ("store + outbox, [mqtt] batch, 8 per commit, [ingest] fsync = false", *stage(mqtt, True, 8, False)),
        ("store + outbox, [mqtt] batch, 150 per commit (paced, 64 devices)", *stage(mqtt, True, 150)),
        ("the same, the records of reads of 1 frame", *stage(mqtt, True, 150, lines=by_frames[1])),
        ("the same, the records of reads of 3 frames", *stage(mqtt, True, 150, lines=by_frames[3])),
        ("shard pipe: pack a read's records (shard)", lambda: [pack(recs) for recs in records], None),
        ("shard pipe: unpack them (writer)", lambda: [unpack(m) for m in packed], None),
        ("shard pipe, not used: pickle.dumps of the record objects", lambda: [pickle.dumps(r) for r in records], None),
        ("shard pipe, not used: pickle.loads of them", lambda: [pickle.loads(m) for m in pickled], None),  # noqa: S301
    ]
    print(f"{args.devices} devices x {args.results} results ({len(streams[0]) // (args.results + 1)} B frames, "
          f"writer stages after {args.history} stored per device), "
          f"load average {os.getloadavg()[0]:.1f}, median of {args.runs} runs, CPU us per result:")
    try:
        for name, fn, setup in stages:
            if args.only and args.only not in name:
                continue
            med, times = cpu(fn, args.runs, n if setup is None else n_written, setup)
            print(f"  {name:66s} {med:6.1f}  ({', '.join(f'{t:.1f}' for t in times)})", flush=True)
    finally:
        if template is not None:
            shutil.rmtree(template.parent)


if __name__ == "__main__":
    main()
