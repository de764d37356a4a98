"""paho-mqtt's client with a cheaper successful PUBACK: the forwarder's hottest path.

paho decodes every PUBACK into fresh MQTT 5 ``ReasonCode`` and ``Properties`` objects, which
cost more CPU than the rest of acknowledging a message together. A successful PUBACK without
properties (what brokers send: 2 bytes, or 3 with reason 0x10 "no matching subscribers")
needs neither: this client reads its packet id and hands paho's own acknowledgement
(``_do_on_publish``: the on_publish callback, then the message leaves paho's store) a shared,
read-only reason object. Every other packet, including every negative PUBACK and any with
properties, goes through paho unchanged. The hooks are internal to paho, so the fast path is
used only where they exist with the expected shape (``fast_acks`` says whether).
"""

from __future__ import annotations

import inspect
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tinyml.gateway.config import MqttConfig

_NO_PROPERTIES = Properties(PacketTypes.PUBACK)
# The successful PUBACK reason codes; callbacks only read them, so one object each is shared.
_SUCCESSES = {code: ReasonCode(PacketTypes.PUBACK, identifier=code) for code in (0x00, 0x10)}


def _paho_has_hooks() -> bool:
    """The internals the fast path relies on, as paho 2.x has them."""
    try:
        handle = inspect.signature(mqtt.Client._handle_pubackcomp)
        ack = inspect.signature(mqtt.Client._do_on_publish)
    except AttributeError:
        return False
    return (list(handle.parameters) == ["self", "cmd"]
            and list(ack.parameters) == ["self", "mid", "reason_code", "properties"])


class LeanAckClient(mqtt.Client):
    fast_acks = _paho_has_hooks()

    def _handle_pubackcomp(self, cmd: str) -> mqtt.MQTTErrorCode:  # type: ignore[override]
        packet = self._in_packet["packet"]
        size = len(packet)
        if size == 2:  # MQTT 5 and 3.1.1: success, reason code and properties left out
            reason = _SUCCESSES[0]
        elif size == 3 and self._protocol == mqtt.MQTTv5:
            reason = _SUCCESSES.get(packet[2])
        else:
            reason = None
        if reason is None or cmd != "PUBACK" or not self.fast_acks:
            return super()._handle_pubackcomp(cmd)  # type: ignore[arg-type]
        mid = packet[0] << 8 | packet[1]
        with self._out_message_mutex:
            if mid in self._out_messages:  # informed once per message, as paho's own path does
                return self._do_on_publish(mid, reason, _NO_PROPERTIES)
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS


def apply_credentials(client: mqtt.Client, cfg: MqttConfig) -> None:
    """User, password and TLS from the settings: the gateway's forwarder and the fleet consumer
    connect the same way."""
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls:
        client.tls_set(ca_certs=cfg.ca, certfile=cfg.cert, keyfile=cfg.key,
                       cert_reqs=ssl.CERT_NONE if cfg.insecure else ssl.CERT_REQUIRED)
        client.tls_insecure_set(cfg.insecure)
