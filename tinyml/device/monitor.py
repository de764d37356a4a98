"""`tinyml monitor`: follow one device's results live, as records a printer turns into lines.

The loop asks the device for HELLO (so results carry its id even when it booted long ago),
turns every event into a plain dict record, counts bad frames instead of stopping on them,
notices reboots by a new ``boot_id``, and on an unplugged port either stops with a clear
error or, with ``reconnect``, reopens the port until ``timeout`` runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tinyml.device import protocol as p
from tinyml.device.link import Link, open_link
from tinyml.errors import DeviceError, InputError
from tinyml.rundir import Labels

Record = dict[str, Any]
HELLO_WAIT_S = 1.0


@dataclass
class MonitorSummary:
    results: int = 0
    devices: set[str] = field(default_factory=set)
    reboots: int = 0
    reconnects: int = 0
    link_stats: dict[str, Any] = field(default_factory=dict)

    def record(self) -> Record:
        return {"event": "summary", "results": self.results, "devices": sorted(self.devices),
                "reboots": self.reboots, "reconnects": self.reconnects,
                "bad_frames": self.link_stats.get("bad_frames", 0),
                "bad_reasons": self.link_stats.get("bad_reasons", {}),
                "frames": self.link_stats.get("frames", 0), "text_bytes": self.link_stats.get("text_bytes", 0)}


def _merge_stats(total: dict[str, Any], stats: dict[str, Any]) -> None:
    for key, value in stats.items():
        if isinstance(value, dict):
            bucket = total.setdefault(key, {})
            for k, v in value.items():
                bucket[k] = bucket.get(k, 0) + v
        else:
            total[key] = total.get(key, 0) + value


class Monitor:
    def __init__(self, port: str, baud: int = 115200, timeout: float = 10.0, reconnect: bool = False,
                 names: Labels | None = None):
        if timeout <= 0:
            raise InputError(f"--timeout must be positive, got {timeout}", hint="e.g. --timeout 10")
        self.port, self.baud, self.timeout, self.reconnect = port, baud, timeout, reconnect
        self.names = names or Labels()
        self.summary = MonitorSummary()
        self.device = port
        self.boot_id: int | None = None
        self.link: Link | None = None

    def _open(self, emit: Callable[[Record], None]) -> None:
        """Open the port and learn the device's id first, so every result line can name it."""
        self.link = open_link(self.port, self.baud, self.timeout)
        try:
            hello = self.link.request(p.HelloReq(), p.Hello, timeout=min(self.timeout, HELLO_WAIT_S), retries=1)
        except DeviceError:  # no HELLO (or an ERROR answer): go on, results name the port instead
            hello = None
        early: list[p.Event] = [p.Text(line) for line in self.link.text_lines]  # e.g. a boot banner
        early += [hello] if hello else []
        early += self.link.unsolicited
        self.link.unsolicited.clear()
        for event in early:
            record = self._record(event)
            if record is not None:
                emit(record)

    def _close(self) -> None:
        if self.link is not None:
            _merge_stats(self.summary.link_stats, self.link.stats())
            self.link.close()
            self.link = None

    def run(self, emit: Callable[[Record], None], count: int = 0) -> MonitorSummary:
        """Emit records until ``count`` results (0: forever), silence, or an unplugged port."""
        if count < 0:
            raise InputError(f"--count must be >= 0, got {count}", hint="0 means run until Ctrl-C")
        self._open(emit)
        try:
            last_data = time.monotonic()
            while not count or self.summary.results < count:
                try:
                    event = self.link.recv_event(0.25)
                except DeviceError as exc:
                    if not self.reconnect:
                        raise
                    emit({"event": "disconnected", "device": self.device, "reason": exc.message})
                    self._reopen(emit)
                    emit({"event": "reconnected", "device": self.device, "port": self.port})
                    last_data = time.monotonic()
                    continue
                if event is None:
                    if time.monotonic() - last_data > self.timeout:
                        raise DeviceError(f"no data from {self.port} for {self.timeout:g} s",
                                          hint="check that the device runs tinyml firmware at this --baud")
                    continue
                last_data = time.monotonic()
                record = self._record(event)
                if record is not None:
                    emit(record)
        finally:
            self._close()
        return self.summary

    def _reopen(self, emit: Callable[[Record], None]) -> None:
        self._close()
        self.summary.reconnects += 1
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._open(emit)
                return
            except DeviceError:
                if time.monotonic() >= deadline:
                    raise DeviceError(f"{self.port} did not come back within {self.timeout:g} s",
                                      hint="check the cable and power, or raise --timeout") from None
                time.sleep(0.2)

    def _boot(self, boot_id: int) -> Record | None:
        previous, self.boot_id = self.boot_id, boot_id
        if previous is not None and previous != boot_id:
            self.summary.reboots += 1
            return {"event": "reboot", "device": self.device, "boot_id": boot_id, "previous_boot_id": previous}
        return None

    def _record(self, event: p.Event) -> Record | None:
        if isinstance(event, p.Text):
            return {"event": "text", "device": self.device, "line": event.line}
        if isinstance(event, p.BadFrame):
            return None  # counted by the decoder, shown in the summary
        if isinstance(event, p.Hello):
            self.device = event.device_id or self.port
            self.summary.devices.add(self.device)
            rebooted = self._boot(event.boot_id)
            return rebooted or {"event": "hello", **p.message_to_dict(event), "device": self.device}
        if isinstance(event, p.Result):
            self.summary.results += 1
            self.summary.devices.add(self.device)
            rebooted = self._boot(event.boot_id)
            record = {"event": "result", "device": self.device, "seq": event.seq, "boot_id": event.boot_id,
                      "timestamp_ms": event.timestamp_ms, "label": event.label,
                      "label_name": self.names.class_name(event.label), "score": event.score,
                      "latency": event.latency, "latency_unit": p.LATENCY_UNIT_NAMES.get(event.latency_unit, "?"),
                      "output": list(event.output)}
            if rebooted:
                record["rebooted"] = True
            return record
        if isinstance(event, p.Heartbeat):
            self._boot(event.boot_id)
            return {"event": "heartbeat", **p.message_to_dict(event), "device": self.device}
        if isinstance(event, p.Error):
            return {"event": "error", "device": self.device, "code": event.code, "message": event.message}
        return None


def format_record(record: Record) -> str:
    """One human-readable line per record."""
    kind, dev = record["event"], record.get("device", "")
    if kind == "result":
        label = record["label_name"] or ("-" if record["label"] == p.LABEL_UNDECIDED else str(record["label"]))
        return (f"{dev} seq={record['seq']} label={label} score={record['score']:.4g} "
                f"latency={record['latency']}{record['latency_unit']}" + (" (rebooted)" if record.get("rebooted") else ""))
    if kind == "text":
        return f"{dev} | {record['line']}"
    if kind == "hello":
        return (f"{dev} hello: board={record['board']} fw={record['fw_version']} model={record['model_hash']} "
                f"boot={record['boot_id']:08x}"
                + (" ARENA ALLOCATION FAILED: inferences will fail" if record.get("arena_bytes") == p.ARENA_FAILED
                   else ""))
    if kind == "heartbeat":
        line = f"{dev} heartbeat: uptime={record['uptime_ms'] / 1000:.1f}s results={record['results']} rx_errors={record['rx_errors']}"
        if "sensor_status" in record:
            status = p.SENSOR_STATUS_NAMES.get(record["sensor_status"], str(record["sensor_status"]))
            line += f" sensor={status} reads={record['sensor_reads']} sensor_errors={record['sensor_errors']}"
        return line
    if kind == "reboot":
        return f"{dev} rebooted: boot {record['previous_boot_id']:08x} -> {record['boot_id']:08x}"
    if kind == "error":
        if record["code"] == p.ERR_SENSOR:
            return (f"{dev} sensor error: {record['message']} (hint: check the wiring, power and address, and "
                    "that the sensor named at `tinyml firmware new --sensor` is the one fitted; docs/sensors.md)")
        return f"{dev} device error {record['code']}: {record['message']}"
    if kind == "disconnected":
        return f"{dev} disconnected ({record['reason']}); reconnecting"
    if kind == "reconnected":
        return f"{dev} reconnected on {record['port']}"
    if kind == "summary":
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(record["bad_reasons"].items()))
        return (f"monitor: {record['results']} results from {len(record['devices'])} device(s), "
                f"{record['bad_frames']} bad frames" + (f" ({reasons})" if reasons else "")
                + f", {record['text_bytes']} text bytes, {record['reboots']} reboots, {record['reconnects']} reconnects")
    return str(record)
