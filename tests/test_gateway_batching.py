"""The writer's fast paths keep the store's guarantees: results inserted per batch are
deduplicated exactly as one-by-one inserts would be (repeats, replays of an older boot,
restarts), and the hand-written result JSON is the JSON of the same fields."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_gateway_store import config, hello, result, rows
from tinyml.device import protocol
from tinyml.gateway.ingest import (
    HeartbeatRecord,
    Identified,
    LineCounts,
    LineState,
    ResultsRecord,
    batch_size,
)
from tinyml.gateway.processor import Processor, result_payload
from tinyml.gateway.store import Store

# (boot id, seq) pairs a device may send, in any order and with any repeats
frames = st.lists(st.tuples(st.integers(1, 3), st.integers(0, 12)), max_size=60)


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(frames, min_size=1, max_size=5), restart_after=st.integers(0, 5))
def test_each_key_is_stored_and_announced_once_however_batches_and_restarts_fall(tmp_path_factory, batches,
                                                                                  restart_after):
    db = tmp_path_factory.mktemp("g") / "g.db"
    store = Store(db)
    proc = Processor(store, config())
    line = LineState("p1")
    proc.process(line.feed(hello("dev", 1), 1.0), 1.0)
    sent: list[tuple[int, int]] = []
    stored = duplicates = 0
    for i, batch in enumerate(batches):
        if i == restart_after:  # a new gateway process on the same file
            store.close()
            store = Store(db)
            proc = Processor(store, config())
        records = line.feed(b"".join(result(seq, boot) for boot, seq in batch), 2.0 + i)
        out = proc.process(records, 2.0 + i)
        stored, duplicates = stored + out.stored, duplicates + out.duplicates
        sent += batch
    keys = rows(store, "SELECT boot_id, seq FROM results ORDER BY id")
    assert keys == list(dict.fromkeys(sent))  # first arrival of each key, in arrival order
    assert (stored, duplicates) == (len(keys), len(sent) - len(keys))
    ids = [json.loads(p)["id"] for (p,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%/result'")]
    assert ids == [f"dev/{boot:08x}/{seq}" for boot, seq in keys]
    assert rows(store, "SELECT results, duplicates FROM devices") == [(len(keys), len(sent) - len(keys))]


@given(device=st.text(max_size=20), site=st.text(max_size=10), class_name=st.none() | st.text(max_size=10),
       anomaly=st.sampled_from([True, False, None]), score=st.floats(width=32),
       received_at=st.floats(0, 4e9), unit=st.integers(0, 255), seq=st.integers(0, 2**32 - 1),
       port=st.text(max_size=10), authenticated=st.booleans())
def test_result_json_is_the_json_of_its_fields(device, site, class_name, anomaly, score, received_at, unit, seq,
                                               port, authenticated):
    r = protocol.Result(seq, 0xDEADBEEF, 12, 345, unit, 1, score, (1, 2))
    text = result_payload(site, device, r, received_at, class_name, anomaly, port=port, authenticated=authenticated)
    got = json.loads(text)
    want = {"id": f"{device}/deadbeef/{seq}", "site": site, "device": device, "boot_id": 0xDEADBEEF, "seq": seq,
            "device_ms": 12, "received_at": received_at, "label": 1, "class": class_name, "anomaly": anomaly,
            "score": score, "latency": 345,
            "latency_unit": protocol.LATENCY_UNIT_NAMES.get(unit, str(unit)), "port": port,
            "authenticated": authenticated}
    if math.isnan(score):
        assert math.isnan(got.pop("score")) and "NaN" in text
        want.pop("score")
    assert got == want
    assert list(got) == list(want)  # the same key order as before


def test_a_read_yields_one_record_per_run_of_results_and_a_batch_weighs_each_result():
    line = LineState("p")
    beat = protocol.encode(protocol.Heartbeat(1, 5, 3, 0))
    stream = hello("d", 1) + result(0, 1) + result(1, 1) + b"\x00junk\x00" + result(2, 1) + beat + result(3, 1)
    records = line.feed(stream, 1.0)
    assert [type(r) for r in records] == [Identified, ResultsRecord, HeartbeatRecord, ResultsRecord, LineCounts]
    runs = [[r.seq for r in rec.results] for rec in records if isinstance(rec, ResultsRecord)]
    assert runs == [[0, 1, 2], [3]]  # junk between frames is counted but does not split a run
    assert batch_size(records) == 4 + 3
