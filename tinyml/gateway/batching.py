"""Batched result messages (``[mqtt] batch = true``): one MQTT message per device per writer
commit, ``<prefix>/<site>/<device>/results``, instead of one ``.../result`` message per result.

Per message the broker, paho and the PUBACK cost about as much as everything else the gateway
does for a result, so at line rate batching is what brings the gateway well under one core.
The interval is the writer's commit: short at low load (a commit as soon as the writer is
free), longer under load, so a batch adds no timer of its own. Each result inside keeps its
own JSON and ``id`` exactly as the single message has them, so consumers dedupe by result id
whichever way it arrived; the batch is an outbox row committed with its results, so the
guarantees (nothing acknowledged lost, re-sent under the same ids after a crash) are unchanged.
Alerts and status messages stay single; a device's pending batch is queued before its next
alert or status, so per device the order of messages is the order of events.
"""

from __future__ import annotations

KIND = "results"
MAX_RESULTS = 100  # per message
MAX_BYTES = 32 * 1024  # per message's results: well under consumers' limit (tinyml.fleet reads 64 KiB)

OutboxRow = tuple[str, str, str, str, float]  # device, topic, msg_id, payload, created_at


def batch_payload(site_json: str, device_json: str, results: list[str]) -> str:
    """``{"site":..,"device":..,"results":[<result JSON>,...]}``: each result exactly as its own message."""
    return f'{{"site":{site_json},"device":{device_json},"results":[{",".join(results)}]}}'


class ResultBatches:
    """The results of one transaction waiting to become outbox rows, per device, in order."""

    def __init__(self) -> None:
        # device -> (topic, site JSON, device JSON, first result's id, created_at, result JSONs, bytes)
        self.pending: dict[str, list] = {}

    def add(self, device: str, topic: str, site_json: str, device_json: str, msg_id: str, payload: str,
            at: float, outbox: list[OutboxRow]) -> None:
        batch = self.pending.get(device)
        if batch is None:
            self.pending[device] = [topic, site_json, device_json, msg_id, at, [payload], len(payload)]
            return
        batch[5].append(payload)
        batch[6] += len(payload) + 1
        if len(batch[5]) >= MAX_RESULTS or batch[6] >= MAX_BYTES:
            self.flush(device, outbox)

    def flush(self, device: str, outbox: list[OutboxRow]) -> None:
        """Queue the device's pending results as one message (before its next alert or status)."""
        batch = self.pending.pop(device, None)
        if batch is not None:
            topic, site_json, device_json, first_id, at, results, _ = batch
            outbox.append((device, topic, f"{KIND}/{first_id}/{len(results)}",
                           batch_payload(site_json, device_json, results), at))

    def flush_all(self, outbox: list[OutboxRow]) -> None:
        for device in list(self.pending):
            self.flush(device, outbox)
