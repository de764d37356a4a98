"""Ingest -> processor -> SQLite: dedupe, gaps, reboots, the outbox written with the record,
rule state surviving a restart, retention, and clear errors for unusable databases."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import assert_clean_error, run_cli
from tinyml.device import protocol
from tinyml.errors import InputError
from tinyml.gateway.config import GatewayConfig, ModelRoute, parse_mqtt_url
from tinyml.gateway.drift import DriftConfig
from tinyml.gateway.ingest import LineState, ResultsRecord, Retention, Tick
from tinyml.gateway.processor import Processor
from tinyml.gateway.rules import RuleConfig
from tinyml.gateway.status import snapshot
from tinyml.gateway.store import RetentionLimits, Store, connect
from tinyml.rundir import Labels

HASH = bytes(range(8))


def hello(device: str, boot: int) -> bytes:
    return protocol.encode(protocol.Hello(1, "b", "1", device, HASH, 1, 2, 3, boot, protocol.LATENCY_US))


def result(seq: int, boot: int, label: int = 0, score: float = 0.1) -> bytes:
    return protocol.encode(protocol.Result(seq, boot, seq * 10, 500, protocol.LATENCY_US, label, score, (1, -2)))


def config(**kw) -> GatewayConfig:
    base = dict(ports=("socket://127.0.0.1:1",), mqtt=parse_mqtt_url("mqtt://127.0.0.1:1"), site="lab")
    return GatewayConfig(**{**base, **kw})


def feed(proc: Processor, data: bytes, now: float = 1000.0, port: str = "p1", line: LineState | None = None):
    line = line or LineState(port)
    return proc.process(line.feed(data, now), now), line


def rows(store: Store, sql: str) -> list[tuple]:
    return store.conn.execute(sql).fetchall()


def test_results_before_hello_are_held_then_stored_once_each(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    line = LineState("p1")
    out, _ = feed(proc, result(0, 7) + result(1, 7), line=line)
    assert out.stored == 0 and len(line.pending) == 2
    out, _ = feed(proc, hello("dev", 7) + result(2, 7) + result(2, 7), line=line)
    assert out.stored == 3 and out.duplicates == 1
    assert rows(store, "SELECT device, boot_id, seq FROM results ORDER BY seq") == \
        [("dev", 7, 0), ("dev", 7, 1), ("dev", 7, 2)]
    topics = [t for (t,) in rows(store, "SELECT topic FROM outbox ORDER BY id")]
    assert topics == ["tinyml/lab/dev/status"] + ["tinyml/lab/dev/result"] * 3
    ids = [json.loads(p)["id"] for (p,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%result'")]
    assert ids == ["dev/00000007/0", "dev/00000007/1", "dev/00000007/2"]


def test_gaps_reboots_and_bad_frames_are_counted(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    line = LineState("p1")
    stream = hello("dev", 1) + result(0, 1) + result(1, 1) + result(5, 1)  # 2,3,4 lost
    stream += b"\x00\x13\x37garbage\xff\x00" + result(6, 1)[:-5] + b"\x00"  # a bad chunk and a cut frame
    stream += b"booting...\r\n" + hello("dev", 2) + result(0, 2)  # reboot: new boot id, seq restarts
    feed(proc, stream, line=line)
    dev = store.conn.execute("SELECT results, missing, reboots, bad_frames, text_lines, boot_id, last_seq "
                             "FROM devices WHERE device='dev'").fetchone()
    assert dev == (4, 3, 1, 2, 1, 2, 0)
    status = [json.loads(p) for (p,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%status'")]
    assert [s["rebooted"] for s in status] == [False, True]


def test_device_and_port_counters_add_up_over_batches_with_and_without_hello(tmp_path):
    """Batches without a HELLO update every device and port row with one statement each: the
    counters must add up exactly as one batch per device would, for two devices on two ports."""
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    lines = {"p1": LineState("p1"), "p2": LineState("p2")}
    proc.process(lines["p1"].feed(hello("a", 1) + result(0, 1), 1.0) + lines["p2"].feed(hello("b", 4), 1.0), 1.0)
    for i in range(1, 4):  # three batches with no HELLO: results, a gap, a bad chunk and a text line
        records = lines["p1"].feed(result(2 * i, 1) + b"\x00\x13\x37\xff\x00" + b"hi\n", 2.0 + i)
        records += lines["p2"].feed(result(i, 4), 2.0 + i)
        proc.process(records, 2.0 + i)
    devices = rows(store, "SELECT device, results, missing, frames, bad_frames, text_lines, boot_id, last_seq, "
                          "last_seen FROM devices ORDER BY device")
    assert devices == [("a", 4, 3, 5, 3, 3, 1, 6, 5.0), ("b", 3, 0, 4, 0, 0, 4, 3, 5.0)]
    ports = rows(store, "SELECT port, frames, bad_frames, text_lines, unidentified FROM ports ORDER BY port")
    assert ports == [("p1", 5, 3, 3, 0), ("p2", 4, 0, 0, 0)]
    with pytest.raises(ValueError, match="unknown ports counters"):
        store.add_port_counts({"p1": {"frames": 1, "bogus": 1}})


def test_alerts_fire_and_clear_into_store_and_outbox_and_survive_restart(tmp_path):
    db = tmp_path / "g.db"
    cfg = config(rules=RuleConfig(anomaly_k=2, anomaly_n=3, anomaly_clear_k=0, anomaly_clear_seconds=0,
                                  silent_seconds=5))
    store = Store(db)
    proc = Processor(store, cfg)
    line = LineState("p1")
    feed(proc, hello("dev", 1) + result(0, 1, label=1) + result(1, 1, label=1), line=line)
    assert rows(store, "SELECT rule, cleared_at FROM alerts") == [("anomalies", None)]
    store.close()
    # restart: the open alert is restored, so more anomalies do not fire it again
    store = Store(db)
    proc = Processor(store, cfg)
    line = LineState("p1")
    feed(proc, hello("dev", 1) + result(2, 1, label=1), line=line)
    assert len(rows(store, "SELECT * FROM alerts")) == 1
    feed(proc, result(3, 1) + result(4, 1) + result(5, 1), line=line)
    assert rows(store, "SELECT rule, cleared_at IS NOT NULL FROM alerts") == [("anomalies", 1)]
    proc.process([Tick(1000.0 + 6)], 1006.0)  # 6 s without a frame: silent
    assert ("silent", None) in rows(store, "SELECT rule, cleared_at FROM alerts")
    alerts = [json.loads(p) for (p,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%alert'")]
    assert [(a["rule"], a["state"]) for a in alerts] == [("anomalies", "firing"), ("anomalies", "cleared"),
                                                         ("silent", "firing")]
    assert len({a["id"] for a in alerts}) == 3


def test_an_escalation_supersedes_the_open_alert_in_store_and_outbox(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config(rules=RuleConfig(anomaly_k=2, anomaly_n=3, anomaly_clear_k=0,
                                                    anomaly_escalate=3.0)))
    line = LineState("p1")
    feed(proc, hello("dev", 1) + result(0, 1, label=1, score=1.0) + result(1, 1, label=1, score=1.0), line=line)
    feed(proc, result(2, 1, label=1, score=2.9), line=line)  # not 3 times its lowest since it fired
    assert rows(store, "SELECT rule, cleared_at FROM alerts") == [("anomalies", None)]
    feed(proc, result(3, 1, label=1, score=3.5), now=1001.0, line=line)
    assert rows(store, "SELECT id, cleared_at FROM alerts ORDER BY id") == [(1, 1001.0), (2, None)]
    alerts = [json.loads(p) for (p,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%alert'")]
    assert [(a["id"], a["state"]) for a in alerts] == [("alert/1/firing", "firing"), ("alert/1/cleared", "cleared"),
                                                       ("alert/2/firing", "firing")]
    assert alerts[1]["message"].startswith("superseded: escalated") and "3.5" in alerts[2]["message"]


def test_a_sensor_fault_during_an_open_alert_supersedes_it_and_a_restart_does_not_repeat_it(tmp_path):
    db = tmp_path / "g.db"
    cfg = config(models=(ModelRoute(Labels(task="anomaly", threshold=1.0), ("pump-*",)),),
                 rules=RuleConfig(anomaly_k=2, anomaly_n=3, anomaly_clear_k=0))
    store = Store(db)
    proc = Processor(store, cfg)
    line = LineState("p1")
    feed(proc, hello("pump-1", 1) + result(0, 1, label=1, score=1.5) + result(1, 1, label=1, score=1.5), line=line)
    feed(proc, result(2, 1, label=2, score=1.2) + result(3, 1, label=2, score=1.2), now=1001.0, line=line)
    assert rows(store, "SELECT id, cleared_at FROM alerts ORDER BY id") == [(1, 1001.0), (2, None)]
    alerts = [json.loads(p) for (p,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%alert'")]
    assert [a["id"] for a in alerts] == ["alert/1/firing", "alert/1/cleared", "alert/2/firing"]
    assert alerts[1]["message"].startswith("superseded: the device reports a sensor fault")
    store.close()
    store = Store(db)  # restart: the frozen probe's alert is restored, and its next frozen result is no new one
    proc = Processor(store, cfg)
    line = LineState("p1")
    feed(proc, hello("pump-1", 1) + result(4, 1, label=2, score=1.2), now=1002.0, line=line)
    assert rows(store, "SELECT id, cleared_at FROM alerts ORDER BY id") == [(1, 1001.0), (2, None)]


def test_a_new_model_on_a_device_keeps_its_open_alerts(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config(rules=RuleConfig(anomaly_k=2, anomaly_n=3, anomaly_clear_k=0)))
    line = LineState("p1")
    feed(proc, hello("dev", 1) + result(0, 1, label=1) + result(1, 1, label=1), line=line)
    new_model = protocol.encode(protocol.Hello(1, "b", "2", "dev", b"\xee" * 8, 1, 2, 3, 1, protocol.LATENCY_US))
    feed(proc, new_model + result(2, 1, label=1) + result(3, 1, label=1), line=line)
    assert rows(store, "SELECT rule, cleared_at FROM alerts") == [("anomalies", None)]


def test_drift_state_is_rebuilt_at_restart_without_mixing_baseline_and_window(tmp_path):
    db = tmp_path / "g.db"
    cfg = config(drift=DriftConfig(baseline_n=50, window=40, every=10))
    proc = Processor(Store(db), cfg)
    line = LineState("p1")
    stream = hello("dev", 1) + b"".join(result(i, 1, score=0.1 + i * 1e-3) for i in range(50))
    feed(proc, stream + b"".join(result(i, 1, score=5.0) for i in range(50, 80)), line=line)
    proc.store.close()
    restored = Processor(Store(db), cfg).devices["dev"].drift
    assert restored.baseline == pytest.approx([0.1 + i * 1e-3 for i in range(50)])
    assert list(restored.recent) == [5.0] * 30
    assert [restored.observe(5.0) for _ in range(10)][-1].firing  # window full: the shift is flagged


def test_model_json_gives_class_names_and_anomaly_meaning(tmp_path):
    info = Labels(task="classifier", classes=("normal", "imbalance", "bearing"), normal_class="normal")
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config(models=(ModelRoute(info, ("fan-*",)),)))
    feed(proc, hello("fan-1", 1) + result(0, 1, label=2) + result(1, 1, label=0))
    payloads = [json.loads(p) for (p,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%result'")]
    assert [(p["class"], p["anomaly"]) for p in payloads] == [("bearing", True), ("normal", False)]


def test_no_broker_means_no_outbox(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config(mqtt=None))
    out, _ = feed(proc, hello("d", 1) + result(0, 1))
    assert out.stored == 1 and store.outbox_depth() == 0


def test_retention_by_count_age_and_size_keeps_the_newest(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config(mqtt=None))  # no outbox: the results are the data
    line = LineState("p1")
    feed(proc, hello("d", 1) + b"".join(result(i, 1) for i in range(5)), now=1000.0, line=line)
    with store.transaction():
        assert store.delete_expired(1000.0, RetentionLimits(None, 3)) == 2
    assert [s for (s,) in rows(store, "SELECT seq FROM results ORDER BY seq")] == [2, 3, 4]
    feed(proc, result(5, 1), now=1150.0, line=line)
    with store.transaction():
        store.delete_expired(1150.0, RetentionLimits(max_age_s=100.0))
    assert [s for (s,) in rows(store, "SELECT seq FROM results")] == [5]
    feed(proc, b"".join(result(i, 1) for i in range(6, 3000)), now=1200.0, line=line)
    limit = store.used_bytes() // 2
    with store.transaction():
        deleted = store.delete_expired(1200.0, RetentionLimits(None, None, limit))
    assert 1000 < deleted < 3000 and store.used_bytes() <= limit
    assert rows(store, "SELECT max(seq) FROM results") == [(2999,)]  # the newest are kept


def test_boots_whose_results_all_expired_are_unlisted_and_listed_again_when_they_send(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config(mqtt=None, retention=RetentionLimits(max_age_s=100.0)))
    line = LineState("p1")
    feed(proc, hello("d", 1) + result(0, 1, score=0.5), now=1000.0, line=line)
    feed(proc, hello("d", 2) + result(0, 2, score=0.25), now=1150.0, line=line)
    assert proc.process([Retention(1150.0)], 1150.0).retained_deleted == 1
    assert rows(store, "SELECT device, boot_id FROM boots") == [("d", 2)]
    feed(proc, result(1, 2, score=0.75), now=1300.0, line=line)
    assert proc.process([Retention(1300.0)], 1300.0).retained_deleted == 1  # boot 2's first result expired
    assert rows(store, "SELECT boot_id FROM boots") == [(2,)]
    feed(proc, result(2, 2, score=0.125), now=1310.0, line=line)
    assert proc.process([Retention(1500.0)], 1500.0).retained_deleted == 2  # all of boot 2: it is unlisted
    assert rows(store, "SELECT boot_id FROM boots") == []
    feed(proc, result(3, 2, score=1.0), now=1510.0, line=line)  # and listed again
    assert rows(store, "SELECT boot_id FROM boots") == [(2,)]
    assert store.last_scores("d", 10) == [1.0] and store.first_scores("d", 1) == [1.0]


def test_a_schema_3_database_is_migrated_and_reads_each_device_in_the_order_stored(tmp_path):
    db = tmp_path / "old.db"
    store = Store(db)
    proc = Processor(store, config())
    line = LineState("p1")
    feed(proc, hello("dev", 1) + b"".join(result(i, 1, label=i % 2, score=i / 8) for i in range(6)), line=line)
    feed(proc, hello("oth", 9) + result(0, 9) + hello("dev", 2) + b"".join(result(i, 2, score=1 + i) for i in range(4)),
         now=1001.0, line=line)
    with store.transaction():  # what a schema-3 gateway left behind
        store.conn.execute("DROP TABLE boots")
        store.conn.execute("CREATE INDEX results_by_device ON results (device, id)")
        store.conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    store.close()
    by_id = "SELECT score FROM results WHERE device = 'dev' ORDER BY id"
    old = connect(db, readonly=True)  # `gateway status` before a new gateway has opened it
    before = snapshot(old, now=1002.0)
    old.close()
    store = Store(db)
    assert store.migrated_from == "3"
    assert rows(store, "SELECT name FROM sqlite_master WHERE name = 'results_by_device'") == []
    assert rows(store, "SELECT device, boot_id, first_id FROM boots ORDER BY first_id") == \
        rows(store, "SELECT device, boot_id, min(id) FROM results GROUP BY device, boot_id ORDER BY min(id)")
    scores = [s for (s,) in rows(store, by_id)]
    assert scores == [i / 8 for i in range(6)] + [1.0, 2.0, 3.0, 4.0]
    assert store.first_scores("dev", 7) == scores[:7] and store.last_scores("dev", 5) == scores[-5:]
    assert store.last_scores("dev", 8, skip_first=5) == scores[5:] and store.last_scores("dev", 3, 9) == scores[9:]
    after = snapshot(store.conn, now=1002.0)
    assert before["devices"] == after["devices"]
    dev = after["devices"][0]
    assert dev["scores"] == scores and dev["last"]["score"] == 4.0 and dev["window"] == 10
    feed(Processor(store, config()), result(4, 2, score=5.0), now=1003.0, line=line)  # the restored writer goes on
    assert store.last_scores("dev", 2) == [4.0, 5.0]
    store.close()


def test_a_failing_batch_commits_nothing(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    line = LineState("p1")
    records = line.feed(hello("d", 1) + result(0, 1), 1.0)
    store.conn.execute("CREATE TRIGGER boom BEFORE INSERT ON outbox WHEN NEW.topic LIKE '%result' "
                       "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(sqlite3.DatabaseError):
        proc.process(records, 1.0)
    assert store.result_count() == 0 and store.outbox_depth() == 0


def test_corrupt_and_unwritable_databases_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="corrupt"):
        Store(bad)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(InputError, match="does not exist"):
        Store(afile / "g.db")
    with pytest.raises(InputError, match="directory"):
        Store(tmp_path)
    foreign = tmp_path / "app.db"
    sqlite3.connect(foreign).execute("CREATE TABLE users (name TEXT)").connection.commit()
    with pytest.raises(InputError, match="belongs to something else"):
        Store(foreign)
    assert [r[0] for r in sqlite3.connect(foreign).execute("SELECT name FROM sqlite_master")] == ["users"]
    proc = run_cli("gateway", "run", "--port", "socket://127.0.0.1:9", "--db", str(bad))
    assert_clean_error(proc, "corrupt")
    proc = run_cli("gateway", "status", "--db", str(bad))
    assert_clean_error(proc, "database")
    proc = run_cli("gateway", "status", "--db", str(tmp_path / "none.db"))
    assert_clean_error(proc, "no gateway database")


def test_a_store_that_fails_at_run_time_stops_the_gateway_with_one_clear_error(tmp_path):
    """A write failure (here a trigger standing in for a full disk) must not leave the gateway
    reading into a queue nobody drains: it stops, keeps what was committed, and says why."""
    import asyncio

    from tests.gateway_devices import ScriptedDevice
    from tinyml.errors import ToolError
    from tinyml.gateway.service import Gateway

    dev = ScriptedDevice("fan-x", rate=100).start()
    db = tmp_path / "g.db"
    gateway = Gateway(config(ports=(dev.url,), db=db, mqtt=None))

    async def main() -> None:
        async def break_disk_later() -> None:
            while gateway.committed < 50:
                await asyncio.sleep(0.05)
            with sqlite3.connect(db) as other:
                other.execute("CREATE TRIGGER full BEFORE INSERT ON results "
                              "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        breaker = asyncio.create_task(break_disk_later())
        await asyncio.wait_for(gateway.run(), 30)
        await breaker

    try:
        with pytest.raises(ToolError, match="disk is full") as err:
            asyncio.run(main())
    finally:
        dev.stop()
    assert "(hint: " in err.value.one_line()
    assert sqlite3.connect(db).execute("SELECT count(*) FROM results").fetchone()[0] >= 50


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
       junk=st.lists(st.binary(min_size=1, max_size=30), max_size=6))
def test_a_line_yields_the_same_results_however_the_bytes_are_split_and_whatever_junk_sits_between(cuts, junk):
    frames = [hello("d", 3)] + [result(i, 3) for i in range(20)]
    stream = bytearray()
    for i, frame in enumerate(frames):
        stream += frame
        if i < len(junk):
            stream += junk[i] + b"\x00"  # junk is closed by a delimiter, as a line glitch is by the next frame
    line = LineState("p")
    records = []
    points = sorted({c % (len(stream) + 1) for c in cuts})
    for a, b in zip([0, *points], [*points, len(stream)], strict=True):
        records += line.feed(bytes(stream[a:b]), 1.0)
    seqs = [r.seq for rec in records if isinstance(rec, ResultsRecord) for r in rec.results]
    assert seqs == list(range(20))


def test_a_sensor_fault_from_an_anomaly_model_alerts_at_once_a_classifier_label_2_does_not(tmp_path):
    anomaly = Labels(task="anomaly", threshold=1.0)
    classifier = Labels(task="classifier", classes=("normal", "imbalance", "bearing"), normal_class="normal")
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config(models=(ModelRoute(anomaly, ("pump-*",)), ModelRoute(classifier, ("fan-*",)))))
    feed(proc, hello("fan-1", 1) + result(0, 1, label=2, score=0.9) + hello("pump-1", 1)
         + result(0, 1, label=0) + result(1, 1, label=2, score=1.4))  # the gateway's default rule: 20 of 50
    alerts = [json.loads(p) for (p,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%alert'")]
    assert [(a["device"], a["rule"], a["state"]) for a in alerts] == [("pump-1", "anomalies", "firing")]
    assert "sensor fault" in alerts[0]["message"]
    payloads = [json.loads(p) for (p,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%pump-1/result'")]
    assert [(p["class"], p["anomaly"]) for p in payloads] == [("normal", False), ("sensor_fault", True)]
