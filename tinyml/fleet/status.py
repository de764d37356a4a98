"""The fleet's state as data, read from the store: per site and device the results, rate over
the last minute, last class and score, anomaly share, open alerts and drift; rejected input
per source. One snapshot feeds `tinyml fleet status`, /status and /metrics, whichever consumer
serves it, since they all read the same store.
"""

from __future__ import annotations

import time
from typing import Any

from tinyml.fleet.messages import GATEWAY
from tinyml.fleet.store import FleetStore
from tinyml.gateway.status import _ago, _label

RATE_WINDOW_S = 60.0


def _open_alerts(store: FleetStore) -> list[dict[str, Any]]:
    rows = store.query("SELECT a.site, a.device, a.alert, a.rule, a.value, a.message, a.at FROM alerts a "
                       "WHERE a.state = 'firing' AND NOT EXISTS (SELECT 1 FROM alerts c WHERE c.site = a.site "
                       "AND c.alert = a.alert AND c.state = 'cleared') ORDER BY a.at")
    keys = ("site", "device", "alert", "rule", "value", "message", "fired_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _drift(store: FleetStore) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest drift alert event per device: its state and statistic."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for site, device, state, value, at in store.query(
            "SELECT site, device, state, value, at FROM alerts WHERE rule = 'drift' ORDER BY at"):
        latest[(site, device)] = {"state": state, "value": value, "at": at}
    return latest


def snapshot(store: FleetStore, now: float | None = None) -> dict[str, Any]:
    """Everything `fleet status` shows, as JSON-ready data."""
    now = time.time() if now is None else now
    devices: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(site: str, device: str) -> dict[str, Any]:
        d = devices.get((site, device))
        if d is None:
            d = devices[(site, device)] = {
                "site": site, "device": device, "state": None, "board": None, "fw_version": None,
                "model_hash": None, "boot_id": None, "status_at": None, "results": 0, "anomalies": 0,
                "last_received_at": None, "last_label": None, "last_class": None, "last_score": None,
                "results_per_s": 0.0, "alerts_open": 0, "drift": None}
        return d

    gateways: dict[str, str] = {}
    for site, device, state, board, fw, model_hash, boot_id, status_at in store.query(
            "SELECT site, device, state, board, fw_version, model_hash, boot_id, status_at FROM devices"):
        if device == GATEWAY:
            gateways[site] = state
            continue
        entry(site, device).update(state=state, board=board, fw_version=fw, model_hash=model_hash, boot_id=boot_id,
                                   status_at=status_at)
    consumers: dict[str, int] = {}
    for site, device, consumer, results, anomalies, last_at, label, class_name, score in store.query(
            "SELECT site, device, consumer, results, anomalies, last_received_at, last_label, last_class, "
            "last_score FROM device_stats"):
        d = entry(site, device)
        d["results"] += results
        d["anomalies"] += anomalies
        consumers[consumer] = consumers.get(consumer, 0) + results
        if last_at is not None and (d["last_received_at"] is None or last_at >= d["last_received_at"]):
            d.update(last_received_at=last_at, last_label=label, last_class=class_name, last_score=score)
    for site, device, n, first in store.query(
            "SELECT site, device, count(*), min(received_at) FROM results WHERE received_at >= ? "
            "GROUP BY site, device", (now - RATE_WINDOW_S,)):
        entry(site, device)["results_per_s"] = round(n / max(now - first, 1.0), 3)
    alerts = _open_alerts(store)
    for a in alerts:
        entry(a["site"], a["device"])["alerts_open"] += 1
    for key, drift in _drift(store).items():
        entry(*key)["drift"] = drift
    for d in devices.values():  # "last" and "scores" as the gateway's snapshot has them, for its dashboard page
        d["last"] = None if d["last_received_at"] is None else {
            "label": d["last_label"], "class": d["last_class"], "score": d["last_score"]}
        d["scores"] = []
        d["anomaly_rate"] = round(d["anomalies"] / d["results"], 6) if d["results"] else None
        d["seconds_since_result"] = None if d["last_received_at"] is None else round(now - d["last_received_at"], 3)
    sites: dict[str, dict[str, Any]] = {}
    for d in devices.values():
        s = sites.setdefault(d["site"], {"site": d["site"], "gateway": gateways.get(d["site"]), "devices": 0,
                                         "results": 0, "results_per_s": 0.0, "alerts_open": 0})
        s["devices"] += 1
        s["results"] += d["results"]
        s["results_per_s"] = round(s["results_per_s"] + d["results_per_s"], 3)
        s["alerts_open"] += d["alerts_open"]
    for site, state in gateways.items():
        sites.setdefault(site, {"site": site, "gateway": state, "devices": 0, "results": 0, "results_per_s": 0.0,
                                "alerts_open": 0})
    rejects = [dict(zip(("source", "reason", "count", "last_at", "detail"), r, strict=True)) for r in store.query(
        "SELECT source, reason, count, last_at, detail FROM rejects ORDER BY source, reason")]
    return {"at": now, "results": sum(d["results"] for d in devices.values()),
            "sites": [sites[k] for k in sorted(sites)], "devices": [devices[k] for k in sorted(devices)],
            "alerts": alerts, "rejected": rejects,
            "consumers": [{"consumer": c, "results": n} for c, n in sorted(consumers.items())]}


def format_text(snap: dict[str, Any]) -> str:
    """One line per site, one per device, then open alerts and rejected input."""
    lines = [f"{len(snap['sites'])} site(s), {len(snap['devices'])} device(s), {snap['results']} result(s) stored, "
             f"{len(snap['alerts'])} open alert(s)"]
    for s in snap["sites"]:
        lines.append(f"site {s['site']}: gateway {s['gateway'] or '?'}, {s['devices']} device(s), "
                     f"{s['results']} results, {s['results_per_s']:.1f}/s, {s['alerts_open']} open alert(s)")
        for d in (d for d in snap["devices"] if d["site"] == s["site"]):
            anomaly = "-" if d["anomaly_rate"] is None else f"{d['anomaly_rate']:.0%}"
            drift = d["drift"]
            lines.append(f"  {d['device']:<16} {d['state'] or '-':<8} last {_ago(d['seconds_since_result']):>8}  "
                         f"{d['results']:>8} results  {d['results_per_s']:6.1f}/s  last class "
                         f"{d['last_class'] or d['last_label'] if d['last_label'] is not None else '-'}  "
                         f"anomalies {anomaly}  alerts {d['alerts_open']}"
                         + (f"  drift {drift['state']} {drift['value']:.3g}" if drift and drift["value"] is not None
                            else ""))
    for a in snap["alerts"]:
        lines.append(f"  ALERT {a['site']}/{a['device']} {a['rule']}: {a['message']}")
    for r in snap["rejected"]:
        lines.append(f"  rejected from {r['source']}: {r['count']} {r['reason']} (last: {r['detail']})")
    return "\n".join(lines)


def format_prometheus(snap: dict[str, Any], consumer: dict[str, int] | None = None) -> str:
    """Prometheus text (0.0.4): fleet-wide gauges from the store, plus this consumer's counters."""
    out = ["# TYPE tinyml_fleet_results_stored gauge", f"tinyml_fleet_results_stored {snap['results']}",
           "# TYPE tinyml_fleet_alerts_open gauge", f"tinyml_fleet_alerts_open {len(snap['alerts'])}"]

    def per_device(name: str, key: str, kind: str = "gauge") -> None:
        out.append(f"# TYPE tinyml_fleet_device_{name} {kind}")
        out.extend(f'tinyml_fleet_device_{name}{{site="{_label(d["site"])}",device="{_label(d["device"])}"}} {d[key]}'
                   for d in snap["devices"] if d[key] is not None)

    per_device("results_total", "results", "counter")
    per_device("anomalies_total", "anomalies", "counter")
    per_device("results_per_second", "results_per_s")
    per_device("seconds_since_result", "seconds_since_result")
    per_device("last_label", "last_label")
    per_device("last_score", "last_score")
    per_device("alerts_open", "alerts_open")
    out.append("# TYPE tinyml_fleet_device_drift gauge")
    out += [f'tinyml_fleet_device_drift{{site="{_label(d["site"])}",device="{_label(d["device"])}"}} '
            f'{d["drift"]["value"]}' for d in snap["devices"] if d["drift"] and d["drift"]["value"] is not None]
    out.append("# TYPE tinyml_fleet_rejected_total counter")
    out += [f'tinyml_fleet_rejected_total{{source="{_label(r["source"])}",reason="{r["reason"]}"}} {r["count"]}'
            for r in snap["rejected"]]
    for name, value in (consumer or {}).items():
        out += [f"# TYPE tinyml_fleet_consumer_{name} counter", f"tinyml_fleet_consumer_{name} {value}"]
    return "\n".join(out) + "\n"
