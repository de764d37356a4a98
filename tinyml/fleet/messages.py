"""What gateways forward, checked: MQTT topic + payload -> a result, alert or status record,
or a rejection with its reason.

The topics and payloads are the gateway's (docs/gateway.md, "MQTT topics and payloads"):
``<prefix>/<site>/<device>/result|alert|status`` and ``<prefix>/<site>/_gateway/status``, and
a gateway's batches (``[mqtt] batch``): ``.../results``, each result inside read as if sent alone.
Anything else (an oversized payload, bytes that are not a JSON object, an unknown schema
version ``v``, a topic outside that pattern or naming another site or device than its
payload, a missing or mistyped field) becomes a ``Rejected`` that the consumer counts,
stores and acknowledges: a bad message must never block the ones behind it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from tinyml.gateway.processor import topic_part

MAX_PAYLOAD = 16 * 1024  # the gateway's largest message (a result) is a few hundred bytes
MAX_BATCH_PAYLOAD = 64 * 1024  # a batch of results: the gateway keeps them under 32 KiB
BATCH_KIND = "results"
SCHEMA_VERSIONS = (1,)  # payloads without "v" are version 1 (what gateways publish today)
KINDS = ("result", "alert", "status")
GATEWAY = "_gateway"
_RESULT_ID = re.compile(r"(?s)(.+)/([0-9a-f]{8})/(\d+)")
_ALERT_ID = re.compile(r"alert/(\d+)/(firing|cleared)")


@dataclass(frozen=True)
class Result:
    site: str
    device: str
    id: str
    boot_id: int
    seq: int
    device_ms: int | None
    received_at: float
    label: int
    class_name: str | None
    anomaly: bool | None
    score: float
    latency: int | None
    latency_unit: str | None
    port: str | None = None  # the gateway port it came from (gateways from before issue 16: None)
    authenticated: bool | None = None  # its device proved its key (docs/security.md); None: not said


@dataclass(frozen=True)
class Alert:
    site: str
    device: str
    id: str
    alert: int  # the gateway's alert row: firing and cleared share it
    rule: str
    state: str
    value: float | None
    message: str
    at: float


@dataclass(frozen=True)
class Status:
    site: str
    device: str  # "_gateway" for a gateway's own online/offline status
    id: str
    state: str
    board: str | None
    fw_version: str | None
    model_hash: str | None
    boot_id: int | None
    at: float | None


@dataclass(frozen=True)
class Rejected:
    source: str  # "site <name>" when the topic names one, else "unknown site"
    reason: str  # oversized, not_json, schema_version, topic, invalid; refused (by the database)
    detail: str


Message = Result | Alert | Status | Rejected


class _Invalid(ValueError):
    pass


def _get(payload: dict[str, Any], key: str, kind: type, optional: bool = False, bits: int = 64) -> Any:
    """One field of ``kind`` (str, int or float). Whatever passes fits its column in both
    databases: integers within ``bits`` (signed), strings without NUL (PostgreSQL text cannot
    hold one), finite numbers except the score. A value a database would refuse must be
    rejected here: a batch the store cannot commit would be redelivered forever."""
    value = payload.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool):
        raise _Invalid(f"{key} must be {kind.__name__}, not a boolean")
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise _Invalid(f"{key} missing or not {kind.__name__}")
    if kind is int and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise _Invalid(f"{key} out of range")
    if kind is float and not math.isfinite(value) and key != "score":
        raise _Invalid(f"{key} is not finite")
    if kind is str and "\x00" in value:
        raise _Invalid(f"{key} contains a NUL character")
    return value


def _result(site: str, device: str, p: dict[str, Any]) -> Result:
    msg_id = _get(p, "id", str)
    boot_id, seq = _get(p, "boot_id", int), _get(p, "seq", int)
    if msg_id != f"{device}/{boot_id:08x}/{seq}" or not _RESULT_ID.fullmatch(msg_id):
        raise _Invalid(f"id {msg_id[:80]!r} is not <device>/<boot_id hex>/<seq> of this result")
    if not (0 <= boot_id < 2**32 and 0 <= seq < 2**63):
        raise _Invalid("boot_id or seq out of range")
    anomaly, authenticated = p.get("anomaly"), p.get("authenticated")
    if anomaly is not None and not isinstance(anomaly, bool):
        raise _Invalid("anomaly must be true, false or null")
    if authenticated is not None and not isinstance(authenticated, bool):
        raise _Invalid("authenticated must be true, false or null")
    return Result(site, device, msg_id, boot_id, seq, _get(p, "device_ms", int, True), _get(p, "received_at", float),
                  _get(p, "label", int, bits=32), _get(p, "class", str, True), anomaly, _get(p, "score", float),
                  _get(p, "latency", int, True), _get(p, "latency_unit", str, True), _get(p, "port", str, True),
                  authenticated)


def _alert(site: str, device: str, p: dict[str, Any]) -> Alert:
    msg_id = _get(p, "id", str)
    match = _ALERT_ID.fullmatch(msg_id)
    if match is None or match.group(2) != p.get("state"):
        raise _Invalid(f"alert id {msg_id[:80]!r} is not alert/<n>/<state> of this alert")
    if len(match.group(1)) > 18:
        raise _Invalid("alert row id out of range")
    return Alert(site, device, msg_id, int(match.group(1)), _get(p, "rule", str), match.group(2),
                 _get(p, "value", float, True), _get(p, "message", str, True) or "", _get(p, "at", float))


def _status(site: str, device: str, p: dict[str, Any]) -> Status:
    state = _get(p, "state", str)
    if device == GATEWAY:  # the gateway's own (retained) status has no id and no time
        return Status(site, device, f"status/{GATEWAY}", state, None, None, None, None, None)
    return Status(site, device, _get(p, "id", str), state, _get(p, "board", str, True),
                  _get(p, "fw_version", str, True), _get(p, "model_hash", str, True),
                  _get(p, "boot_id", int, True), _get(p, "at", float))


_PARSERS = {"result": _result, "alert": _alert, "status": _status}


def parse(topic: str, payload: bytes, *, prefix: str = "tinyml") -> Message:
    """One MQTT message -> a record, or why it was rejected (never raises)."""
    return _parse(topic, payload, prefix, batch=False)[0]


def parse_all(topic: str, payload: bytes, *, prefix: str = "tinyml") -> list[Message]:
    """One MQTT message -> its records: one, or each result of a batch (``.../results``); a bad
    result in a batch is rejected alone, the others are kept (never raises)."""
    return _parse(topic, payload, prefix, batch=True)


def _parse(topic: str, payload: bytes, prefix: str, *, batch: bool) -> list[Message]:
    levels = topic.split("/")
    kinds = (*KINDS, BATCH_KIND) if batch else KINDS
    well_formed = len(levels) == 4 and levels[0] == prefix and levels[1] and levels[2] and levels[3] in kinds
    # a bounded set of sources: a flood of random topics must not grow the rejects table
    source = f"site {levels[1]}" if len(levels) == 4 and levels[0] == prefix and levels[1] else "unknown site"
    limit = MAX_BATCH_PAYLOAD if well_formed and levels[3] == BATCH_KIND else MAX_PAYLOAD
    if len(payload) > limit:
        return [Rejected(source, "oversized", f"{len(payload)} bytes > {limit}")]
    if not well_formed or (levels[2] == GATEWAY and levels[3] != "status"):
        return [Rejected(source, "topic", f"{topic[:120]!r} is not {prefix}/<site>/<device>/{'|'.join(kinds)}")]
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        return [Rejected(source, "not_json", str(exc)[:120])]
    if not isinstance(body, dict):
        return [Rejected(source, "not_json", f"a JSON {type(body).__name__}, not an object")]
    site, device, kind = levels[1], levels[2], levels[3]
    if kind != BATCH_KIND:
        return [_checked(source, site, device, kind, body)]
    items = body.get("results")
    try:
        _owner(site, device, body)
        if not isinstance(items, list):
            raise _Invalid("results must be a list")
    except _Invalid as exc:
        return [Rejected(source, "invalid", f"{kind}: {exc}")]
    return [_checked(source, site, device, "result", item) if isinstance(item, dict) else
            Rejected(source, "invalid", f"{kind}: an item is a JSON {type(item).__name__}, not an object")
            for item in items]


def _owner(site: str, device: str, body: dict[str, Any]) -> str:
    """The device a payload names, checked against its topic's site and device levels."""
    if "site" in body and body["site"] != site:
        raise _Invalid(f"payload site {str(body['site'])[:60]!r} differs from the topic's")
    if device == GATEWAY:
        return device
    named = _get(body, "device", str)
    if topic_part(named) != device:
        raise _Invalid(f"payload device {named[:60]!r} differs from the topic's")
    return named


def _checked(source: str, site: str, device: str, kind: str, body: dict[str, Any]) -> Message:
    version = body.get("v", 1)
    if version not in SCHEMA_VERSIONS or isinstance(version, bool):
        return Rejected(source, "schema_version", f"v={str(version)[:20]}; this consumer reads {SCHEMA_VERSIONS}")
    try:
        return _PARSERS[kind](site, _owner(site, device, body), body)
    except _Invalid as exc:
        return Rejected(source, "invalid", f"{kind}: {exc}")
