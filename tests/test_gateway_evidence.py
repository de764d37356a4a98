"""Evidence windows: an alert makes the gateway ask the device for its recent raw windows (within
a budget and a storage cap), stores them linked to the alert and to their results, migrates an
older gateway.db safely, and exports them as a dataset that trains."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tests.test_gateway_e2e import GatewayProcess, count, query, wait_until
from tinyml.data.dataset import load
from tinyml.device import protocol
from tinyml.device.emulated_model import DeviceModel
from tinyml.device.emulator import EmulatedFleet
from tinyml.device.windows import window_chunks
from tinyml.errors import InputError
from tinyml.gateway.config import GatewayConfig, ModelRoute
from tinyml.gateway.evidence import EvidenceConfig, export, parse_since
from tinyml.gateway.ingest import LineState
from tinyml.gateway.processor import Processor
from tinyml.gateway.rules import RuleConfig
from tinyml.gateway.store import SCHEMA_VERSION, Store
from tinyml.rundir import Labels

HASH = bytes(range(8))
BOOT = 7


def hello() -> bytes:
    return protocol.encode(protocol.Hello(1, "b", "1", "dev", HASH, 1, 2, 3, BOOT, protocol.LATENCY_US))


def results(first: int, labels: list[int]) -> bytes:
    return b"".join(protocol.encode(protocol.Result(first + i, BOOT, i, 5, protocol.LATENCY_US, label, 0.5, (1,)))
                    for i, label in enumerate(labels))


def samples(window: int, fs: float = 100.0, shape: tuple[int, int] = (32, 3)) -> bytes:
    values = np.full(shape, float(window), np.float32)
    return b"".join(protocol.encode(m) for m in window_chunks(boot_id=BOOT, window=window, timestamp_ms=window,
                                                              fs=fs, sensor="s", values=values))


def config(**evidence) -> GatewayConfig:
    return GatewayConfig(ports=("p1",), rules=RuleConfig(anomaly_k=3, anomaly_n=5, anomaly_clear_k=1,
                                                         silent_seconds=None, error_rate=None),
                         models=(ModelRoute(Labels("classifier", ("ok", "bad"), "ok"), ("dev",)),),
                         evidence=EvidenceConfig(**evidence))


def test_alerts_ask_for_evidence_within_the_budget_and_windows_link_to_results(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config(windows=3, per_device_per_hour=2))
    line = LineState("p1")
    now = 1000.0
    out = proc.process(line.feed(hello() + results(0, [1, 1, 1]), now), now)
    assert out.evidence_requests == [("dev", "p1", 3)]  # the anomaly alert fired: ask the port of that device
    out = proc.process(line.feed(samples(1) + samples(2) + samples(9), now + 1), now + 1)
    assert out.evidence_stored == 3
    linked = store.conn.execute("SELECT w.window, r.seq, q.rule, q.alert_id FROM evidence_windows w LEFT JOIN "
                                "results r ON r.id = w.result_id JOIN evidence_requests q ON q.id = w.request_id "
                                "ORDER BY w.window").fetchall()
    alert_id = store.conn.execute("SELECT id FROM alerts").fetchone()[0]
    assert linked == [(1, 1, "anomalies", alert_id), (2, 2, "anomalies", alert_id), (9, None, "anomalies", alert_id)]
    assert store.conn.execute("SELECT windows_asked, windows_received FROM evidence_requests").fetchall() == [(3, 3)]
    # clear, fire again: a second request; clear, fire a third time in the same hour: over budget
    asked = []
    for k in range(2):
        proc.process(line.feed(results(10 + 20 * k, [0] * 5), now + 10 + k), now + 10 + k)
        asked.append(proc.process(line.feed(results(15 + 20 * k, [1] * 3), now + 20 + k), now + 20 + k)
                     .evidence_requests)
    assert asked == [[("dev", "p1", 3)], []]
    assert store.conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 3
    # windows nobody asked for (long after the request) are not stored
    late = now + 21 + 3600
    assert proc.process(line.feed(samples(50), late), late).evidence_stored == 0


def test_the_storage_cap_drops_the_oldest_windows(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    per_window = 32 * 3 * 4
    proc = Processor(store, config(windows=8, max_mb=2.5 * per_window / 1e6))
    line = LineState("p1")
    proc.process(line.feed(hello() + results(0, [1, 1, 1]), 1000.0), 1000.0)
    out = proc.process(line.feed(b"".join(samples(w) for w in range(5)), 1001.0), 1001.0)
    assert out.evidence_stored == 5
    assert [w for (w,) in store.conn.execute("SELECT window FROM evidence_windows ORDER BY id")] == [3, 4]


def test_a_schema_1_database_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    store = Store(db)
    Processor(store, config()).process(LineState("p1").feed(hello() + results(0, [0, 0]), 5.0), 5.0)
    with store.transaction():  # what a schema-1 gateway left behind
        store.conn.execute("DROP TABLE evidence_windows")
        store.conn.execute("DROP TABLE evidence_requests")
        store.conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    store.close()
    store = Store(db)
    assert store.migrated_from == "1"
    assert store.conn.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
    assert store.conn.execute("SELECT count(*) FROM results").fetchone()[0] == 2
    assert store.conn.execute("SELECT count(*) FROM evidence_windows").fetchone()[0] == 0
    store.conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    store.close()
    with pytest.raises(InputError, match=f"has schema 99, this gateway needs {SCHEMA_VERSION}"):
        Store(db)


def test_export_refuses_mixed_rates_and_empty_selections(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    store = Store(db)
    proc = Processor(store, config(windows=4))
    line = LineState("p1")
    proc.process(line.feed(hello() + results(0, [1, 1, 1]), 1000.0), 1000.0)
    proc.process(line.feed(samples(0) + samples(1, fs=50.0) + samples(2), 1001.0), 1001.0)
    store.close()
    with pytest.raises(InputError, match="refusing to mix sampling rates or layouts"):
        export(db, tmp_path / "w.npz")
    with pytest.raises(InputError, match="no evidence windows .* for device nope"):
        export(db, tmp_path / "w.npz", device="nope")
    assert not (tmp_path / "w.npz").exists()
    assert parse_since("2h", now=10000.0) == 10000.0 - 7200
    assert parse_since("2026-12-02T06:00:00") == parse_since("2026-12-02T06:00:00+00:00")
    with pytest.raises(InputError, match="is not a time"):
        parse_since("yesterday")
    assert_clean_error(run_cli("gateway", "export", "--db", tmp_path / "none.db", "--out", tmp_path / "w.npz"),
                       "no gateway database")


def test_emulated_fleet_alert_evidence_export_and_retrain(tmp_path: Path, trained_run) -> None:
    """The real emulator (a run directory: a synthetic vibration sensor) and the real gateway: the
    anomaly alert brings the device's last windows into gateway.db, each the exact window behind
    its stored result, and `gateway export` turns them into a dataset that trains."""
    model = DeviceModel(trained_run.run_dir)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"[[models]]\nrun = '{trained_run.run_dir}'\ndevices = ['emu-*']\n"
                   "[rules]\nanomaly_k = 3\nanomaly_n = 5\nanomaly_clear_k = 1\nsilent_seconds = 60\n"
                   "[evidence]\nwindows = 6\nper_device_per_hour = 1\n")
    with EmulatedFleet(model, count=2, tcp_port=0, rate=20, seed=4) as fleet:
        gw = GatewayProcess(tmp_path, fleet.endpoints, "--config", str(cfg))
        try:
            wait_until(lambda: count(gw.db, "SELECT count(*) FROM evidence_windows") >= 12, 60, "evidence windows")
            time.sleep(1.0)
        finally:
            assert gw.stop() == 0
    log = gw.text()
    assert "asked emu-000 for its last 6 raw window(s) as evidence" in log
    assert count(gw.db, "SELECT count(*) FROM evidence_requests") == 2  # one per device: the hourly budget
    rows = query(gw.db, "SELECT w.data, w.samples, w.channels, w.window, r.seq, r.output FROM evidence_windows w "
                        "JOIN results r ON r.id = w.result_id WHERE w.device = 'emu-000'")
    # windows read before the gateway connected have no stored result; the others link to theirs
    assert 3 <= len(rows) <= 6
    for data, samples_, channels, window, seq, output in rows:
        assert window == seq
        values = np.frombuffer(data, "<f4").reshape(1, samples_, channels)
        again = model.infer(model._quantize(values)[0].tobytes())
        assert bytes(v & 0xFF for v in again.output) == output  # the very window behind that result
    status = run_cli("gateway", "status", "--db", gw.db)
    assert status.returncode == 0 and "evidence: 12 raw window(s) from 2 request(s)" in status.stdout
    proc = run_cli("gateway", "export", "--db", gw.db, "--out", tmp_path / "w.npz", "--device", "emu-000")
    assert proc.returncode == 0, proc.stderr
    assert "exported 6 evidence window(s) of 256 x 3 at 2560 Hz" in proc.stdout
    ds = load(tmp_path / "w.npz")
    assert ds.n == 6 and set(ds.classes) <= {"healthy", "imbalance", "bearing_outer"}
    assert int((ds.y == -1).sum()) == 6 - len(rows)  # no result, no decision: unlabeled until relabelled
    assert set(ds.meta["evidence"]["rule"]) <= {"anomalies", "drift"}
    assert sum(r is not None for r in ds.meta["evidence"]["result_id"]) == len(rows)
    assert set(ds.meta["provenance"]["source"]) == {"gateway"}
    info = run_cli("data", "info", tmp_path / "w.npz")
    assert info.returncode == 0 and "windows: 6 x 256 samples x 3 channels" in info.stdout
    # relabel: a person says what the kept windows really are, appends them to the training data, retrains
    data = tmp_path / "train.npz"
    data.write_bytes(trained_run.data.read_bytes())
    before = load(data)
    proc = run_cli("gateway", "export", "--db", gw.db, "--out", data, "--label", "bearing_outer", "--append")
    assert proc.returncode == 0, proc.stderr
    after = load(data)
    assert after.n == before.n + 12 and after.classes == before.classes
    assert int((after.y == after.classes.index("bearing_outer")).sum()) == \
        int((before.y == before.classes.index("bearing_outer")).sum()) + 12
    train = run_cli("train", data, "--model", "cnn1d", "--epochs", "1", "--out", tmp_path / "retrained")
    assert train.returncode == 0, train.stderr
    conn = sqlite3.connect(gw.db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (str(SCHEMA_VERSION),)
    conn.close()
