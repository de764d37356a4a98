"""Device identity at the gateway (issue 16, part 1): the audit's spoof fails and nothing genuine
is dropped; authenticated sessions refuse replays across boots and rewound seqs; the per-port
policy; every result records its port and whether it was authenticated; refusals are counted,
logged once and raised as an alert; idle devices' state expires; the key store's mode is checked."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from tests.conftest import assert_clean_error, run_cli
from tests.test_gateway_store import HASH, config, feed, hello, result, rows
from tinyml.device import auth
from tinyml.device import protocol as p
from tinyml.device.keystore import provision_key, read_keys
from tinyml.errors import InputError
from tinyml.gateway.identity import AuthConfig, Identity
from tinyml.gateway.ingest import LineState, PortState, Tick
from tinyml.gateway.processor import Processor
from tinyml.gateway.status import format_prometheus, format_text, snapshot
from tinyml.gateway.store import Store

KEY = bytes(range(32))


def identity(mode: str = "optional", keys: dict | None = None, **ports: str) -> Identity:
    return Identity(AuthConfig("keys.json", mode, tuple(ports.items())), keys if keys is not None else {"emu-000": KEY})


def challenge(line: LineState) -> bytes:
    """The nonce of the AUTH_CHALLENGE the line queued for its device."""
    frames = [e for e in p.Decoder().feed(line.take_outgoing()) if isinstance(e, p.AuthChallenge)]
    assert frames, "the line sent no AUTH_CHALLENGE"
    return frames[-1].nonce


def plain_hello(device: str, boot: int) -> p.Hello:
    return p.Hello(1, "b", "1", device, HASH, 1, 2, 3, boot, p.LATENCY_US)


def auth_result(seq: int, boot: int, key: bytes = KEY) -> bytes:
    return p.encode(auth.authenticated_result(key, p.Result(seq, boot, seq * 10, 500, p.LATENCY_US, 0, 0.1, (1, -2))))


def connect_keyed(proc: Processor, line: LineState, device: str = "emu-000", boot: int = 7, key: bytes = KEY,
                  now: float = 1000.0) -> None:
    """A genuine keyed device boots on ``line``: HELLO, the gateway's challenge, AUTH_HELLO."""
    feed(proc, p.encode(plain_hello(device, boot)), line=line, now=now)
    feed(proc, p.encode(auth.authenticated_hello(key, plain_hello(device, boot), challenge(line))), line=line, now=now)
    assert line.device == device and line.authenticated


def stored(store: Store, device: str = "emu-000") -> list[tuple]:
    return rows(store, f"SELECT seq, port, authenticated FROM results WHERE device = '{device}' ORDER BY id")


def test_the_audits_spoof_fails_and_nothing_genuine_is_dropped(tmp_path, caplog):
    """A second line claims emu-000 with the victim's boot id and sequence numbers ahead of it."""
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    ident = identity()
    victim, spoof = LineState("victim", identity=ident), LineState("spoof", identity=ident)
    connect_keyed(proc, victim)
    feed(proc, auth_result(0, 7), line=victim)
    recorded = b"".join(auth_result(seq, 7) for seq in range(1, 401))  # what the victim will send
    with caplog.at_level(logging.WARNING, logger="tinyml.gateway"):
        forged = b"".join(result(seq, 7) for seq in range(1, 401))
        feed(proc, hello("emu-000", 7) + forged, line=spoof, now=1001.0)
        challenge(spoof)
        # the spoofer also tries MACs it cannot make and the victim's own frames replayed
        feed(proc, auth_result(401, 7, key=bytes(32)) + recorded, line=spoof, now=1001.5)
        stale = auth.authenticated_hello(KEY, plain_hello("emu-000", 7), bytes(8))  # a recorded, stale proof
        feed(proc, p.encode(stale), line=spoof, now=1001.6)
    feed(proc, recorded, line=victim, now=1002.0)
    assert spoof.device is None and not spoof.authenticated
    assert stored(store) == [(seq, "victim", 1) for seq in range(401)]  # every genuine result, only those
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2  # logged once per reason: unauthenticated results, then the stale AUTH_HELLO
    # 400 forged results and the stale proof; the AUTH_RESULTs wait for a proof that never comes
    assert rows(store, "SELECT refused FROM ports WHERE port = 'spoof'") == [(401,)]
    assert sum(ident.refused.values()) == 401 and len(spoof.pending) == 401
    alerts = rows(store, "SELECT device, rule FROM alerts WHERE cleared_at IS NULL")
    assert alerts == [("emu-000", "identity")]  # raised once, while open
    outbox = [json.loads(m) for (m,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%/alert'")]
    assert len(outbox) == 1 and "spoof" in outbox[0]["message"]
    metrics = format_prometheus(snapshot(store.conn, now=1003.0))
    assert 'tinyml_gateway_port_refused_total{port="spoof"} 401' in metrics
    # the victim unplugged: the spoofer still cannot speak for it
    ident.release("victim")
    again = LineState("spoof", identity=ident)
    feed(proc, hello("emu-000", 9) + result(0, 9), line=again, now=1004.0)
    assert again.device is None and len(stored(store)) == 401
    # the alert clears when the refused port goes away, and a restart clears what a crash left open
    ident.release("spoof")
    proc.process([PortState("spoof", False, "closed", 1005.0)], 1005.0)
    assert rows(store, "SELECT rule, cleared_at FROM alerts") == [("identity", 1005.0)]
    feed(proc, hello("emu-000", 9) + result(0, 9), line=LineState("spoof", identity=ident), now=1006.0)
    assert rows(store, "SELECT count(*) FROM alerts WHERE cleared_at IS NULL") == [(1,)]
    Processor(store, config()).close_identity_alerts(1007.0)
    assert rows(store, "SELECT count(*) FROM alerts WHERE cleared_at IS NULL") == [(0,)]
    states = [json.loads(m)["state"] for (m,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%/alert'")]
    assert states == ["firing", "cleared", "firing", "cleared"]
    store.close()


def test_an_unkeyed_id_bound_to_a_connected_port_is_refused_elsewhere(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    ident = identity(keys={})
    victim, spoof = LineState("victim", identity=ident), LineState("spoof", identity=ident)
    feed(proc, hello("dev", 7) + result(0, 7), line=victim)
    feed(proc, hello("dev", 7) + b"".join(result(seq, 7) for seq in range(1, 401)), line=spoof, now=1001.0)
    feed(proc, b"".join(result(seq, 7) for seq in range(1, 401)), line=victim, now=1002.0)
    assert spoof.device is None and victim.device == "dev"
    assert stored(store, "dev") == [(seq, "victim", 0) for seq in range(401)]
    assert rows(store, "SELECT device, rule FROM alerts") == [("dev", "identity")]
    ident.release("victim")  # the victim's port went away: an unkeyed id may move to another port
    moved = LineState("spoof", identity=ident)
    feed(proc, hello("dev", 8), line=moved, now=1003.0)
    assert moved.device == "dev"
    store.close()


def test_replays_across_boots_and_rewound_seqs_are_refused(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    line = LineState("p1", identity=identity())
    connect_keyed(proc, line, boot=7)
    old_boot = [auth_result(seq, 7) for seq in range(5)]
    feed(proc, b"".join(old_boot), line=line)
    connect_keyed(proc, line, boot=8, now=1001.0)  # a reboot: a new challenge, a new session
    feed(proc, auth_result(0, 8) + auth_result(1, 8), line=line, now=1002.0)
    out, _ = feed(proc, b"".join(old_boot) + auth_result(1, 8) + auth_result(0, 8) + auth_result(2, 8), line=line,
                  now=1003.0)
    assert out.stored == 1  # only seq 2 of boot 8: the old boot's frames and the rewound seqs are refused
    assert rows(store, "SELECT boot_id, seq FROM results ORDER BY id") == \
        [(7, 0), (7, 1), (7, 2), (7, 3), (7, 4), (8, 0), (8, 1), (8, 2)]
    assert rows(store, "SELECT refused FROM ports") == [(7,)]
    store.close()


def test_results_sent_before_the_proof_are_held_and_checked(tmp_path):
    """A device that just booted sends HELLO and results at once: they wait for its AUTH_HELLO."""
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    line = LineState("p1", identity=identity())
    feed(proc, p.encode(plain_hello("emu-000", 3)) + auth_result(0, 3) + auth_result(1, 3), line=line)
    assert stored(store) == [] and len(line.pending) == 2
    line.wants_hello(1010.0)  # the challenge was lost: the line asks again with the same nonce
    nonce = challenge(line)
    feed(proc, p.encode(auth.authenticated_hello(KEY, plain_hello("emu-000", 3), nonce)) + auth_result(2, 3), line=line)
    assert stored(store) == [(0, "p1", 1), (1, "p1", 1), (2, "p1", 1)]
    status = [json.loads(m) for (m,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%/status'")]
    assert status[-1]["authenticated"] is True
    store.close()


def test_policy_required_refuses_unauthenticated_devices_and_optional_marks_them(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config(ports=("strict", "lenient")))
    ident = identity("required", lenient="optional")
    strict, lenient = LineState("strict", identity=ident), LineState("lenient", identity=ident)
    feed(proc, hello("plain-1", 1) + result(0, 1), line=strict)
    feed(proc, hello("plain-2", 1) + result(0, 1), line=lenient)
    assert strict.device is None and lenient.device == "plain-2"
    assert rows(store, "SELECT device, port, authenticated FROM results") == [("plain-2", "lenient", 0)]
    message = json.loads(rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%/result'")[0][0])
    assert message["port"] == "lenient" and message["authenticated"] is False
    assert rows(store, "SELECT device, authenticated FROM devices") == [("plain-2", 0)]
    assert "plain-2 (unauthenticated)" in format_text(snapshot(store.conn, now=1001.0))
    connect_keyed(proc, LineState("strict", identity=ident))  # a keyed device is welcome on the strict port
    assert rows(store, "SELECT device, rule FROM alerts") == [("plain-1", "identity")]
    store.close()


def test_idle_device_state_expires_and_comes_back_from_the_store(tmp_path):
    from tinyml.gateway.limits import IdLimits

    store = Store(tmp_path / "g.db")
    proc = Processor(store, config(limits=IdLimits(state_expiry_s=600.0)))
    line = LineState("p1")
    feed(proc, b"".join(hello(f"d{i}", 1) + result(0, 1) + result(1, 1) for i in range(50)), line=line)
    assert len(proc.devices) == 50
    out = proc.process([Tick(1500.0)], 1500.0)
    assert out.expired == 0 and len(proc.devices) == 50
    out = proc.process([Tick(1601.0)], 1601.0)
    assert out.expired == 50 and proc.devices == {}
    # the device talks again: its state is rebuilt (the gap since seq 1 is counted, no duplicate stored)
    out, _ = feed(proc, result(1, 1) + result(3, 1), line=line, now=1700.0)
    assert (out.stored, out.duplicates) == (1, 1) and list(proc.devices) == ["d49"]
    assert rows(store, "SELECT missing FROM devices WHERE device = 'd49'") == [(1,)]
    store.close()


def test_a_tick_in_the_batch_that_brings_a_new_device_keeps_its_state(tmp_path):
    """A device new in a batch has no last_seen until the batch ends: a Tick after its first records in the
    same batch (a writer behind, at start-up) must not expire it (that stopped the gateway's writer)."""
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    now = 1_764_000_000.0  # a real clock: an expiry horizon far above a new state's last_seen of 0
    records = LineState("p1").feed(hello("new-1", 1) + result(0, 1) + result(1, 1), now)
    out = proc.process([*records, Tick(now + 0.5)], now + 0.5)
    assert (out.stored, out.expired) == (2, 0) and list(proc.devices) == ["new-1"]
    assert rows(store, "SELECT device, results, last_seen FROM devices") == [("new-1", 2, now)]
    store.close()


def test_a_schema_2_database_gets_the_source_columns(tmp_path):
    db = tmp_path / "old.db"
    store = Store(db)
    feed(Processor(store, config()), hello("dev", 1) + result(0, 1))
    with store.transaction():  # what a schema-2 gateway left behind
        for table, column in (("results", "port"), ("results", "authenticated"), ("devices", "authenticated"),
                              ("ports", "refused")):
            store.conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        store.conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    store.close()
    store = Store(db)
    assert store.migrated_from == "2"
    feed(Processor(store, config()), hello("dev", 1) + result(1, 1), line=LineState("p1"))
    # rows from before say "unknown" (NULL), new ones where they came from
    assert rows(store, "SELECT seq, port, authenticated FROM results ORDER BY seq") == [(0, None, None), (1, "p1", 0)]
    store.close()


def test_the_key_store_is_mode_600_and_looser_ones_are_refused(tmp_path):
    path = tmp_path / "keys.json"
    key, created = provision_key(path, "fan-1")
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert provision_key(path, "fan-1") == (key, False)  # provisioning again keeps the key
    assert read_keys(path) == {"fan-1": key}
    os.chmod(path, 0o644)
    with pytest.raises(InputError, match="mode 644") as err:
        read_keys(path)
    assert err.value.hint.startswith(f"chmod 600 {path}") and key.hex() not in str(err.value)
    proc = run_cli("gateway", "run", "--port", "socket://127.0.0.1:1", "--db", tmp_path / "g.db", "--keys", path,
                   "--auth", "required", timeout=60)
    assert_clean_error(proc, "mode 644")
    assert key.hex() not in proc.stdout + proc.stderr
    proc = run_cli("emulate", "--model", "missing.tflite", "--tcp", "0", "--keys", path, "--duration", "1s", timeout=60)
    assert_clean_error(proc, "mode 644")  # the emulator reads the same store, as strictly
    assert key.hex() not in proc.stdout + proc.stderr
