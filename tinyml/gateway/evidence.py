"""Evidence windows: the raw sensor windows behind an alert, kept for relabelling and retraining.

When an alert rule or the drift check fires for a device, the gateway asks that device for
its last few raw windows (CAPTURE mode 2, docs/protocol.md), within a budget per device and
hour, and stores them in gateway.db linked to the alert and to the results computed from them
(same device, boot and seq). ``export`` turns stored windows into a dataset file for `tinyml
data info` and `tinyml train` (docs/gateway.md shows the whole loop).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tinyml.data.capture import WindowOrigin, append_windows, same_rate
from tinyml.data.dataset import Dataset
from tinyml.errors import InputError
from tinyml.gateway.store import connect

HOUR_S = 3600.0
RESPONSE_S = 60.0  # windows arriving this long after a request still belong to it


@dataclass(frozen=True, kw_only=True)
class EvidenceConfig:
    """gateway.toml ``[evidence]``: how many windows to ask for per alert (0 turns it off), how
    many requests per device and hour, and how many MB of windows to keep (oldest go first)."""

    windows: int = 8
    per_device_per_hour: int = 4
    max_mb: float = 50.0

    def __post_init__(self) -> None:
        if not 0 <= self.windows <= 65535:
            raise ValueError("windows must be 0..65535")
        if self.per_device_per_hour < 0:
            raise ValueError("per_device_per_hour must be >= 0")
        if not self.max_mb > 0:
            raise ValueError("max_mb must be positive")

    @property
    def enabled(self) -> bool:
        return self.windows > 0 and self.per_device_per_hour > 0

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1e6)


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_since(text: str, now: float | None = None) -> float:
    """Unix seconds from ``1700000000``, an ISO 8601 time (``2026-12-02T06:00:00``, UTC when no
    zone is given) or an age (``30m``, ``2h``, ``7d``)."""
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        return (time.time() if now is None else now) - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--since {text!r} is not a time", "use unix seconds, an ISO time "
                         "(2026-12-02T06:00:00) or an age (30m, 2h, 7d)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _decision(classes_json: str | None, label: int | None, anomaly: int | None) -> str | None:
    """What the device's model said about the window: its class name, or anomaly/normal; None
    (unlabeled) when its result never reached the gateway."""
    classes = json.loads(classes_json) if classes_json else []
    if label is not None and 0 <= label < len(classes):
        return str(classes[label])
    if anomaly is not None:
        return "anomaly" if anomaly else "normal"
    return None


def export(db: Path, out: Path, *, device: str | None = None, since: float | None = None,
           label: str | None = None, append: bool = False) -> tuple[Dataset, int]:
    """Write the stored evidence windows (filtered) as a new dataset at ``out``, or append them to
    the dataset there (``append``: the training data, for a retrain); returns it and the number of
    windows. Without ``label`` each window is labelled with its model's decision, so a person can
    relabel by exporting a selection again with ``--label``."""
    conn = connect(db, readonly=True)
    try:
        rows = conn.execute(
            "SELECT w.device, w.boot_id, w.window, w.received_at, w.fs, w.samples, w.channels, w.sensor, w.data, "
            "w.result_id, w.request_id, q.alert_id, q.rule, r.label, r.anomaly, d.classes "
            "FROM evidence_windows w LEFT JOIN evidence_requests q ON q.id = w.request_id "
            "LEFT JOIN results r ON r.id = w.result_id LEFT JOIN devices d ON d.device = w.device "
            "WHERE (?1 IS NULL OR w.device = ?1) AND (?2 IS NULL OR w.received_at >= ?2) ORDER BY w.id",
            (device, since)).fetchall()
    except sqlite3.OperationalError as exc:
        raise InputError(f"{db} has no evidence windows table ({exc})",
                         "run this tinyml's `gateway run` on it once: it migrates the database") from None
    finally:
        conn.close()
    if not rows:
        what = ", ".join(x for x in (device and f"device {device}", since is not None and "--since") if x)
        raise InputError(f"no evidence windows in {db}" + (f" for {what}" if what else ""),
                         "evidence windows are stored when an alert or drift fires; check `gateway status`")
    first = rows[0]
    for row in rows:
        if not same_rate(row[4], first[4]) or row[5:7] != first[5:7]:
            raise InputError(f"refusing to mix sampling rates or layouts in one file: {first[0]} sent {first[4]:g} Hz "
                             f"x {first[5]} x {first[6]}, {row[0]} {row[4]:g} Hz x {row[5]} x {row[6]}",
                             "export one device (or one kind of device) at a time with --device")
    windows = np.stack([np.frombuffer(row[8], "<f4").reshape(row[5], row[6]) for row in rows])
    origins = [WindowOrigin(row[0], row[1], row[2], row[3], row[7] or "", row[4], "gateway") for row in rows]
    labels = [label or _decision(row[15], row[13], row[14]) for row in rows]
    sessions = [f"evidence-{row[10]}" for row in rows]
    ds = append_windows(out, windows, origins, label=label or "mixed", labels=labels, sessions=sessions,
                        session="evidence", replace=not append, extra={} if append else {"evidence": {
                            "alert_id": [row[11] for row in rows], "rule": [row[12] for row in rows],
                            "result_id": [row[9] for row in rows]}})
    return ds, len(rows)
