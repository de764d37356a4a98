"""``[ingest] shards``: reader processes feeding the one writer. The wire format round-trips every
record; a sharded gateway stores every acknowledged result once and in order over SIGKILLs of
itself and of a shard, decides device authentication in the shard, and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from tests.conftest import assert_clean_error, run_cli
from tests.test_gateway_e2e import GatewayProcess, _acknowledged, count, query, wait_until
from tinyml.device import auth
from tinyml.device import protocol as p
from tinyml.device.emulator import EmulatedFleet
from tinyml.device.keystore import provision_key
from tinyml.gateway.config import load
from tinyml.gateway.identity import Refused
from tinyml.gateway.ingest import Identified, LineCounts, PortState, ResultsRecord
from tinyml.gateway.shards import assign, pack, unpack

MODEL = "feat_ae_int8.tflite"
KEY = bytes(range(32))


def test_records_survive_the_pipe_format():
    plain = p.RawResult(2**32 - 1, 7, 123, 456, p.LATENCY_US, 3, 0.125, b"\x80\x00\x7f")  # as the lines decode it
    keyed = auth.authenticated_result(KEY, p.Result(5, 9, 10, 20, p.LATENCY_CYCLES, 1, -1.5, tuple(range(-4, 4))))
    records = [PortState("socket://h:1", True, None, 1.5),
               Identified("socket://h:1", "fan-1", "b", "1", "ab" * 8, 7, 2.0, False),
               ResultsRecord("socket://h:1", "fan-1", [plain, p.RawResult(0, 0, 0, 0, 0, 0, 0.0, b"")], 2.5, False),
               ResultsRecord("socket://h:2", "fan-2", [keyed], 3.0, True),
               LineCounts("socket://h:1", None, 3, 1, 0, 0, 2, 3.5, 1),
               Refused("socket://h:2", "fan-1", "already connected", 4.0)]
    back = unpack(pack(records))
    assert back == records
    assert type(back[3].results[0]) is p.AuthResult and auth.verify(KEY, back[3].results[0])


def test_ports_are_dealt_round_robin_and_no_shard_is_empty():
    assert assign(["a", "b", "c", "d", "e"], 2) == [("a", "c", "e"), ("b", "d")]
    assert assign(["a", "b"], 4) == [("a",), ("b",)]
    assert load(ports=("a",)).ingest.shards == 0
    assert load(ports=("a",), shards=3).ingest.shards == 3


def test_bad_shard_counts_are_refused_in_one_line(tmp_path):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text("ports = ['socket://127.0.0.1:1']\n[ingest]\nshards = -1\n")
    proc = run_cli("gateway", "run", "--config", cfg, "--db", tmp_path / "g.db", timeout=60)
    assert_clean_error(proc, "shards must be between 0 and 64")
    cfg.write_text("ports = ['socket://127.0.0.1:1']\n[ingest]\nshards = '2'\n")
    proc = run_cli("gateway", "run", "--config", cfg, "--db", tmp_path / "g.db", timeout=60)
    assert_clean_error(proc, "write it without quotes")
    assert not (tmp_path / "g.db").exists() or count(tmp_path / "g.db", "SELECT count(*) FROM results") == 0


def _shard_pids(log: str) -> dict[int, int]:
    return {int(i): int(pid) for i, pid in re.findall(r"shard (\d+) \(pid (\d+)\)", log)}


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _check_store(db: Path, acknowledged: list[int]) -> list[tuple]:
    rows = query(db, "SELECT device, boot_id, seq FROM results ORDER BY id")
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert len(rows) == len(set(rows)), "duplicate rows in the store"
    assert max(acknowledged) > 0 and len(rows) >= max(acknowledged), "an acknowledged result was lost"
    per_boot: dict[tuple[str, int], list[int]] = {}
    for device, boot, seq in rows:
        per_boot.setdefault((device, boot), []).append(seq)
    assert all(seqs == sorted(seqs) for seqs in per_boot.values()), "a device's results are out of order"
    return rows


def test_sharded_gateway_survives_sigkill_of_a_shard_and_of_itself(tmp_path, shared):
    """Two shards over four devices. A shard killed with SIGKILL is started again and its ports
    reconnect; the gateway killed with SIGKILL leaves no shard running; every acknowledged
    result is stored once, each device in order; SIGTERM stops writer and shards cleanly."""
    acknowledged: list[int] = []
    with EmulatedFleet(shared / "models" / MODEL, count=4, tcp_port=0, rate=100, seed=5) as fleet:
        gw = GatewayProcess(tmp_path, fleet.endpoints, "--shards", "2", name="first")
        wait_until(lambda: _acknowledged(gw.text()) > 200, 60, "sharded gateway storing")
        shards = _shard_pids(gw.text())
        assert sorted(shards) == [0, 1]
        os.kill(shards[0], signal.SIGKILL)
        wait_until(lambda: "shard 0 exited" in gw.text(), 20, "the shard's death noticed")
        wait_until(lambda: len(re.findall(r"shard 0 \(pid", gw.text())) == 2, 20, "shard 0 started again")
        before = count(gw.db, "SELECT count(*) FROM results WHERE port IN (?, ?)", fleet.endpoints[0],
                       fleet.endpoints[2])
        wait_until(lambda: count(gw.db, "SELECT count(*) FROM results WHERE port IN (?, ?)", fleet.endpoints[0],
                                 fleet.endpoints[2]) > before + 50, 30, "the restarted shard's ports storing")
        for i in range(3):
            if i:
                gw = GatewayProcess(tmp_path, fleet.endpoints, "--shards", "2", name=f"kill{i}")
                wait_until(lambda gw=gw: _acknowledged(gw.text()) > max(acknowledged), 60, "storing again")
                time.sleep(0.3 * i)
            pids = list(_shard_pids(gw.text()).values())
            gw.kill()
            acknowledged.append(_acknowledged(gw.text()))
            wait_until(lambda pids=pids: all(_gone(pid) for pid in pids), 20, "orphaned shards exit")
        final = GatewayProcess(tmp_path, fleet.endpoints, "--shards", "2", name="final")
        wait_until(lambda: _acknowledged(final.text()) > max(acknowledged) + 100, 60, "final gateway storing")
        pids = list(_shard_pids(final.text()).values())
        assert final.stop() == 0
    assert all(_gone(pid) for pid in pids)
    rows = _check_store(final.db, acknowledged)
    assert {d for d, _, _ in rows} == {f"emu-{i:03d}" for i in range(4)}
    assert "Traceback" not in final.text() and "exited" not in final.text()


def test_authentication_is_decided_in_the_shard(tmp_path, shared):
    """``--auth required`` over two shards: the keyed device proves its key through its shard and is
    stored as authenticated; unkeyed devices on both shards are refused and raise identity alerts."""
    keys = tmp_path / "keys.json"
    key, _ = provision_key(keys, "emu-000")
    with EmulatedFleet(shared / "models" / MODEL, count=4, tcp_port=0, rate=50, seed=2,
                       keys={"emu-000": key}) as fleet:
        gw = GatewayProcess(tmp_path, fleet.endpoints, "--shards", "2", "--keys", str(keys), "--auth", "required")
        wait_until(lambda: count(gw.db, "SELECT count(*) FROM results") > 100, 60, "authenticated results")
        wait_until(lambda: count(gw.db, "SELECT count(DISTINCT device) FROM alerts WHERE rule='identity'") == 3,
                   30, "identity alerts for the unkeyed devices")
        assert gw.stop() == 0
    assert query(gw.db, "SELECT DISTINCT device, authenticated FROM results") == [("emu-000", 1)]
    assert "Traceback" not in gw.text() and str(key.hex()) not in gw.text()
