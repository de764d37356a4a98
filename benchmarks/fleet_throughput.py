"""Fleet consumers into PostgreSQL: results per second with 1, 2 and 4 consumers, CPU per
result, and latency from the device frame to the committed fleet row.

Throughput: a synthetic publisher (the gateway's own payload encoder, QoS 1) queues
``--results`` messages in the consumers' persistent shared-subscription sessions while they
are stopped, then the consumers (`tinyml fleet run` child processes, one group) start and
drain them: the input is then faster than any gateway (the whole backlog is there at once),
and the figure is what the consumers and PostgreSQL sustain. Rate = results / (last commit -
first commit), from PostgreSQL's commit timestamps (``track_commit_timestamp``). CPU per
result = the consumers' CPU time (/proc, after start-up) / results; likewise PostgreSQL's
(postmaster and backends) and Mosquitto's while the backlog drains.

Latency: emulated devices -> `tinyml gateway run` -> Mosquitto -> one consumer -> PostgreSQL,
per row commit time minus the gateway's ``received_at`` (the frame's arrival on the serial
line, same machine clock): p50 and p95.

    .venv/bin/python benchmarks/fleet_throughput.py [--results 30000] [--consumers 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinyml.device.emulator import EmulatedFleet
from tinyml.fleet.localpg import LocalPostgres
from tinyml.fleet.synthetic import Publisher
from tinyml.gateway.broker import LocalBroker
from tinyml.paths import shared_dir

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = "extract(epoch from pg_xact_commit_timestamp(xmin))"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(pg: LocalPostgres) -> float:
    """CPU seconds of the cluster: the postmaster and its children (the consumers' backends)."""
    root = int((pg.data / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, ppid = int(stat.parent.name), int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if root in (pid, ppid):
                total += cpu_seconds(pid)
        except (OSError, ValueError):
            continue
    return total


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


class Consumers:
    def __init__(self, work: Path, broker: LocalBroker, db: str, env: dict[str, str], n: int, tag: str):
        self.logs = [work / f"{tag}-c{i}-{time.monotonic_ns()}.log" for i in range(n)]
        self.procs = [subprocess.Popen([sys.executable, "-m", "tinyml", "fleet", "run", "--mqtt", broker.url, "--db", db,
                                        "--group", f"bench-{tag}", "--client-id", f"{tag}-c{i}"],
                                       stderr=open(log, "w"), cwd=ROOT, env={**os.environ, **env})  # noqa: SIM115
                      for i, log in enumerate(self.logs)]
        wait_for(lambda: all("MQTT connected" in log.read_text() for log in self.logs), 120, "consumers connected")

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(60)


def throughput(work: Path, broker: LocalBroker, pg: LocalPostgres, n: int, results: int) -> dict[str, float]:
    database = f"bench_{n}"
    pg.sql(f"DROP DATABASE IF EXISTS {database}", database="postgres")
    pg.sql(f"CREATE DATABASE {database}", database="postgres")
    db = f"postgresql://{pg.user}@127.0.0.1:{pg.port}/{database}"
    tag = f"n{n}"
    Consumers(work, broker, db, pg.env(), n, tag).stop()  # sessions and shared subscriptions exist, offline
    pub = Publisher("127.0.0.1", broker.port)
    t0 = time.monotonic()
    pub.run(site="bench", devices=100, count=results // 100, rate=0)
    pub.wait_acked(results, 600)
    publish_rate = results / (time.monotonic() - t0)
    pub.close()
    consumers = Consumers(work, broker, db, pg.env(), n, tag)
    cpu0, pg0, mq0 = consumers.cpu(), postgres_cpu(pg), cpu_seconds(broker.proc.pid)

    def stored() -> int:
        return pg.sql("SELECT count(*) FROM results", database=database)[0][0]

    wait_for(lambda: stored() >= results, 900, "backlog stored")
    cpu, pg_cpu = consumers.cpu() - cpu0, postgres_cpu(pg) - pg0
    mq_cpu = cpu_seconds(broker.proc.pid) - mq0
    consumers.stop()
    first, last = pg.sql(f"SELECT min({COMMITTED}), max({COMMITTED}) FROM results", database=database)[0]
    return {"consumers": n, "publish_rate": publish_rate, "rate": results / max(last - first, 1e-9),
            "cpu_us": cpu * 1e6 / results, "pg_us": pg_cpu * 1e6 / results, "broker_us": mq_cpu * 1e6 / results}


def latency(work: Path, broker: LocalBroker, pg: LocalPostgres, devices: int, rate: float, seconds: float) -> np.ndarray:
    pg.sql("DROP DATABASE IF EXISTS bench_latency", database="postgres")
    pg.sql("CREATE DATABASE bench_latency", database="postgres")
    db = f"postgresql://{pg.user}@127.0.0.1:{pg.port}/bench_latency"
    consumers = Consumers(work, broker, db, pg.env(), 1, "lat")
    fleet = EmulatedFleet(shared_dir() / "models" / "feat_ae_int8.tflite", count=devices, tcp_port=0, rate=rate, seed=1)
    fleet.start()
    gw = subprocess.Popen([sys.executable, "-m", "tinyml", "gateway", "run", "--db", str(work / "gw.db"), "--mqtt",
                           broker.url, "--site", "lat", *[x for e in fleet.endpoints for x in ("--port", e)]],
                          stderr=open(work / "gateway.log", "w"), cwd=ROOT)  # noqa: SIM115
    try:
        time.sleep(5.0 + seconds)
    finally:
        fleet.stop()
        gw.terminate()
        gw.wait(60)
        time.sleep(2.0)
        consumers.stop()
    rows = pg.sql(f"SELECT {COMMITTED} - received_at FROM results ORDER BY received_at", database="bench_latency")
    lat = np.array([r[0] for r in rows], dtype=float) * 1000
    return lat[len(lat) // 5:]  # without the first fifth (start-up)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=int, default=30000)
    ap.add_argument("--consumers", default="1,2,4")
    ap.add_argument("--latency-devices", type=int, default=8)
    ap.add_argument("--latency-rate", type=float, default=20.0, help="results/s per emulated device")
    ap.add_argument("--latency-seconds", type=float, default=15.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    pg = LocalPostgres()
    broker = LocalBroker(work, durable=True).start()
    try:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; PostgreSQL fsync on, "
              f"synchronous_commit on; {args.results} results per run")
        for n in (int(x) for x in args.consumers.split(",")):
            r = throughput(work, broker, pg, n, args.results)
            print(f"{n} consumer(s): {r['rate']:6.0f} results/s committed; CPU per result: consumers "
                  f"{r['cpu_us']:.0f} us, PostgreSQL {r['pg_us']:.0f} us, Mosquitto {r['broker_us']:.0f} us "
                  f"(sending the backlog); publisher queued {r['publish_rate']:.0f} results/s", flush=True)
        lat = latency(work, broker, pg, args.latency_devices, args.latency_rate, args.latency_seconds)
        p50, p95 = np.percentile(lat, [50, 95])
        print(f"device frame -> committed fleet row ({args.latency_devices} devices x {args.latency_rate:g}/s, "
              f"1 consumer): p50 {p50:.0f} ms, p95 {p95:.0f} ms ({lat.size} results)")
    finally:
        broker.stop()
        pg.cleanup()


if __name__ == "__main__":
    main()
