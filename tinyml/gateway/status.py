"""The gateway's state as data, read from its database: devices, rolling aggregates,
open alerts, ports and outbox depth. The same snapshot feeds `tinyml gateway status`,
the HTTP /status endpoint and the Prometheus /metrics text, and works while the gateway
runs (WAL readers never block the writer) or after it stopped.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from tinyml.device.protocol import LATENCY_UNIT_NAMES
from tinyml.errors import InputError
from tinyml.gateway.logsafe import escape_controls
from tinyml.gateway.store import DEVICE_COUNTERS, connect, device_results

ROLLING = 1000  # results per device the rolling aggregates cover
RATE_WINDOW_S = 60.0
SPARKLINE = 60  # latest scores per device in the snapshot, for the dashboard's sparkline
RECENT_ALERTS = 20  # latest alerts, open or cleared
ONLINE_S = 10.0  # a device heard from within this many seconds is online, else silent


def _percentiles(values: list[float], qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | None]:
    if not values:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": round(float(v), 6) for q, v in zip(qs, np.percentile(values, qs), strict=True)}


def _device(conn: sqlite3.Connection, row: sqlite3.Row, now: float, boots: bool) -> dict[str, Any]:
    device = row["device"]
    columns = "label, anomaly, score, latency, latency_unit, received_at"
    if boots:
        recent = [tuple(r)[2:] for r in device_results(conn, device, columns, ROLLING, newest_first=True)]
    else:  # a database from before schema 4 that no gateway has opened since: results are indexed by device
        recent = conn.execute(f"SELECT {columns} FROM results WHERE device = ? ORDER BY id DESC LIMIT ?",
                              (device, ROLLING)).fetchall()
    classes = json.loads(row["classes"]) if row["classes"] else []
    counts: dict[str, int] = {}
    for label, *_ in recent:
        name = classes[label] if 0 <= label < len(classes) else str(label)
        counts[name] = counts.get(name, 0) + 1
    judged = [r[1] for r in recent if r[1] is not None]
    in_window = [r[5] for r in recent if r[5] >= now - RATE_WINDOW_S]
    span = max(now - min(in_window), 1.0) if in_window else RATE_WINDOW_S
    frames, bad = row["frames"], row["bad_frames"]
    since = None if row["last_seen"] is None else now - row["last_seen"]
    last = None
    if recent:
        label, anomaly, score, _, _, at = recent[0]
        last = {"label": label, "class": classes[label] if 0 <= label < len(classes) else None,
                "anomaly": None if anomaly is None else bool(anomaly), "score": score, "at": at}
    return {
        "device": device, "port": row["port"], "board": row["board"], "fw_version": row["fw_version"],
        "model_hash": row["model_hash"], "boot_id": row["boot_id"], "last_seq": row["last_seq"],
        "first_seen": row["first_seen"], "last_seen": row["last_seen"],
        # whether the device proved its key at its last HELLO (None: a database from before schema 3)
        "authenticated": None if dict(row).get("authenticated") is None else bool(row["authenticated"]),
        "seconds_since_seen": None if since is None else round(since, 3),
        "state": "unknown" if since is None else "online" if since <= ONLINE_S else "silent",
        "last": last, "scores": [r[2] for r in recent[:SPARKLINE]][::-1],
        **{c: row[c] for c in DEVICE_COUNTERS},
        "results_per_s": round(len(in_window) / span, 3),
        "frame_error_rate": round(bad / (frames + bad), 6) if frames + bad else 0.0,
        "window": len(recent), "class_counts": counts,
        "anomaly_rate": round(sum(judged) / len(judged), 6) if judged else None,
        "score": _percentiles([r[2] for r in recent]),
        "latency": {**_percentiles([r[3] for r in recent], (50, 95)),
                    "unit": LATENCY_UNIT_NAMES.get(recent[0][4], str(recent[0][4])) if recent else None},
    }


def _evidence(conn: sqlite3.Connection) -> dict[str, int]:
    """Evidence windows kept (docs/gateway.md); zeros for a database from before them (schema 1)."""
    if conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'evidence_windows'").fetchone()[0] == 0:
        return {"windows": 0, "requests": 0, "bytes": 0}
    windows, size = conn.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM evidence_windows").fetchone()
    requests = conn.execute("SELECT count(*) FROM evidence_requests").fetchone()[0]
    return {"windows": int(windows), "requests": int(requests), "bytes": int(size)}


def snapshot(conn: sqlite3.Connection, now: float | None = None, *, limit: int | None = None,
             offset: int = 0) -> dict[str, Any]:
    """Everything `gateway status` shows, as JSON-ready data. ``limit``/``offset`` page the devices
    (ordered by id; ``devices_total`` counts them all) so a big fleet is read a page at a time."""
    now = time.time() if now is None else now
    conn.row_factory = sqlite3.Row
    try:
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
        boots = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'boots'").fetchone()[0] > 0
        devices = [_device(conn, row, now, boots) for row in
                   conn.execute(f"SELECT * FROM devices ORDER BY device{page}").fetchall()]
        devices_total = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        ports = [dict(r) for r in conn.execute("SELECT * FROM ports ORDER BY port")]
        alerts = [dict(r) for r in conn.execute("SELECT id, device, rule, value, message, fired_at FROM alerts "
                                                "WHERE cleared_at IS NULL ORDER BY id")]
        recent_alerts = [dict(r) for r in conn.execute(
            "SELECT id, device, rule, value, message, fired_at, cleared_at FROM alerts ORDER BY id DESC LIMIT ?",
            (RECENT_ALERTS,))]
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        results = conn.execute("SELECT count(*) FROM results").fetchone()[0]
        evidence = _evidence(conn)
    finally:
        conn.row_factory = None
    return {"at": now, "results": results, "outbox": outbox, "devices": devices, "devices_total": devices_total,
            "ports": ports, "alerts": alerts, "recent_alerts": recent_alerts, "evidence": evidence}


def read(db: Path) -> dict[str, Any]:
    conn = connect(db, readonly=True)
    try:
        return snapshot(conn)
    except sqlite3.DatabaseError as exc:
        raise InputError(f"cannot read gateway database {db}: {exc}",
                         "is it a database written by `tinyml gateway run`?") from None
    finally:
        conn.close()


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def format_text(snap: dict[str, Any]) -> str:
    """A short human summary: one line per device, then alerts, ports and the outbox."""
    lines = [f"{len(snap['devices'])} device(s), {snap['results']} result(s) stored, "
             f"outbox {snap['outbox']}, {len(snap['alerts'])} open alert(s)"]
    for d in snap["devices"]:
        score = d["score"]["p50"]
        anomaly = "-" if d["anomaly_rate"] is None else f"{d['anomaly_rate']:.0%}"
        auth = {True: "", False: " (unauthenticated)", None: ""}[d.get("authenticated")]
        lines.append(f"  {d['device'] + auth:<16} {d['port'] or '-':<24} seen {_ago(d['seconds_since_seen']):>8}  "
                     f"{d['results']:>7} results  {d['results_per_s']:6.1f}/s  missing {d['missing']}  "
                     f"reboots {d['reboots']}  bad frames {d['bad_frames']} ({d['frame_error_rate']:.1%})  "
                     f"anomalies {anomaly}  score p50 {'-' if score is None else f'{score:.4g}'}")
        top = sorted(d["class_counts"].items(), key=lambda kv: -kv[1])[:4]
        if top:
            lines.append(f"  {'':<16} last {d['window']}: " + ", ".join(f"{name} {n}" for name, n in top))
    for a in snap["alerts"]:
        lines.append(f"  ALERT {a['device']} {a['rule']}: {a['message']}")
    ev = snap.get("evidence") or {}
    if ev.get("windows"):
        lines.append(f"  evidence: {ev['windows']} raw window(s) from {ev['requests']} request(s), "
                     f"{ev['bytes'] / 1e6:.2f} MB (`tinyml gateway export`)")
    for p in snap["ports"]:
        state = "connected" if p["connected"] else f"down ({p['last_error'] or 'closed'})"
        lines.append(f"  port {p['port']}: {state}, {p['connects']} connect(s), {p['bad_frames']} bad frame(s)"
                     + (f", {p['refused']} refused" if p.get("refused") else ""))
    return "\n".join(escape_controls(line) for line in lines)  # device ids cannot forge lines or repaint


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_prometheus(snap: dict[str, Any]) -> str:
    """Prometheus text exposition format (version 0.0.4)."""
    out = ["# TYPE tinyml_gateway_results_stored gauge", f"tinyml_gateway_results_stored {snap['results']}",
           "# TYPE tinyml_gateway_outbox_depth gauge", f"tinyml_gateway_outbox_depth {snap['outbox']}",
           "# TYPE tinyml_gateway_alerts_open gauge", f"tinyml_gateway_alerts_open {len(snap['alerts'])}",
           "# TYPE tinyml_gateway_evidence_windows_stored gauge",
           f"tinyml_gateway_evidence_windows_stored {(snap.get('evidence') or {}).get('windows', 0)}"]
    for counter in DEVICE_COUNTERS:
        out.append(f"# TYPE tinyml_gateway_device_{counter}_total counter")
        out += [f'tinyml_gateway_device_{counter}_total{{device="{_label(d["device"])}"}} {d[counter]}'
                for d in snap["devices"]]
    gauges = {"seconds_since_seen": "seconds_since_seen", "results_per_second": "results_per_s",
              "frame_error_rate": "frame_error_rate", "anomaly_rate": "anomaly_rate"}
    for name, key in gauges.items():
        out.append(f"# TYPE tinyml_gateway_device_{name} gauge")
        out += [f'tinyml_gateway_device_{name}{{device="{_label(d["device"])}"}} {d[key]}'
                for d in snap["devices"] if d[key] is not None]
    out.append("# TYPE tinyml_gateway_device_score gauge")
    for d in snap["devices"]:
        out += [f'tinyml_gateway_device_score{{device="{_label(d["device"])}",quantile="0.{q[1:]}"}} {v}'
                for q, v in d["score"].items() if v is not None]
    out.append("# TYPE tinyml_gateway_alert_firing gauge")
    out += [f'tinyml_gateway_alert_firing{{device="{_label(a["device"])}",rule="{a["rule"]}"}} 1'
            for a in snap["alerts"]]
    out.append("# TYPE tinyml_gateway_device_drift gauge")  # only a running gateway knows it
    out += [f'tinyml_gateway_device_drift{{device="{_label(d["device"])}",method="{d["drift"]["method"]}"}} '
            f'{d["drift"]["value"]}' for d in snap["devices"] if (d.get("drift") or {}).get("value") is not None]
    if snap.get("mqtt") is not None:
        out += ["# TYPE tinyml_gateway_mqtt_connected gauge",
                f"tinyml_gateway_mqtt_connected {int(snap['mqtt']['connected'])}"]
    out.append("# TYPE tinyml_gateway_device_authenticated gauge")
    out += [f'tinyml_gateway_device_authenticated{{device="{_label(d["device"])}"}} {int(d["authenticated"])}'
            for d in snap["devices"] if d.get("authenticated") is not None]
    out.append("# TYPE tinyml_gateway_port_refused_total counter")  # claims and results refused (identity)
    out += [f'tinyml_gateway_port_refused_total{{port="{_label(p["port"])}"}} {p.get("refused", 0)}'
            for p in snap["ports"]]
    refusals = {**(snap.get("device_ids") or {}).get("refused", {}),
                **(snap.get("device_ids") or {}).get("identity_refused", {})}
    if refusals:  # only a running gateway knows the reasons
        out.append("# TYPE tinyml_gateway_device_id_refused_total counter")
        out += [f'tinyml_gateway_device_id_refused_total{{reason="{_label(r)}"}} {n}' for r, n in refusals.items()]
    out.append("# TYPE tinyml_gateway_port_connected gauge")
    out += [f'tinyml_gateway_port_connected{{port="{_label(p["port"])}"}} {p["connected"]}' for p in snap["ports"]]
    return "\n".join(out) + "\n"
