"""Gateway forwarding CPU cost without ingest: an outbox of N result messages drained by the
forwarder (paho-mqtt, MQTT 5, QoS 1, inside an asyncio loop as in `gateway run`) into a real
Mosquitto, until every row is acknowledged and deleted. Prints CPU microseconds per message
(this process only; the broker is another process), median of the runs.

    .venv/bin/python benchmarks/gateway_forward_cpu.py [--messages 20000] [--runs 3] [--profile]
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

from tinyml.gateway.broker import LocalBroker
from tinyml.gateway.config import GatewayConfig, parse_mqtt_url
from tinyml.gateway.forward import Forwarder
from tinyml.gateway.processor import Processor
from tinyml.gateway.store import Store

PAYLOAD = ('{"id":"dev7/00000007/%d","site":"default","device":"dev7","boot_id":7,"seq":%d,"device_ms":1000,'
           '"received_at":1764201600.123456,"label":0,"class":null,"anomaly":false,"score":0.4213,'
           '"latency":1000,"latency_unit":"us"}')


def fill_outbox(db: Path, messages: int) -> None:
    """The outbox as the writer leaves it: one row per result, payloads of the usual size."""
    store = Store(db)
    Processor(store, GatewayConfig(ports=(), db=db, mqtt=parse_mqtt_url("mqtt://127.0.0.1:1883")))
    with store.transaction():
        store.enqueue([(f"dev{i % 64}", f"tinyml/default/dev{i % 64}/result", f"dev/{i}", PAYLOAD % (i, i), 0.0)
                       for i in range(messages)])
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
    forwarder.close()
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile one run, print the top functions")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gw-forward-"))
    broker = LocalBroker(work).start()
    per_message = []
    try:
        for run in range(args.runs):
            db = work / f"run{run}.db"
            fill_outbox(db, args.messages)
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
          f"(runs: {', '.join(f'{x:.1f}' for x in per_message)})")


if __name__ == "__main__":
    main()
