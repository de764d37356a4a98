"""Gateway throughput: N emulated devices at full 115200-baud line rate -> `tinyml gateway run`
(a child process, as deployed) -> a real Mosquitto -> a subscriber.

Prints results per second ingested and stored, frames per second decoded, the gateway's CPU
use, and p50/p95/p99 latency from the frame's arrival at the gateway (``received_at`` in the
payload, wall clock) to its delivery by the broker to a subscriber on the same machine.

    .venv/bin/python benchmarks/gateway_throughput.py [--devices 64] [--rate line|N] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tinyml.device.emulator import EmulatedFleet
from tinyml.gateway.broker import LocalBroker
from tinyml.paths import shared_dir

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int, *, thread: int | None = None) -> float:
    """CPU time of a process, or of one of its threads (``thread``: its id; a process's main thread has the pid)."""
    fields = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0] or 0)
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--rate", default="line", help="results per second per device, or 'line' (line rate)")
    ap.add_argument("--model", default=str(shared_dir() / "models" / "feat_ae_int8.tflite"))
    args = ap.parse_args()

    rate = math.inf if args.rate == "line" else float(args.rate)
    # the fleet loads the model first: a bad --model fails before a broker is left running
    fleet = EmulatedFleet(args.model, count=args.devices, tcp_port=0, rate=rate, baud=args.baud, seed=1)
    work = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    broker = LocalBroker(work).start()
    latencies: list[float] = []
    lock = threading.Lock()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        if msg.topic.endswith("/result"):
            with lock:
                latencies.append(now - json.loads(msg.payload)["received_at"])

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("tinyml/#", qos=0)  # QoS 0 to the subscriber: no broker-side in-flight limit
    sub.loop_start()

    fleet.start()
    db = work / "gateway.db"
    cmd = [sys.executable, "-m", "tinyml", "gateway", "run", "--db", str(db), "--mqtt", broker.url,
           *[x for e in fleet.endpoints for x in ("--port", e)]]
    gw = subprocess.Popen(cmd, stderr=open(work / "gateway.log", "w"), cwd=ROOT)  # noqa: SIM115
    try:
        time.sleep(5.0)  # start-up and connections
        with lock:
            latencies.clear()
        r0, f0 = count(db, "SELECT count(*) FROM results"), count(db, "SELECT sum(frames) FROM devices")
        o0 = count(db, "SELECT count(*) FROM outbox")
        c0, t0 = cpu_seconds(gw.pid), time.monotonic()
        produced0 = sum(d.stats.results for d in fleet.devices)
        time.sleep(args.seconds)
        r1, f1 = count(db, "SELECT count(*) FROM results"), count(db, "SELECT sum(frames) FROM devices")
        o1 = count(db, "SELECT count(*) FROM outbox")
        c1, t1 = cpu_seconds(gw.pid), time.monotonic()
        produced1 = sum(d.stats.results for d in fleet.devices)
        dropped = sum(d.stats.bytes_dropped for d in fleet.devices)
        with lock:
            lat = np.array(latencies) * 1000
        fleet.stop()
        t_stop = time.monotonic()
        gw.terminate()
        gw.wait(120)
        stop_s = time.monotonic() - t_stop
        final = count(db, "SELECT count(*) FROM results")
    finally:
        if gw.poll() is None:
            gw.kill()
        fleet.stop()
        sub.loop_stop()
        broker.stop()
    span = t1 - t0
    pace = f"line rate ({args.baud / 10:.0f} B/s each)" if args.rate == "line" else f"{args.rate} results/s each"
    print(f"devices: {args.devices} at {args.baud} baud, {pace}, {span:.1f} s measured, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"devices produced:        {(produced1 - produced0) / span:9.0f} results/s "
          f"(bytes nobody read: {dropped})")
    print(f"gateway stored:          {(r1 - r0) / span:9.0f} results/s")
    print(f"gateway decoded:         {(f1 - f0) / span:9.0f} frames/s")
    print(f"gateway forwarded:       {((r1 - r0) - (o1 - o0)) / span:9.0f} results/s acknowledged by the broker "
          f"(outbox {o0} -> {o1})")
    print(f"backlog at stop:         {final - r1:9d} results, committed in {stop_s:.1f} s after SIGTERM")
    cpu = (c1 - c0) / span
    print(f"gateway CPU:             {cpu:9.0%} of one core")
    print(f"gateway efficiency:      {(r1 - r0) / max(c1 - c0, 1e-9):9.0f} results stored per CPU-second, "
          f"{(c1 - c0) * 1e6 / max(r1 - r0, 1):.0f} us of CPU per result stored")
    if lat.size:
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        print(f"arrival -> MQTT subscriber latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms "
              f"({lat.size} messages)")


if __name__ == "__main__":
    main()
