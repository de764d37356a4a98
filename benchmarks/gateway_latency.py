"""Gateway latency from the device's write to a separate MQTT subscriber process, at 8, 32, 64 and
128 emulated devices on full 115200-baud line rate (issue 20).

Four processes share the machine, as deployed: the emulated devices (this process, one
thread), `tinyml gateway run` (a child), Mosquitto and a QoS 1 subscriber (a child process of
its own: by default a minimal MQTT 3.1.1 client on a socket that acknowledges every message,
``--subscriber paho`` paho-mqtt, which costs about three times its CPU: at 256 devices a fifth
of a core). A result's latency is the subscriber's receive time minus the moment
the emulator wrote its frame: emulated devices stamp ``device_ms`` with milliseconds since
the fleet started on the machine's monotonic clock, so the subscriber, on the same clock,
needs no payload field of the gateway's (the stamp is truncated to whole milliseconds, so a
latency reads up to 1 ms high). Batched messages (``[mqtt] batch_ms``) carry one
``device_ms`` per result and count each result.

Per device count and run it prints results offered and delivered per second, p50/p95/p99,
CPU per process (share of one core and, for the gateway, microseconds per result: the least
load-sensitive figure; also its main thread alone, the event loop that reads the ports and decodes), the backlog (written by devices, not yet delivered) sampled every
second with its growth per second over the window, and the load average. ``--runs N``
repeats and prints the medians. ``--shards 0,2`` runs every device count once per shard count
(``gateway run --shards N``, tinyml/gateway/shards.py), interleaved in the same run; with shards the
gateway's CPU is split into the writer process and the shard processes together, each also per
result stored (committed; more than delivered while MQTT lags behind). A run whose gateway refused device ids
(its log) says so: at 128 devices and more, `[limits] new_per_min` (120 a minute) must be raised, or those
devices' results count as offered and never delivered. Prints figures; asserts nothing.

    .venv/bin/python -m benchmarks.gateway_latency [--devices 8,32,64,128] [--seconds 20] [--runs 3]
        [--config gateway.toml] [--gateway-path DIR] [--series] [--shards 0,2] [--subscriber lean|paho]
    (DIR: another checkout's tree, e.g. the "before" code; --series: the backlog, second by second)
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.gateway_throughput import count, cpu_seconds
from tinyml.device.emulator import EmulatedFleet
from tinyml.gateway.broker import LocalBroker
from tinyml.paths import shared_dir

ROOT = Path(__file__).resolve().parent.parent
_DEVICE_MS = re.compile(rb'"device_ms":(\d+)')
TOPICS = ("tinyml/+/+/result", "tinyml/+/+/results")


def subscribe(port: int, start: float, delivered, ready, conn, kind: str = "lean") -> None:  # noqa: ANN001 - multiprocessing objects
    """The subscriber process: QoS 1 on every result topic; per result (receive time, latency).
    A regular expression, not json.loads, takes the stamps: the subscriber must not be the bottleneck."""
    received: list[float] = []
    latency: list[float] = []

    def got(now: float, payload: bytes | bytearray, begin: int = 0, end: int | None = None) -> None:
        stamps = _DEVICE_MS.findall(payload, begin, len(payload) if end is None else end)
        for ms in stamps:
            received.append(now)
            latency.append(now - start - int(ms) / 1000)
        delivered.value += len(stamps)

    stop = (_paho if kind == "paho" else _lean)(port, got, ready)
    t0, t1 = conn.recv()  # the measured window, sent when it has ended
    stop()
    rx, lat = np.array(received), np.array(latency)
    keep = (rx >= t0) & (rx < t1)
    conn.send(lat[keep] * 1000)


def _paho(port: int, got, ready):  # noqa: ANN001, ANN202 - the callback, a multiprocessing event; returns stop()
    """paho-mqtt's client on a thread of its own, as a typical consumer runs it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, msg: got(time.monotonic(), msg.payload)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in TOPICS])
    client.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client.loop_stop


def _lean(port: int, got, ready):  # noqa: ANN001, ANN202 - as _paho
    """A minimal MQTT 3.1.1 QoS 1 subscriber on a plain socket: each read's PUBLISH packets are parsed
    in one loop and their PUBACKs written in one send. At 256 devices the broker delivers about
    10,000 messages/s; paho spent about 20% of a core on them (issue 20), as much as a shard."""
    sock = socket.create_connection(("127.0.0.1", port))
    client = b"gw-latency-subscriber"
    _send_packet(sock, 0x10, b"\x00\x04MQTT\x04\x02\x00\x00" + len(client).to_bytes(2, "big") + client)  # clean, no keep-alive
    filters = b"".join(len(t).to_bytes(2, "big") + t.encode() + b"\x01" for t in TOPICS)
    _send_packet(sock, 0x82, b"\x00\x01" + filters)

    def run() -> None:
        with contextlib.suppress(OSError):  # the socket is shut down at the end
            receive()

    def receive() -> None:
        buf = bytearray()
        while data := sock.recv(1 << 16):
            now = time.monotonic()
            buf += data
            pos, acks = 0, []
            while True:
                head = _fixed_header(buf, pos)
                if head is None:
                    break
                kind, body, end = head
                if kind >> 4 == 3:  # PUBLISH: topic, packet id (QoS 1), payload
                    at = body + 2 + int.from_bytes(buf[body:body + 2], "big")
                    if kind & 0x06:
                        acks.append(b"\x40\x02" + buf[at:at + 2])
                        at += 2
                    got(now, buf, at, end)
                elif kind >> 4 == 9:  # SUBACK
                    ready.set()
                pos = end
            del buf[:pos]
            if acks:
                sock.sendall(b"".join(acks))

    reader = threading.Thread(target=run, daemon=True)
    reader.start()

    def stop() -> None:
        sock.shutdown(socket.SHUT_RDWR)
        reader.join()
        sock.close()
    return stop


def _send_packet(sock: socket.socket, kind: int, body: bytes) -> None:
    length, n = bytearray(), len(body)
    while True:
        n, digit = n >> 7, n & 0x7F
        length.append(digit | 0x80 if n else digit)
        if not n:
            break
    sock.sendall(bytes([kind]) + length + body)


def _fixed_header(buf: bytearray, pos: int) -> tuple[int, int, int] | None:
    """(packet type and flags, start of the variable header, end of the packet) of the packet at ``pos``,
    or None while it is incomplete."""
    length, shift, i = 0, 0, pos + 1
    while True:
        if i >= len(buf):
            return None
        byte = buf[i]
        length |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if byte < 0x80:
            break
    return (buf[pos], i, i + length) if i + length <= len(buf) else None


@dataclass
class Run:
    devices: int
    offered: float  # results/s the devices wrote
    delivered: float  # results/s the subscriber received
    p50: float
    p95: float
    p99: float
    gw_cpu: float  # share of one core: the writer process (the whole gateway without shards)
    gw_us: float  # the writer's CPU per result delivered
    shards: int
    shard_cpu: float  # the shard processes together, share of one core
    stored: float  # results/s committed: what shards and writer handled (more than delivered while MQTT lags)
    gw_us_stored: float  # the writer's CPU per result stored
    loop_cpu: float  # the writer process's main thread (event loop: port reads, decode, intake), share of one core
    loop_us: float  # its CPU per result stored
    shard_us: float  # the shards' CPU per result stored
    broker_cpu: float
    sub_cpu: float
    emu_cpu: float
    backlog_max: int  # results written, not yet delivered: the largest of the per-second samples
    backlog_growth: float  # results/s, slope of a least-squares line through the samples
    load: float
    backlog: list[int]  # the per-second samples
    refused: int = 0  # device ids the gateway refused (logged): their results are offered, never delivered


def _connected(log: Path, devices: int, timeout: float = 60.0) -> list[int]:
    """Wait until the gateway has connected every port; the pids of its shards (none in-process)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = log.read_text()
        if len(re.findall(r"port \S+ connected", text)) >= devices:
            break
        time.sleep(0.5)
    return [int(pid) for pid in re.findall(r"shard \d+ \(pid (\d+)\)", text)]


def one_run(devices: int, seconds: float, model: str, config: Path | None, gateway_path: Path | None,
            shards: int = 0, subscriber: str = "lean") -> Run:
    fleet = EmulatedFleet(model, count=devices, tcp_port=0, rate=float("inf"), baud=115200, seed=1)
    work = Path(tempfile.mkdtemp(prefix="gw-latency-"))
    broker = LocalBroker(work).start()
    ctx = mp.get_context("spawn")
    delivered, ready = ctx.Value("q", 0, lock=False), ctx.Event()
    here, there = ctx.Pipe()
    sub = ctx.Process(target=subscribe, args=(broker.port, fleet.start_time, delivered, ready, there, subscriber),
                      daemon=True)
    sub.start()
    ready.wait(30)
    fleet.start()
    db = work / "gateway.db"
    cmd = [sys.executable, "-m", "tinyml", "gateway", "run", "--db", str(db), "--mqtt", broker.url,
           *(["--config", str(config)] if config else []), *[x for e in fleet.endpoints for x in ("--port", e)],
           *(["--shards", str(shards)] if shards else [])]
    env = {**os.environ, "PYTHONPATH": str(gateway_path or ROOT)}
    gw = subprocess.Popen(cmd, stderr=open(work / "gateway.log", "w"), cwd=work, env=env)  # noqa: SIM115
    procs = {"gw": gw.pid, "broker": broker.proc.pid, "sub": sub.pid, "emu": os.getpid()}
    try:
        procs.update({f"shard{i}": pid for i, pid in enumerate(_connected(work / "gateway.log", devices))})
        time.sleep(5.0)  # the first backlog drained
        def produced() -> float:
            """Results written to a line the gateway reads: those written before it connected
            (dropped by the emulator, as by a UART nobody reads) do not count, pro rata by bytes."""
            total = 0.0
            for d in fleet.devices:
                s = d.stats
                total += s.results * s.bytes_sent / max(s.bytes_sent + s.bytes_dropped, 1)
            return total
        cpu0 = {k: cpu_seconds(pid) for k, pid in procs.items()}
        loop0 = cpu_seconds(gw.pid, thread=gw.pid)
        stored = "SELECT count(*) FROM results"
        t0, p0, d0, s0 = time.monotonic(), produced(), delivered.value, count(db, stored)
        samples: list[tuple[float, int]] = []
        while time.monotonic() < t0 + seconds:
            time.sleep(1.0)
            samples.append((time.monotonic() - t0, produced() - delivered.value))
        t1, p1, d1, s1 = time.monotonic(), produced(), delivered.value, count(db, stored)
        cpu = {k: (cpu_seconds(pid) - cpu0[k]) / (t1 - t0) for k, pid in procs.items()}
        loop_cpu = (cpu_seconds(gw.pid, thread=gw.pid) - loop0) / (t1 - t0)
        here.send((t0, t1))
        lat = here.recv()
        load = os.getloadavg()[0]
    finally:
        fleet.stop()
        gw.terminate()
        try:
            gw.wait(60)
        except subprocess.TimeoutExpired:
            gw.kill()
        sub.kill()
        broker.stop()
    refused = len(set(re.findall(r"device id (\S+) refused", (work / "gateway.log").read_text())))
    shutil.rmtree(work)  # a run's database and logs (kept when it failed, to read)
    span = t1 - t0
    xs, ys = np.array([s[0] for s in samples]), np.array([s[1] for s in samples], dtype=float)
    growth = float(np.polyfit(xs, ys, 1)[0]) if len(samples) > 2 else 0.0
    p50, p95, p99 = np.percentile(lat, [50, 95, 99]) if lat.size else (float("nan"),) * 3
    shard_cpu = sum(v for k, v in cpu.items() if k.startswith("shard"))
    per_result, per_stored = span * 1e6 / max(d1 - d0, 1), span * 1e6 / max(s1 - s0, 1)
    return Run(devices, (p1 - p0) / span, (d1 - d0) / span, p50, p95, p99, cpu["gw"], cpu["gw"] * per_result,
               shards, shard_cpu, (s1 - s0) / span, cpu["gw"] * per_stored, loop_cpu, loop_cpu * per_stored,
               shard_cpu * per_stored,
               cpu["broker"], cpu["sub"], cpu["emu"],
               int(ys.max()) if ys.size else 0, growth, load, [int(y) for y in ys], refused)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="8,32,64,128", help="comma-separated device counts")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window per run")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--config", type=Path, help="a gateway.toml for the gateway (e.g. [mqtt] batch_ms)")
    ap.add_argument("--gateway-path", type=Path, help="run the gateway from this source tree (PYTHONPATH)")
    ap.add_argument("--shards", default="0", help="comma-separated shard counts, each run per device count")
    ap.add_argument("--subscriber", choices=("lean", "paho"), default="lean",
                    help="the QoS 1 subscriber: a minimal one on a socket, or paho-mqtt (about 3x its CPU)")
    ap.add_argument("--series", action="store_true", help="print each run's backlog, one sample per second")
    ap.add_argument("--model", default=str(shared_dir() / "models" / "feat_ae_int8.tflite"))
    args = ap.parse_args()
    config = args.config.resolve() if args.config else None
    print(f"gateway from {args.gateway_path or ROOT}, config {config or '(none)'}, {args.subscriber} subscriber; "
          f"{os.cpu_count()} CPUs")
    head = ("devices shards offered/s deliver/s  p50ms  p95ms  p99ms  gwCPU us/res stored/s gw_us/st loopCPU lp_us/st shardCPU "
            "sh_us/st broker  sub  emu backlog_max growth/s load")
    for n in [int(x) for x in args.devices.split(",")]:
        print(head)
        by_shards: dict[int, list[Run]] = {int(k): [] for k in args.shards.split(",")}
        for _ in range(args.runs):
            for k, runs in by_shards.items():  # interleaved: the machine's other load falls on each
                r = one_run(n, args.seconds, args.model, config, args.gateway_path, k, args.subscriber)
                runs.append(r)
                print(f"{r.devices:7d} {r.shards:6d} {r.offered:9.0f} {r.delivered:9.0f} {r.p50:6.1f} {r.p95:6.1f} "
                      f"{r.p99:6.1f} {r.gw_cpu:5.0%} {r.gw_us:6.0f} {r.stored:8.0f} {r.gw_us_stored:8.0f} {r.loop_cpu:7.0%} "
                      f"{r.loop_us:8.0f} {r.shard_cpu:8.0%} "
                      f"{r.shard_us:8.0f} "
                      f"{r.broker_cpu:5.0%} {r.sub_cpu:4.0%} {r.emu_cpu:4.0%} "
                      f"{r.backlog_max:11d} {r.backlog_growth:8.0f} {r.load:4.1f}", flush=True)
                if r.refused:  # e.g. [limits] new_per_min (120 a minute) below the device count
                    print(f"        {r.refused} device id(s) refused by the gateway (see its [limits]): their results "
                          f"count as offered, never delivered", flush=True)
                if args.series:
                    print(f"        backlog per second: {' '.join(map(str, r.backlog))}", flush=True)
        for k, runs in by_shards.items():
            if len(runs) < 2:
                continue
            med = {f: statistics.median(getattr(r, f) for r in runs) for f in
                   ("offered", "delivered", "p50", "p95", "p99", "gw_cpu", "gw_us", "stored", "gw_us_stored", "loop_cpu",
                    "loop_us", "shard_cpu",
                    "shard_us",
                    "backlog_max", "backlog_growth")}
            loads = [r.load for r in runs]
            print(f"median of {len(runs)}: {n} devices, {k} shard(s), offered {med['offered']:.0f}/s, delivered "
                  f"{med['delivered']:.0f}/s, p50 {med['p50']:.1f} ms, p95 {med['p95']:.1f} ms, "
                  f"p99 {med['p99']:.1f} ms, writer {med['gw_cpu']:.0%} of a core, {med['gw_us']:.0f} us/result, "
                  f"stored {med['stored']:.0f}/s, writer {med['gw_us_stored']:.0f} us/stored, of which its event loop "
                  f"{med['loop_us']:.0f} us/stored ({med['loop_cpu']:.0%}), shards {med['shard_cpu']:.0%}, "
                  f"{med['shard_us']:.0f} us/stored, backlog max "
                  f"{med['backlog_max']:.0f}, growth {med['backlog_growth']:.0f}/s, load {min(loads):.1f}-{max(loads):.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
