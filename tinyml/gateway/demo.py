"""The demo's gateway step: emulated devices -> gateway -> a local Mosquitto, then the status.

Everything it starts (the broker, the device fleet, the gateway loop) it also stops; the
database, fresh each time, stays in ``workdir`` for `tinyml gateway status --db`.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tinyml.device.emulator import EmulatedFleet
from tinyml.gateway.broker import LocalBroker
from tinyml.gateway.config import GatewayConfig, ModelRoute, parse_mqtt_url
from tinyml.gateway.service import Gateway
from tinyml.gateway.status import format_text, read
from tinyml.rundir import MODEL_JSON, read_labels


def stream_through_gateway(model: Path, workdir: Path, devices: int = 3, seconds: float = 8.0,
                           rate: float = 20.0) -> str:
    """Run the pipeline for ``seconds`` and return a summary: messages seen on the broker and
    the gateway's status. ``model`` is a .tflite (its folder's model.json gives results meaning)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "gateway.db"
    db.unlink(missing_ok=True)  # a second demo's devices repeat the first's sequence numbers
    run_dir = model.parent
    routes = (ModelRoute(read_labels(run_dir), ("emu-*",)),) if (run_dir / MODEL_JSON).is_file() else ()
    broker = LocalBroker(workdir).start()
    received: list[str] = []
    lock = threading.Lock()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            received.append(msg.topic)

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    try:
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("tinyml/#", qos=1)
        sub.loop_start()
        with EmulatedFleet(model, count=devices, tcp_port=0, rate=rate, seed=0) as fleet:
            config = GatewayConfig(ports=tuple(fleet.endpoints), db=db, site="demo",
                                   mqtt=parse_mqtt_url(broker.url), models=routes)
            asyncio.run(_run_for(Gateway(config), seconds))
    finally:
        sub.loop_stop()
        broker.stop()
    with lock:
        kinds = {k: sum(t.endswith("/" + k) for t in received) for k in ("result", "alert", "status")}
    head = (f"MQTT {broker.url}: {kinds['result']} result, {kinds['alert']} alert and {kinds['status']} "
            f"status message(s) on tinyml/demo/#")
    return head + "\n" + format_text(read(db))


async def _run_for(gateway: Gateway, seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await gateway.run(stop)
