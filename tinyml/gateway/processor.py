"""Apply a batch of ingest records to the store in one transaction: dedupe, count gaps and
reboots, run the alert rules and drift checks, and queue the MQTT messages.

Everything a batch produces (results, counters, alerts, outbox rows) commits together, so
what is acknowledged after ``process`` returns is exactly what is on disk. The in-memory
rule state is rebuilt from the store at start (open alerts stay open, the drift baseline
and window are reloaded), so a restart neither re-fires nor forgets alerts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from tinyml.device.protocol import LATENCY_UNIT_NAMES, Result
from tinyml.device.windows import RawWindow
from tinyml.gateway.batching import KIND as BATCH_KIND
from tinyml.gateway.batching import ResultBatches
from tinyml.gateway.config import GatewayConfig
from tinyml.gateway.drift import DriftMonitor
from tinyml.gateway.evidence import HOUR_S, RESPONSE_S
from tinyml.gateway.identity import Refused
from tinyml.gateway.ingest import (
    HeartbeatRecord,
    Identified,
    LineCounts,
    PortState,
    Record,
    ResultsRecord,
    Retention,
    Tick,
    WindowRecord,
)
from tinyml.gateway.rules import DeviceRules, Transition
from tinyml.gateway.store import Store
from tinyml.rundir import Labels

IDENTITY_RULE = "identity"  # a port claimed a device id it could not prove (tinyml/gateway/identity.py)
_TOPIC_UNSAFE = re.compile(r"[/+#\x00-\x1f]")


@lru_cache(maxsize=4096)
def topic_part(name: str) -> str:
    """A device id made safe as one MQTT topic level. Levels starting with ``_`` are the gateway's
    own (``_gateway``), so a device's never does: a leading ``_`` is doubled (``_gateway`` ->
    ``__gateway``), which keeps distinct ids distinct."""
    part = _TOPIC_UNSAFE.sub("_", name) or "_"
    return "_" + part if part.startswith("_") else part


def status_id(payload: dict[str, object]) -> str:
    """``status/<device>/<boot>/<content hash>``: a re-published status keeps its id, a status with
    new content (a new port, a reboot flag) gets a new one, so consumers deduplicating by id lose nothing."""
    body = _encode({k: v for k, v in sorted(payload.items()) if k != "id"})
    digest = hashlib.sha256(body.encode()).hexdigest()[:12]
    return f"status/{payload['device']}/{int(str(payload['boot_id'])):08x}/{digest}"


def result_id(device: str, boot_id: int, seq: int) -> str:
    """Deterministic message id: a re-published result keeps its id, so consumers can dedupe."""
    return f"{device}/{boot_id:08x}/{seq}"


_encode = json.JSONEncoder(separators=(",", ":")).encode
_json_str = lru_cache(maxsize=4096)(_encode)  # device, site and class names repeat on every result
_JSON_CONST = {True: "true", False: "false", None: "null"}
_UNIT_JSON = tuple(_encode(LATENCY_UNIT_NAMES.get(unit, str(unit))) for unit in range(256))


def _json_float(x: float) -> str:
    return repr(x) if math.isfinite(x) else _encode(x)


def result_payload(site: str, device: str, r: Result, received_at: float, class_name: str | None,
                   anomaly: bool | None, *, port: str = "", authenticated: bool = False) -> str:
    """The result message's JSON (see ``_result_json``)."""
    return _result_json(_json_str(site), _json_str(device), r, _json_float(received_at), _json_str(class_name),
                        anomaly, _source_json(port, authenticated))


def _source_json(port: str, authenticated: bool) -> str:
    """The fields every result message ends with: where it came from and whether its device proved its key."""
    return f'"port":{_json_str(port)},"authenticated":{_JSON_CONST[authenticated]}'


def _result_json(site_json: str, device_json: str, r: Result, received_at_json: str, class_json: str,
                 anomaly: bool | None, source_json: str) -> str:
    """The result message's JSON, written directly from parts encoded once per read: the
    hottest path of the gateway, and building a dict for json to walk costs about three times
    as much. The id is the device's JSON string extended by ``/<boot_id>/<seq>`` (plain ASCII,
    so no escaping is needed), which is ``result_id`` encoded."""
    return (f'{{"id":{device_json[:-1]}/{r.boot_id:08x}/{r.seq}","site":{site_json},'
            f'"device":{device_json},"boot_id":{r.boot_id},"seq":{r.seq},"device_ms":{r.timestamp_ms},'
            f'"received_at":{received_at_json},"label":{r.label},"class":{class_json},'
            f'"anomaly":{_JSON_CONST[anomaly]},"score":{_json_float(r.score)},"latency":{r.latency},'
            f'"latency_unit":{_UNIT_JSON[r.latency_unit]},{source_json}}}')


Seen = dict[str, tuple[float, dict[str, object]]]


def _mark_seen(seen: Seen, device: str, at: float, fields: dict[str, object] | None = None) -> None:
    """Note that a device was heard at ``at`` (and which columns to update), once per batch."""
    _, known = seen.get(device, (at, {}))
    seen[device] = (at, {**known, **fields} if fields else known)


@dataclass
class DeviceState:
    model: Labels
    rules: DeviceRules
    drift: DriftMonitor
    model_hash: str = ""
    boot_id: int | None = None
    last_seq: int | None = None
    # No stored result of boot ``bound_boot`` has a seq above ``seq_bound`` (None: none stored),
    # so a higher seq needs no duplicate check and can be inserted with the batch.
    bound_boot: int | None = None
    seq_bound: int | None = None
    labels: dict[int, tuple[bool | None, str]] = field(default_factory=dict)  # label -> (anomaly, class JSON)
    port: str = ""  # where the device was last identified: evidence requests go there
    last_seen: float = 0.0  # when a record of this device was last processed (state expiry)
    evidence_request: tuple[int, float] | None = None  # (request id, when) of the last evidence request

    def meaning(self, label: int) -> tuple[bool | None, str]:
        """Whether a label is an anomaly and its class name as JSON, worked out once per label."""
        known = self.labels.get(label)
        if known is None:
            known = self.labels[label] = (self.model.is_anomaly(label), _json_str(self.model.class_name(label)))
        return known


def _restore_firing(state: DeviceState, rule: str) -> None:
    """An alert of this rule is open in the store: the rule starts firing, so it is not fired twice."""
    if rule == state.drift.name:
        state.drift.firing = True
    else:
        state.rules.restore_firing(rule)


@dataclass
class BatchOutcome:
    stored: int = 0
    duplicates: int = 0
    enqueued: int = 0
    retained_deleted: int = 0
    transitions: list[tuple[str, Transition]] = field(default_factory=list)
    evidence_requests: list[tuple[str, str, int]] = field(default_factory=list)  # (device, port, windows) to ask
    evidence_stored: int = 0
    expired: int = 0  # device states dropped from memory after idling (rebuilt from the store when heard again)


class Processor:
    """The gateway's single writer. Not thread-safe: call it from one thread at a time."""

    def __init__(self, store: Store, config: GatewayConfig):
        self.store = store
        self.config = config
        self.prefix = f"{config.mqtt.topic_prefix if config.mqtt else 'tinyml'}/{topic_part(config.site)}"
        self.devices: dict[str, DeviceState] = {}
        self.new_results: list[tuple] = []  # the batch's results known to be new, inserted together
        self.outbox: list[tuple[str, str, str, str, float]] = []  # the batch's messages, in order
        self.claims: dict[str, set[str]] = {}  # device id -> connected ports refused for claiming it
        # [mqtt] batch: results become one message per device per commit (tinyml/gateway/batching.py)
        self.batches = ResultBatches() if config.mqtt is not None and config.mqtt.batch else None
        self._restore()

    def _new_state(self, device: str, model_hash: str) -> DeviceState:
        model = self.config.model_for(device, model_hash)
        return DeviceState(model, DeviceRules(self.config.rules, model.threshold),
                           DriftMonitor(self.config.drift, model.score_baseline or None), model_hash)

    def _restore(self) -> None:
        open_alerts = self.store.open_alerts()
        for row in self.store.devices():
            self._load(row)
        for device, rule in open_alerts:
            if device in self.devices:
                _restore_firing(self.devices[device], rule)

    def _load(self, row: sqlite3.Row) -> DeviceState:
        """A device's in-memory state rebuilt from its stored row and results (at start, and when a
        device whose state expired is heard from again)."""
        device = row["device"]
        state = self._new_state(device, row["model_hash"] or "")
        state.boot_id, state.last_seq = row["boot_id"], row["last_seq"]
        state.port = row["port"] or ""
        if state.rules.silent is not None:
            state.rules.silent.last_seen = row["last_seen"]
        drift = state.drift
        if drift.fixed_baseline:
            drift.recent.extend(self.store.last_scores(device, self.config.drift.window))
        else:  # the baseline is the first scores; the window only what came after them
            drift.baseline = self.store.first_scores(device, self.config.drift.baseline_n)
            drift.recent.extend(self.store.last_scores(device, self.config.drift.window, len(drift.baseline)))
        state.last_seen = row["last_seen"] or 0.0
        self.devices[device] = state
        return state

    def expire(self, now: float, heard: Seen | None = None) -> int:
        """Drop the in-memory state of devices idle for ``[limits] state_expiry_s``; it is rebuilt
        from the store if they are heard from again. Returns how many were dropped. Devices ``heard``
        in the batch being processed stay: their ``last_seen`` is set only when it ends (a device new in
        the batch still has none, and dropping it there stopped the writer)."""
        horizon = now - self.config.limits.state_expiry_s
        heard = heard or {}
        idle = [d for d, state in self.devices.items() if state.last_seen < horizon and d not in heard]
        for device in idle:
            del self.devices[device]
        return len(idle)

    def _state(self, device: str, model_hash: str = "") -> DeviceState:
        state = self.devices.get(device)
        if state is None:
            row = self.store.device(device)
            if row is not None:  # its state expired: rebuild it, open alerts included
                state = self._load(row)
                for _, rule in self.store.open_alerts(device):
                    _restore_firing(state, rule)
        if state is None or (model_hash and model_hash != state.model_hash):
            fresh = self._new_state(device, model_hash or (state.model_hash if state else ""))
            if state is not None:  # same device, new model: keep identity and open alerts, restart the analysis
                fresh.boot_id, fresh.last_seq = state.boot_id, state.last_seq
                fresh.bound_boot, fresh.seq_bound = state.bound_boot, state.seq_bound
                fresh.port, fresh.evidence_request = state.port, state.evidence_request
                for _, rule in self.store.open_alerts(device):
                    _restore_firing(fresh, rule)
            self.devices[device] = state = fresh
        return state

    def process(self, records: list[Record], now: float) -> BatchOutcome:
        """Apply records in one transaction; returns what was committed."""
        out = BatchOutcome()
        counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        port_counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        seen: Seen = {}
        self.new_results.clear()
        self.outbox.clear()
        with self.store.transaction():
            for rec in records:
                if isinstance(rec, ResultsRecord):
                    self._results(rec, out, counts, seen)
                elif isinstance(rec, LineCounts):  # one per read: plain additions, Counter.update is slow
                    port = port_counts[rec.port]
                    port["frames"] += rec.frames
                    port["bad_frames"] += rec.bad_frames
                    port["text_lines"] += rec.text_lines
                    port["unidentified"] += rec.unidentified
                    port["refused"] += rec.refused
                    if rec.device is not None:
                        device = counts[rec.device]
                        device["frames"] += rec.frames
                        device["bad_frames"] += rec.bad_frames
                        device["text_lines"] += rec.text_lines
                        device["device_errors"] += rec.device_errors
                        self._transitions(rec.device, self._state(rec.device).rules.on_frames(
                            rec.frames, rec.bad_frames, rec.at), rec.at, out)
                        _mark_seen(seen, rec.device, rec.at)
                elif isinstance(rec, Identified):
                    self._hello(rec, out, counts, seen)
                elif isinstance(rec, WindowRecord):
                    self._evidence_window(rec.device, rec.window, rec.at, out)
                elif isinstance(rec, HeartbeatRecord):
                    self._boot(rec.device, rec.heartbeat.boot_id, counts)
                    self._transitions(rec.device, self._state(rec.device).rules.on_frames(0, 0, rec.at),
                                      rec.at, out)
                    _mark_seen(seen, rec.device, rec.at)
                elif isinstance(rec, PortState):
                    self.store.set_port(rec.port, rec.at, connected=int(rec.connected), last_error=rec.error)
                    if rec.connected:
                        port_counts[rec.port]["connects"] += 1
                    else:
                        self._release_claims(rec.port, rec.at, out)
                elif isinstance(rec, Tick):
                    for device, state in self.devices.items():
                        self._transitions(device, state.rules.on_tick(rec.at), rec.at, out)
                    out.expired += self.expire(rec.at, seen)
                elif isinstance(rec, Refused):
                    self._identity_alert(rec, out)
                elif isinstance(rec, Retention):
                    self._flush_results()
                    deleted = self.store.delete_expired(rec.at, self.config.retention)
                    if deleted:  # boots left without results are unlisted: check each device's boot again
                        for state in self.devices.values():
                            state.bound_boot = None
                    out.retained_deleted += deleted
            self._flush_results()
            if self.batches is not None:
                self.batches.flush_all(self.outbox)
            if out.evidence_stored:
                self.store.cap_evidence(self.config.evidence.max_bytes)
            self.store.enqueue(self.outbox)
            self.outbox.clear()
            heard = []  # devices seen without new columns (no HELLO in the batch): one statement for all
            for device, (at, fields) in seen.items():  # every record that counts for a device marks it seen
                state = self.devices[device]
                state.last_seen = at
                if fields:
                    self.store.update_device(device, at, counts.get(device, {}), boot_id=state.boot_id,
                                             last_seq=state.last_seq, **fields)
                else:
                    heard.append((device, at, state.boot_id, state.last_seq, counts.get(device, {})))
            self.store.update_devices(heard)
            self.store.add_port_counts(port_counts)
        return out

    def _flush_results(self) -> None:
        self.store.insert_new_results(self.new_results)
        self.new_results.clear()

    def _insert(self, state: DeviceState, row: tuple) -> bool:
        """Store a result row unless its (device, boot_id, seq) is stored; True when stored.
        Results above the boot's highest stored seq (the usual case) wait for one insert per
        batch; any other goes through the duplicate check after the waiting ones."""
        device, boot_id, seq = row[:3]
        if state.bound_boot != boot_id:
            self._flush_results()
            state.bound_boot, state.seq_bound = boot_id, self.store.max_seq(device, boot_id)
            if state.seq_bound is None:
                self.store.add_boot(device, boot_id)
        if state.seq_bound is None or seq > state.seq_bound:
            self.new_results.append(row)
            state.seq_bound = seq
            return True
        self._flush_results()
        return self.store.insert_result(row)

    def _boot(self, device: str, boot_id: int, counts: defaultdict[str, Counter[str]]) -> bool:
        """Track the device's boot; a new boot id after a known one is a reboot."""
        state = self._state(device)
        if state.boot_id == boot_id:
            return False
        if state.boot_id is not None:
            counts[device]["reboots"] += 1
        state.boot_id, state.last_seq = boot_id, None
        return True

    def _hello(self, rec: Identified, out: BatchOutcome, counts: defaultdict[str, Counter[str]],
               seen: Seen) -> None:
        state = self._state(rec.device, rec.model_hash)
        state.port = rec.port
        previous = state.boot_id
        rebooted = self._boot(rec.device, rec.boot_id, counts) and previous is not None
        fields: dict[str, object] = {"port": rec.port, "board": rec.board, "fw_version": rec.fw_version,
                                     "model_hash": rec.model_hash, "authenticated": int(rec.authenticated),
                                     "classes": json.dumps(list(state.model.label_names))
                                     if state.model.label_names else None}
        _mark_seen(seen, rec.device, rec.at, fields)
        self.store.set_port(rec.port, rec.at, device=rec.device)
        payload: dict[str, object] = {
            "site": self.config.site, "device": rec.device, "state": "online", "board": rec.board,
            "fw_version": rec.fw_version, "model_hash": rec.model_hash, "boot_id": rec.boot_id,
            "rebooted": rebooted, "port": rec.port, "authenticated": rec.authenticated, "at": rec.at}
        payload = {"id": status_id(payload), **payload}
        self._enqueue(rec.device, "status", str(payload["id"]), _encode(payload), rec.at, out)

    def _results(self, rec: ResultsRecord, out: BatchOutcome, counts: defaultdict[str, Counter[str]],
                 seen: Seen) -> None:
        """Store, announce and analyse one read's results of one device: the gateway's hot
        loop, so everything that is the same for the whole read is worked out before it."""
        device, at = rec.device, rec.at
        state = self._state(device)
        rules, drift = state.rules, state.drift
        forward = self.config.mqtt is not None
        batches = self.batches
        topic = f"{self.prefix}/{topic_part(device)}/{'result' if batches is None else BATCH_KIND}"
        site_json, device_json, at_json = _json_str(self.config.site), _json_str(device), _json_float(at)
        port, authenticated = rec.port, int(rec.authenticated)
        source_json = _source_json(port, rec.authenticated)
        meanings = state.labels
        stored = duplicates = missing = 0
        for r in rec.results:
            if r.boot_id != state.boot_id:
                self._boot(device, r.boot_id, counts)
            anomalous, class_json = meanings.get(r.label) or state.meaning(r.label)
            seq = r.seq
            row = (device, r.boot_id, seq, at, r.timestamp_ms, r.latency, r.latency_unit, r.label, anomalous,
                   r.score, r.raw_output, port, authenticated)
            if not self._insert(state, row):
                duplicates += 1
                continue
            stored += 1
            last = state.last_seq
            if last is None or seq > last:
                if last is not None:
                    missing += seq - last - 1
                state.last_seq = seq
            if forward:
                payload = _result_json(site_json, device_json, r, at_json, class_json, anomalous, source_json)
                if batches is None:
                    self.outbox.append((device, topic, result_id(device, r.boot_id, seq), payload, at))
                else:
                    batches.add(device, topic, site_json, device_json, result_id(device, r.boot_id, seq), payload,
                                at, self.outbox)
            transitions = rules.on_result(anomalous, r.score, at, fault=state.model.is_fault(r.label))
            drifted = drift.observe(r.score)
            if drifted:
                transitions.append(drifted)
            if transitions:
                self._transitions(device, transitions, at, out)
        _mark_seen(seen, device, at)
        out.stored += stored
        out.duplicates += duplicates
        if forward:
            out.enqueued += stored
        device_counts = counts[device]
        for name, n in (("results", stored), ("duplicates", duplicates), ("missing", missing)):
            if n:
                device_counts[name] += n

    def _transitions(self, device: str, transitions: list[Transition], now: float, out: BatchOutcome) -> None:
        for t in transitions:
            if t.firing:  # a rule that fires while its alert is open (an escalation) supersedes that alert
                superseded = self.store.close_alert(device, t.rule, now)
                if superseded is not None:
                    self._publish_alert(device, superseded, Transition(t.rule, False, t.value,
                                                                       f"superseded: {t.message}"), now, out)
                alert_id = self.store.open_alert(device, t.rule, t.value, t.message, now)
                self._request_evidence(device, alert_id, t.rule, now, out)
            else:
                alert_id = self.store.close_alert(device, t.rule, now)
                if alert_id is None:
                    continue
            self._publish_alert(device, alert_id, t, now, out)
            out.transitions.append((device, t))

    def _publish_alert(self, device: str, alert_id: int, t: Transition, now: float, out: BatchOutcome) -> None:
        state = "firing" if t.firing else "cleared"
        payload = {"id": f"alert/{alert_id}/{state}", "site": self.config.site, "device": device,
                   "rule": t.rule, "state": state, "value": t.value, "message": t.message, "at": now}
        self._enqueue(device, "alert", str(payload["id"]), _encode(payload), now, out)

    def _identity_alert(self, rec: Refused, out: BatchOutcome) -> None:
        """A port that cannot prove a device id claimed it: an ``identity`` alert on that id, once
        while open; it clears when every port refused for the id has disconnected."""
        self.claims.setdefault(rec.device, set()).add(rec.port)
        if any(rule == IDENTITY_RULE for _, rule in self.store.open_alerts(rec.device)):
            return
        self._transitions(rec.device, [Transition(IDENTITY_RULE, True, 1.0,
                                                  f"port {rec.port} claimed this device id and was refused: "
                                                  f"{rec.reason}")], rec.at, out)

    def _release_claims(self, port: str, now: float, out: BatchOutcome) -> None:
        for device in [d for d, ports in self.claims.items() if port in ports]:
            ports = self.claims[device]
            ports.discard(port)
            if not ports:
                del self.claims[device]
                self._transitions(device, [Transition(IDENTITY_RULE, False, 0.0, f"port {port} disconnected")], now, out)

    def close_identity_alerts(self, now: float) -> None:
        """At start no port is connected, so no port claims an id: clear the identity alerts a
        previous run left open (their messages go out like any other)."""
        out = BatchOutcome()
        with self.store.transaction():
            for device, rule in self.store.open_alerts():
                if rule == IDENTITY_RULE:
                    self._transitions(device, [Transition(IDENTITY_RULE, False, 0.0, "the gateway restarted")], now,
                                      out)
            self.store.enqueue(self.outbox)
            self.outbox.clear()

    def _request_evidence(self, device: str, alert_id: int, rule: str, now: float, out: BatchOutcome) -> None:
        """Ask the device for its recent raw windows, within the budget per device and hour."""
        cfg = self.config.evidence
        state = self.devices.get(device)
        if not cfg.enabled or state is None or not state.port or rule == IDENTITY_RULE:
            return
        if self.store.evidence_requests_since(device, now - HOUR_S) >= cfg.per_device_per_hour:
            return
        request_id = self.store.add_evidence_request(device, alert_id, rule, now, cfg.windows)
        state.evidence_request = (request_id, now)
        out.evidence_requests.append((device, state.port, cfg.windows))

    def _evidence_window(self, device: str, window: RawWindow, at: float, out: BatchOutcome) -> None:
        """Store a raw window the device sent after an evidence request (others are not ours)."""
        state = self.devices.get(device)
        request = state.evidence_request if state is not None else None
        if request is None or at - request[1] > RESPONSE_S:
            return
        self._flush_results()  # the result of this window may wait in the batch: link to it
        samples, channels = window.values.shape
        if self.store.add_evidence_window(request[0], device, window.boot_id, window.window, window.timestamp_ms, at,
                                          window.fs, samples, channels, window.sensor,
                                          window.values.astype("<f4").tobytes()):
            out.evidence_stored += 1

    def _enqueue(self, device: str, kind: str, msg_id: str, payload: str, now: float, out: BatchOutcome) -> None:
        if self.config.mqtt is None:  # no broker configured: nothing would ever drain the outbox
            return
        if self.batches is not None:  # the device's results before its alert or status, as they happened
            self.batches.flush(device, self.outbox)
        self.outbox.append((device, f"{self.prefix}/{topic_part(device)}/{kind}", msg_id, payload, now))
        out.enqueued += 1
