"""Batched result messages (``[mqtt] batch = true``, tinyml/gateway/batching.py): each result
inside a batch is byte for byte the message it would have been alone, a device's messages keep
the order of its events, batches are bounded, and the fleet consumer reads them back into the
same records; the writer's commit pacing and ``[ingest] fsync``. The kill-and-restart
guarantees of every mode are tested end to end in test_gateway_e2e.py."""

from __future__ import annotations

import json

import pytest

from tests.test_gateway_store import config, hello, result, rows
from tinyml.errors import InputError
from tinyml.fleet.messages import Rejected, parse_all
from tinyml.gateway.batching import MAX_BYTES, MAX_RESULTS, ResultBatches
from tinyml.gateway.config import load, parse_mqtt_url
from tinyml.gateway.ingest import LineState
from tinyml.gateway.processor import Processor
from tinyml.gateway.service import CommitPacer, Gateway
from tinyml.gateway.store import Store


def batched_config():
    return config(mqtt=parse_mqtt_url("mqtt://127.0.0.1:1", {"batch": True}))


def outbox(store: Store) -> list[tuple[str, str]]:
    return rows(store, "SELECT topic, payload FROM outbox ORDER BY id")


def run(tmp_path, name: str, cfg, reads: list[list[tuple[str, bytes]]]) -> list[tuple[str, str]]:
    """Feed the same reads (per batch: (port, bytes) pairs) through a processor; its outbox."""
    store = Store(tmp_path / f"{name}.db")
    proc = Processor(store, cfg)
    lines: dict[str, LineState] = {}
    for i, batch in enumerate(reads):
        records = [r for port, data in batch for r in lines.setdefault(port, LineState(port)).feed(data, 10.0 + i)]
        proc.process(records, 10.0 + i)
    return outbox(store)


def test_batched_results_are_the_single_messages_one_message_per_device_per_commit(tmp_path):
    reads = [[("p1", hello("a", 1)), ("p2", hello("b", 2))],
             [("p1", result(0, 1) + result(1, 1)), ("p2", result(0, 2)), ("p1", result(2, 1))],
             [("p2", result(1, 2) + result(1, 2))]]  # a duplicate is neither stored nor sent
    single = run(tmp_path, "single", config(), reads)
    batched = run(tmp_path, "batched", batched_config(), reads)
    singles = [p for t, p in single if t.endswith("/result")]
    assert [t for t, _ in batched if "/results" in t] == ["tinyml/lab/a/results", "tinyml/lab/b/results",
                                                         "tinyml/lab/b/results"]
    inner = [r for t, p in batched if t.endswith("/results") for r in json.loads(p)["results"]]
    assert [json.dumps(r, separators=(",", ":")) for r in inner] == sorted(
        singles, key=lambda p: json.loads(p)["device"] != "a")  # a's results, then b's, each in order
    assert [p for t, p in batched if t.endswith("/status")] == [p for t, p in single if t.endswith("/status")]
    first = json.loads(batched[2][1])
    assert (first["site"], first["device"], [r["seq"] for r in first["results"]]) == ("lab", "a", [0, 1, 2])


def test_a_devices_results_go_out_before_its_next_status_and_batches_are_bounded(tmp_path):
    n = MAX_RESULTS * 2 + 50
    data = hello("a", 1) + b"".join(result(s, 1) for s in range(5)) + hello("a", 9) + \
        b"".join(result(s, 9) for s in range(n))
    got = run(tmp_path, "order", batched_config(), [[("p1", data)]])
    kinds = [(t.rsplit("/", 1)[1], len(json.loads(p).get("results", []))) for t, p in got]
    assert kinds == [("status", 0), ("results", 5), ("status", 0), ("results", MAX_RESULTS),
                     ("results", MAX_RESULTS), ("results", 50)]
    assert json.loads(got[2][1])["rebooted"] is True


def test_batch_option_must_be_a_boolean():
    with pytest.raises(InputError, match="batch"):
        parse_mqtt_url("mqtt://127.0.0.1:1", {"batch": "yes"})


def test_the_fleet_reads_a_batch_as_the_results_inside_and_rejects_only_what_is_bad(tmp_path):
    got = run(tmp_path, "fleet", batched_config(), [[("p1", hello("fan/1", 1) + result(0, 1) + result(1, 1))]])
    topic, payload = got[1]
    assert topic == "tinyml/lab/fan_1/results"
    records = parse_all(topic, payload.encode())
    assert [(r.device, r.id, r.seq) for r in records] == [("fan/1", "fan/1/00000001/0", 0),
                                                           ("fan/1", "fan/1/00000001/1", 1)]
    single = run(tmp_path, "fleet1", config(), [[("p1", hello("fan/1", 1) + result(0, 1))]])
    assert parse_all(*single[1][0:1], single[1][1].encode()) == records[:1]  # the same record either way
    body = json.loads(payload)
    body["results"][1]["seq"] = 5  # its id no longer matches: that result alone is rejected
    mixed = parse_all(topic, json.dumps(body).encode())
    assert mixed[0] == records[0] and isinstance(mixed[1], Rejected) and mixed[1].reason == "invalid"
    assert [r.reason for r in parse_all(topic, b'{"site":"lab","device":"fan/1","results":{}}')] == ["invalid"]
    assert [r.reason for r in parse_all("tinyml/lab/other/results", payload.encode())] == ["invalid"]
    assert [r.reason for r in parse_all(topic, b"[]")] == ["not_json"]


def test_a_batch_is_cut_by_size_too():
    batches, outbox = ResultBatches(), []
    for i in range(7):  # 10 KiB results: a message is closed once it passes 32 KiB
        batches.add("d", "t/d/results", '"s"', '"d"', f"d/1/{i}", "x" * 10240, 1.0, outbox)
    batches.flush_all(outbox)
    assert [row[2] for row in outbox] == ["results/d/1/0/4", "results/d/1/4/3"]
    assert max(len(row[3]) for row in outbox) < MAX_BYTES + 10240 + 100  # at most one result past the cap


def test_the_writer_paces_commits_only_above_its_busy_rate():
    pacer = CommitPacer(max_s=0.02, busy_rate=1000.0)
    assert pacer.interval() == 0.0  # nothing measured yet: commit as soon as the writer is free
    t = pacer.since
    for results, interval in ((900, 0.0), (1000, 0.0), (2500, 0.01), (4000, 0.02), (9000, 0.02), (500, 0.0)):
        t += 1.0
        pacer.committed(results, t)  # one second's results in one commit: the rate is that count
        assert pacer.interval() == pytest.approx(interval)


@pytest.mark.parametrize("key,value", [("commit_interval_ms", -1), ("commit_interval_ms", 5000), ("busy_rate", 0),
                                       ("poll_ms", -1), ("poll_ms", 5000)])
def test_bad_commit_pacing_is_refused_with_its_line(tmp_path, key, value):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"ports = ['socket://127.0.0.1:1']\n[ingest]\n{key} = {value}\n")
    with pytest.raises(InputError, match=rf"\[ingest\].*{key}"):
        load(cfg)


@pytest.mark.parametrize("fsync,level", [(True, 2), (False, 1)])
def test_fsync_false_commits_without_a_flush_per_commit(tmp_path, fsync, level):
    cfg = tmp_path / "gateway.toml"
    db = tmp_path / "g.db"
    cfg.write_text(f"ports = ['socket://127.0.0.1:1']\ndb = '{db}'\n[ingest]\nfsync = {str(fsync).lower()}\n")
    gateway = Gateway(load(cfg))
    try:  # SQLite's synchronous: 2 FULL (a flush per commit), 1 NORMAL (WAL: a flush per checkpoint)
        assert gateway.store.conn.execute("PRAGMA synchronous").fetchone()[0] == level
    finally:
        gateway.store.close()
