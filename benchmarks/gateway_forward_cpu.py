"""Gateway forwarding CPU cost without ingest: an outbox of N result messages drained by the
forwarder (paho-mqtt, MQTT 5, QoS 1, inside an asyncio loop as in `gateway run`) into a real
Mosquitto, until every row is acknowledged and deleted. Prints CPU microseconds per message
(this process only; the broker is another process), median of the runs.

    .venv/bin/python benchmarks/gateway_forward_cpu.py [--messages 20000] [--runs 3] [--profile]
        [--batch N]   (N results per message, as ``[mqtt] batch`` publishes them; also prints CPU per result)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

from tinyml.gateway.batching import batch_payload
from tinyml.gateway.broker import LocalBroker
from tinyml.gateway.config import GatewayConfig, parse_mqtt_url
from tinyml.gateway.forward import Forwarder
from tinyml.gateway.processor import Processor
from tinyml.gateway.store import Store

PAYLOAD = ('{"id":"dev7/00000007/%d","site":"default","device":"dev7","boot_id":7,"seq":%d,"device_ms":1000,'
           '"received_at":1764201600.123456,"label":0,"class":null,"anomaly":false,"score":0.4213,'
           '"latency":1000,"latency_unit":"us"}')


def fill_outbox(db: Path, messages: int, batch: int = 1) -> None:
    """The outbox as the writer leaves it: one row per result (or per ``batch`` results), payloads
    of the usual size."""
    store = Store(db)
    Processor(store, GatewayConfig(ports=(), db=db, mqtt=parse_mqtt_url("mqtt://127.0.0.1:1883")))

    def row(i: int) -> tuple[str, str, str, str, float]:
        if batch == 1:
            return f"dev{i % 64}", f"tinyml/default/dev{i % 64}/result", f"dev/{i}", PAYLOAD % (i, i), 0.0
        results = [PAYLOAD % (i * batch + k, i * batch + k) for k in range(batch)]
        return (f"dev{i % 64}", f"tinyml/default/dev{i % 64}/results", f"results/dev/{i}",
                batch_payload('"default"', f'"dev{i % 64}"', results), 0.0)

    with store.transaction():
        store.enqueue([row(i) for i in range(messages)])
    store.close()


async def drain(url: str, db: Path) -> float:
    """Forward the whole outbox; returns the CPU seconds it took."""
    stop = asyncio.Event()
    forwarder = Forwarder(parse_mqtt_url(url), db, "default")
    forwarder.start()
    await forwarder.connected.wait()
    t0 = time.process_time()
    task = asyncio.create_task(forwarder.run(stop))
    while not forwarder.drained():
        await asyncio.sleep(0.01)
    cpu = time.process_time() - t0
    stop.set()
    await task
    await forwarder.close()
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile one run, print the top functions")
    ap.add_argument("--batch", type=int, default=1, help="results per message ([mqtt] batch)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gw-forward-"))
    broker = LocalBroker(work).start()
    per_message = []
    try:
        for run in range(args.runs):
            db = work / f"run{run}.db"
            fill_outbox(db, args.messages, args.batch)
            if args.profile and run == 0:
                profile = cProfile.Profile()
                cpu = profile.runcall(asyncio.run, drain(broker.url, db))
                pstats.Stats(profile).sort_stats("tottime").print_stats(20)
            else:
                cpu = asyncio.run(drain(broker.url, db))
            per_message.append(cpu / args.messages * 1e6)
    finally:
        broker.stop()
    print(f"{args.messages} messages, MQTT 5 QoS 1 to a local Mosquitto, load average {os.getloadavg()[0]:.1f}: "
          f"{statistics.median(per_message):.1f} us of CPU per message forwarded "
          f"(runs: {', '.join(f'{x:.1f}' for x in per_message)})"
          + (f"; {args.batch} results per message: {statistics.median(per_message) / args.batch:.1f} us per result"
             if args.batch > 1 else ""))


if __name__ == "__main__":
    main()
