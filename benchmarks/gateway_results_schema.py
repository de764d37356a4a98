"""What each index of the gateway's `results` table costs per stored result (issue 20): the same rows
(64 devices round-robin, feat_ae-sized: 64 output bytes) inserted with ``executemany`` and committed
``--per-commit`` at a time, WAL and ``synchronous = FULL`` as the gateway runs, into a table that
already holds ``--prefill`` rows, for each variant of the schema. CPU time (process_time) per result
of the timed inserts and commits, median of ``--rounds``; the variants run in turn in each round.

Each index keyed by device gets a new row in each device's own leaf page, so a commit writes one
more page per device heard; an index by time or id only appends.

    .venv/bin/python benchmarks/gateway_results_schema.py [--per-commit 150] [--prefill 100000]
        [--results 30000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

DEVICES = 64
# name -> (type of device and port, UNIQUE (device, boot_id, seq), other indexes); CLUSTERED: the table
# itself WITHOUT ROWID keyed by (device, boot_id, seq), its id (given by the writer) indexed like the others
CLUSTERED = "clustered by (device, boot_id, seq), by id, by time"
VARIANTS = {
    "schema 3: unique, by time, by (device, id)": ("TEXT", True, ("received_at", "device, id")),
    "schema 4: unique, by time": ("TEXT", True, ("received_at",)),
    "unique only": ("TEXT", True, ()),
    "schema 4 with integer device and port keys": ("INTEGER", True, ("received_at",)),
    "by time only (no unique key)": ("TEXT", False, ("received_at",)),
    "no index": ("TEXT", False, ()),
    CLUSTERED: ("TEXT", False, ("id", "received_at")),
}
INSERT = ("INSERT INTO results (device, boot_id, seq, received_at, device_ms, latency, latency_unit, label, anomaly,"
          " score, output, port, authenticated, id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def rows(first: int, n: int, integer_keys: bool, rng: random.Random) -> list[tuple]:
    out = []
    for i in range(first, first + n):
        d, seq = i % DEVICES, i // DEVICES
        device, port = (d + 1, d + 1) if integer_keys else (f"emu-{d:03d}", f"socket://127.0.0.1:{7000 + d}")
        out.append((device, 7, seq, 1.7e9 + i / 7760, seq * 8, 1000, 1, rng.randrange(2), 0, rng.random(),
                    rng.randbytes(64), port, 0, i + 1))
    return out


def run(variant: str, prefill: int, n: int, per_commit: int) -> float:
    """CPU us per result of inserting and committing ``n`` rows after ``prefill``."""
    kind, unique, indexes = VARIANTS[variant]
    folder = Path(tempfile.mkdtemp(prefix="gw-schema-"))
    conn = sqlite3.connect(folder / "g.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        clustered = variant == CLUSTERED
        conn.execute(f"CREATE TABLE results (id INTEGER {'NOT NULL' if clustered else 'PRIMARY KEY'}, device {kind} NOT"
                     " NULL, boot_id INTEGER NOT NULL, seq INTEGER NOT NULL, received_at REAL NOT NULL, device_ms"
                     " INTEGER, latency INTEGER, latency_unit INTEGER, label INTEGER, anomaly INTEGER, score REAL,"
                     f" output BLOB, port {kind}, authenticated INTEGER{', UNIQUE (device, boot_id, seq)' if unique else ''}"
                     f"{', PRIMARY KEY (device, boot_id, seq)) WITHOUT ROWID' if clustered else ')'}")
        for i, columns in enumerate(indexes):
            conn.execute(f"CREATE INDEX results_{i} ON results ({columns})")
        rng = random.Random(1)
        conn.execute("BEGIN")
        conn.executemany(INSERT, rows(0, prefill, kind == "INTEGER", rng))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        timed = rows(prefill, n, kind == "INTEGER", rng)
        t0 = time.process_time()
        for k in range(0, n, per_commit):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT, timed[k:k + per_commit])
            conn.execute("COMMIT")
        return (time.process_time() - t0) / n * 1e6
    finally:
        conn.close()
        shutil.rmtree(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-commit", type=int, default=150)
    ap.add_argument("--prefill", type=int, default=100_000)
    ap.add_argument("--results", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            times[variant].append(run(variant, args.prefill, args.results, args.per_commit))
    print(f"{args.per_commit} results per commit after {args.prefill} stored, {DEVICES} devices, load average "
          f"{os.getloadavg()[0]:.1f}, median of {args.rounds} rounds, CPU us per result:")
    for variant, values in times.items():
        print(f"  {variant:52s} {statistics.median(values):6.1f}  ({', '.join(f'{t:.1f}' for t in values)})")


if __name__ == "__main__":
    main()
