"""`tinyml fleet run` against real components started here: Mosquitto (durable), a private
PostgreSQL cluster (initdb/pg_ctl on a free port), `tinyml gateway run` child processes fed by
emulated devices, and fleet consumers as child processes that are SIGKILLed mid-stream."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser import chromium, console_errors
from tests.mosquitto import Broker, Gate, free_tcp_port
from tests.test_gateway_e2e import GatewayProcess, query, wait_until
from tinyml.device.emulator import EmulatedFleet
from tinyml.fleet.localpg import LocalPostgres, pg_bin
from tinyml.fleet.messages import MAX_PAYLOAD, Rejected, Result, parse
from tinyml.fleet.store import FleetStore
from tinyml.fleet.synthetic import Publisher, result_message
from tinyml.gateway.broker import mosquitto_path

MODEL = "feat_ae_int8.tflite"


def _postgres_available() -> bool:
    try:
        pg_bin("initdb")
        import psycopg  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


needs_pg = pytest.mark.skipif(not _postgres_available(), reason="PostgreSQL server or psycopg not installed")


@pytest.fixture(scope="module")
def pg():
    cluster = LocalPostgres()
    yield cluster
    cluster.cleanup()


@pytest.fixture
def pgdb(pg, request):
    """A fresh database in the shared cluster for one test."""
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:50]
    pg.sql(f"DROP DATABASE IF EXISTS {name}", database="postgres")
    pg.sql(f"CREATE DATABASE {name}", database="postgres")
    return f"postgresql://{pg.user}@127.0.0.1:{pg.port}/{name}"


class FleetProcess:
    def __init__(self, tmp: Path, mqtt_url: str, db: str, client_id: str, *extra: str,
                 env: dict[str, str] | None = None):
        self.log = tmp / f"{client_id}-{time.monotonic_ns()}.log"
        args = [sys.executable, "-m", "tinyml", "fleet", "run", "--mqtt", mqtt_url, "--db", db,
                "--client-id", client_id, "--group", "g1", "-v", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"),  # noqa: SIM115
                                     env={**os.environ, **(env or {})})

    def text(self) -> str:
        return self.log.read_text()

    def connected(self, times: int = 1) -> bool:
        return self.text().count("MQTT connected") >= times

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@dataclass
class Session:
    broker: Broker
    consumer: FleetProcess  # a test that restarts the consumer puts the new one here
    pub: Publisher


@contextmanager
def one_consumer(tmp: Path, db: str, client_id: str, *extra: str, env: dict[str, str] | None = None,
                 **broker_options: object) -> Iterator[Session]:
    """A Mosquitto, one fleet consumer connected to it and a publisher; all stopped afterwards."""
    broker = Broker(tmp, port=free_tcp_port(), **broker_options).start()
    consumer, pub = FleetProcess(tmp, broker.url, db, client_id, *extra, env=env), None
    session = None
    try:
        wait_until(consumer.connected, 60, "consumer connected")
        pub = Publisher("127.0.0.1", broker.port)
        session = Session(broker, consumer, pub)
        yield session
    finally:
        if pub:
            pub.close()
        current = session.consumer if session else consumer
        if current.proc.poll() is None:
            current.kill()
        broker.stop()


def gateway_ids(db: Path) -> set[str]:
    return {f"{d}/{b:08x}/{s}" for d, b, s in query(db, "SELECT device, boot_id, seq FROM results")}


def fleet_rows(db: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """(site, id) of every stored result, read with a separate client."""
    if db.startswith("postgresql://"):
        import psycopg

        try:
            with psycopg.connect(db, password=env["PGPASSWORD"], connect_timeout=5) as conn:
                return conn.execute("SELECT site, id FROM results").fetchall()
        except psycopg.Error:
            return []
    return query(Path(db), "SELECT site, id FROM results")


def status_json(db: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-m", "tinyml", "fleet", "status", "--db", db, "--json"],
                         capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# --- message checks (pure) -------------------------------------------------------------------

def test_parse_accepts_what_gateways_publish_and_rejects_the_rest():
    topic, msg_id, payload = result_message("plant-1", "fan/7", 0xBEEF, 42)
    assert topic == "tinyml/plant-1/fan/7/result"  # not topic-safe: the gateway makes it so
    topic = "tinyml/plant-1/fan_7/result"
    ok = parse(topic, payload.encode())
    assert isinstance(ok, Result) and ok.id == msg_id == "fan/7/0000beef/42" and ok.device == "fan/7"
    body = json.loads(payload)
    cases = {
        "not_json": (topic, b'{"id": '),
        "schema_version": (topic, json.dumps({**body, "v": 2}).encode()),
        "topic": ("tinyml//fan_7/result", payload.encode()),
        "oversized": (topic, b" " * (MAX_PAYLOAD + 1)),
        "invalid": (topic, json.dumps({**body, "seq": "42"}).encode()),
    }
    for reason, (t, p) in cases.items():
        got = parse(t, p)
        assert isinstance(got, Rejected) and got.reason == reason, (reason, got)
    assert parse("tinyml/other-site/fan_7/result", payload.encode()).reason == "invalid"  # site differs
    assert parse(topic, b"[1, 2]").reason == "not_json"
    # values a database would refuse (a poison message would be redelivered forever)
    for field in ({"label": 2**31}, {"class": "a\x00b"}, {"latency": 2**63}, {"received_at": True}):
        assert parse(topic, json.dumps({**body, **field}).encode()).reason == "invalid", field
    assert parse("tinyml/plant-1/a_b/result", json.dumps({**body, "device": "a\x00b"}).encode()).reason == "invalid"
    assert parse("tinyml/plant-1/_gateway/status", b'{"state": "offline"}').state == "offline"


# --- end to end ------------------------------------------------------------------------------

def _fleet_run(tmp_path: Path, db: str, env: dict[str, str], consumers: int, kills: int) -> None:
    """Two gateways (sites a, b; b publishes batches, ``[mqtt] batch``) fed by emulated devices ->
    durable Mosquitto -> ``consumers`` fleet consumers in one shared-subscription group -> ``db``.
    Consumer 0 is SIGKILLed ``kills`` times mid-stream and restarted under its client id; the
    broker is restarted once.

    Mosquitto 2.0 restores a session's queued messages after a restart but not its shared
    subscriptions: until the consumers have subscribed again, what gateways publish reaches no
    one (measured; docs/fleet.md). So the broker restart follows the procedure docs/fleet.md
    gives: the gateways' way in (here a relay) stays shut until the consumers are back."""
    rng = random.Random(14)
    model = Path(__file__).resolve().parents[2] / "shared" / "models" / MODEL
    broker = Broker(tmp_path, port=free_tcp_port(), durable=True).start()
    gate = Gate(broker.port)
    gate.open = True
    procs: list[FleetProcess] = []
    gateways: list[GatewayProcess] = []
    try:
        ids = [f"c{i}" for i in range(consumers)]
        procs = [FleetProcess(tmp_path, broker.url, db, cid, env=env) for cid in ids]
        wait_until(lambda: all(p.connected() for p in procs), 60, "consumers connected")
        with EmulatedFleet(model, count=3, tcp_port=0, rate=25, seed=1) as fa, \
                EmulatedFleet(model, count=3, tcp_port=0, rate=25, seed=2) as fb:
            batched = tmp_path / "batched.toml"  # site b publishes batches ([mqtt] batch), site a one per result
            batched.write_text("[mqtt]\nbatch = true\n")
            for site, fl in (("a", fa), ("b", fb)):
                gateways.append(GatewayProcess(tmp_path, fl.endpoints, "--mqtt", f"mqtt://127.0.0.1:{gate.port}",
                                               "--site", site, *(["--config", str(batched)] if site == "b" else []),
                                               db=tmp_path / f"gw-{site}.db", name=f"gw-{site}"))
            wait_until(lambda: all("MQTT connected" in g.text() for g in gateways), 60, "gateways connected")
            for k in range(kills):
                time.sleep(rng.uniform(0.6, 1.5))
                if k == kills // 2:  # the broker restarts, its sessions and queued messages are kept
                    gate.open = False
                    connects = [p.text().count("MQTT connected") for p in procs]
                    broker.stop()
                    broker.start()
                    wait_until(lambda c=connects: all(p.connected(n + 1) for p, n in zip(procs, c, strict=True)), 60,
                               "consumers back after the broker restart")
                    gate.open = True
                    time.sleep(rng.uniform(0.6, 1.5))
                procs[0].kill()
                procs[0] = FleetProcess(tmp_path, broker.url, db, ids[0], env=env)
                wait_until(procs[0].connected, 60, "killed consumer back")
            time.sleep(1.0)
        # devices stopped: the gateways drain their outboxes (deleted only on the broker's PUBACK)
        for g in gateways:
            wait_until(lambda g=g: query(g.db, "SELECT count(*) FROM outbox") == [(0,)], 60, "outbox drained")
            assert g.stop() == 0
        acked = {("a", i) for i in gateway_ids(gateways[0].db)} | {("b", i) for i in gateway_ids(gateways[1].db)}
        assert len(acked) > 300
        wait_until(lambda: set(fleet_rows(db, env)) >= acked, 60, "every acknowledged result in the fleet store")
        time.sleep(0.5)
        rows = fleet_rows(db, env)
        assert len(rows) == len(set(rows)) == len(acked), "a result stored twice, or one no gateway stored"
        assert set(rows) == acked
        snap = status_json(db, env)
        assert snap["results"] == len(acked)
        assert {s["site"] for s in snap["sites"]} == {"a", "b"}
        assert sum(d["results"] for d in snap["devices"]) == len(acked)
        if consumers > 1:  # the group split the load
            assert all(c["results"] > 0 for c in snap["consumers"]), snap["consumers"]
        for p in procs:
            assert p.stop() == 0
            assert "Traceback" not in p.text()
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.kill()
        for g in gateways:
            if g.proc.poll() is None:
                g.kill()
        gate.close()
        broker.stop()


@pytest.mark.mosquitto
@needs_pg
def test_two_consumers_into_postgres_survive_sigkills_and_a_broker_restart(tmp_path, pg, pgdb):
    _fleet_run(tmp_path, pgdb, pg.env(), consumers=2, kills=3)


@pytest.mark.mosquitto
def test_one_consumer_into_sqlite_survives_sigkills_and_a_broker_restart(tmp_path):
    _fleet_run(tmp_path, str(tmp_path / "fleet.db"), {}, consumers=1, kills=2)


# --- bad input, outages, credentials -----------------------------------------------------------

@pytest.mark.mosquitto
def test_bad_input_is_counted_logged_once_and_never_stops_the_consumer(tmp_path):
    db = str(tmp_path / "fleet.db")
    with one_consumer(tmp_path, db, "bad", "--http", "127.0.0.1:0") as session:
        consumer, pub = session.consumer, session.pub
        good = [result_message("s1", "dev-1", 7, seq) for seq in range(20)]
        topic, _, payload = good[0]
        bad = [(topic, "x", b'{"id": ') for _ in range(3)]
        bad += [(topic, "x", json.dumps({**json.loads(payload), "v": 99}).encode()) for _ in range(2)]
        bad += [("tinyml/s1/dev-1/extra/result", "x", payload.encode())]  # matches no subscription: never seen
        bad += [("tinyml//dev-1/result", "x", payload.encode()) for _ in range(2)]
        bad += [("tinyml/s1/dev-2/result", "x", payload.encode())]  # payload names dev-1
        bad += [(topic, "x", b"{" + b" " * (MAX_PAYLOAD + 10) + b"}") for _ in range(2)]
        for i, message in enumerate(good):
            pub.publish(*message)
            if i < len(bad):
                pub.publish(*bad[i])
        assert pub.wait_acked(len(good) + len(bad))
        wait_until(lambda: len(fleet_rows(db, {})) == len(good), 30, "good results stored")
        wait_until(lambda: sum(n for n, in query(Path(db), "SELECT count FROM rejects")) == len(bad) - 1, 30,
                   "rejections counted")
        counts = dict(((s, r), n) for s, r, n in query(Path(db), "SELECT source, reason, count FROM rejects"))
        assert counts == {("site s1", "not_json"): 3, ("site s1", "schema_version"): 2, ("unknown site", "topic"): 2,
                          ("site s1", "invalid"): 1, ("site s1", "oversized"): 2}
        text = consumer.text()
        for reason in ("not_json", "schema_version", "topic", "invalid", "oversized"):
            assert text.count(f"rejected {reason} message") == 1, reason
        assert consumer.proc.poll() is None
        port = int(text.split("HTTP dashboard on http://127.0.0.1:")[1].split("/")[0])
        snap = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10))
        assert snap["results"] == len(good) and len(snap["rejected"]) == 5
        assert snap["devices"][0]["last"]["label"] in (0, 1) and snap["mqtt"]["connected"]
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert "/dashboard.js" in page  # the gateway's dashboard page, fed by the fleet's /status
        with chromium() as driver:
            driver.get(f"http://127.0.0.1:{port}/")
            rows = ("return [...document.querySelectorAll('#devices tbody tr')].map(r => "
                    "Object.fromEntries([...r.cells].map(c => [c.dataset.field, c.textContent])))")
            wait_until(lambda: [r["device"] for r in driver.execute_script(rows)] == ["s1/dev-1"], 30,
                       "the fleet's device row on the dashboard")
            shown = driver.execute_script(rows)[0]
            assert shown["results"] == "20" and shown["missing"] == "-" and shown["last_score"] != "-"
            assert driver.find_element("id", "link").get_attribute("data-state") == "live"
            assert console_errors(driver) == []
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'tinyml_fleet_rejected_total{source="site s1",reason="not_json"} 3' in metrics
        assert 'tinyml_fleet_device_results_total{site="s1",device="dev-1"} 20' in metrics
        assert consumer.stop() == 0 and "Traceback" not in consumer.text()


@pytest.mark.mosquitto
def test_a_message_the_database_refuses_is_isolated_rejected_and_acknowledged(tmp_path):
    """A value the checks let through but the database refuses (here a trigger refuses one
    device) must not fail its whole batch forever: the batch is halved until the message
    stands alone, that message is stored as a rejection, everything else as usual."""
    db = tmp_path / "fleet.db"
    FleetStore(str(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TRIGGER poison BEFORE INSERT ON results WHEN NEW.device = 'dev-bad' "
                     "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    with one_consumer(tmp_path, str(db), "poison") as session:
        consumer, pub = session.consumer, session.pub
        messages = [result_message("s1", f"dev-{d}", 3, seq) for seq in range(50) for d in ("a", "bad", "b")]
        for m in messages:
            pub.publish(*m)
        assert pub.wait_acked(len(messages))
        wait_until(lambda: query(db, "SELECT count FROM rejects WHERE reason = 'refused'") == [(50,)], 60,
                   "refused results counted")
        assert len(fleet_rows(str(db), {})) == 100
        assert consumer.text().count("rejected refused message") == 1 and consumer.proc.poll() is None
        assert consumer.stop() == 0


@pytest.mark.mosquitto
@needs_pg
def test_postgres_outage_stops_acknowledgements_and_loses_nothing(tmp_path, pg, pgdb):
    """PostgreSQL stops mid-stream: the consumer stops acknowledging, so the broker keeps what
    it sent; the consumer is even SIGKILLed during the outage. After the restart every
    published result is stored exactly once."""
    try:
        with one_consumer(tmp_path, pgdb, "outage", env=pg.env(), durable=True) as session:
            consumer, pub = session.consumer, session.pub
            messages = [result_message("s1", f"dev-{d}", 1, seq) for seq in range(100) for d in range(4)]
            for m in messages[:200]:
                pub.publish(*m)
            wait_until(lambda: len(fleet_rows(pgdb, pg.env())) == 200, 30, "first half stored")
            pg.stop()
            for m in messages[200:]:
                pub.publish(*m)
            assert pub.wait_acked(len(messages))  # the broker has them all
            wait_until(lambda: "not acknowledging" in consumer.text(), 30, "outage noticed")
            time.sleep(1.0)
            consumer.kill()  # holding unacknowledged messages in memory only
            pg.start()
            consumer = session.consumer = FleetProcess(tmp_path, session.broker.url, pgdb, "outage", env=pg.env())
            expected = {("s1", i) for _, i, _ in messages}
            wait_until(lambda: set(fleet_rows(pgdb, pg.env())) == expected, 60, "everything stored after the outage")
            rows = fleet_rows(pgdb, pg.env())
            assert len(rows) == len(expected)
            assert consumer.stop() == 0
    finally:
        if not (pg.data / "postmaster.pid").exists():  # a failure during the outage leaves it stopped
            pg.start()


def _fleet_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tinyml", "fleet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


@pytest.mark.mosquitto
@needs_pg
def test_wrong_credentials_give_one_line_and_secrets_stay_out_of_argv_and_logs(tmp_path, pg, pgdb):
    broker = Broker(tmp_path, port=free_tcp_port(), users={"fleet": "mqtt-secret-1"}).start()
    try:
        url = f"mqtt://fleet@127.0.0.1:{broker.port}"
        cases = [
            (["--mqtt", url, "--db", pgdb], {"PGPASSWORD": "wrong-pg-secret", "TINYML_MQTT_PASSWORD": "mqtt-secret-1"},
             "PostgreSQL at"),
            (["--mqtt", url, "--db", str(tmp_path / "f.db")], {"TINYML_MQTT_PASSWORD": "wrong-mqtt-secret"},
             "refused the connection"),
            (["--mqtt", f"mqtt://fleet:mqtt-secret-1@127.0.0.1:{broker.port}", "--db", str(tmp_path / "f.db")], {},
             "carries a password"),
            (["--mqtt", url, "--db", pgdb.replace("tinyml@", f"tinyml:{pg.password}@")], {}, "carries a password"),
        ]
        runs = [(_fleet_cli("run", *args, env=env), words) for args, env, words in cases]  # in parallel
        for proc, words in runs:
            _, stderr = proc.communicate(timeout=120)
            lines = stderr.strip().splitlines()
            assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], \
                stderr
            assert not any(w in stderr for w in ("wrong-pg-secret", "mqtt-secret-1", "wrong-mqtt-secret",
                                                  pg.password)), stderr
        # right credentials from a file and the environment: runs, and logs no secret
        pwfile = tmp_path / "mqtt-password"
        pwfile.write_text("mqtt-secret-1\n")
        consumer = FleetProcess(tmp_path, url, pgdb, "creds", "--mqtt-password-file", str(pwfile), env=pg.env())
        try:
            wait_until(consumer.connected, 60, "consumer connected with a password file")
        finally:
            consumer.stop()
        assert "mqtt-secret-1" not in consumer.text() and pg.password not in consumer.text()
    finally:
        broker.stop()
    bad = _fleet_cli("status", "--db", str(tmp_path / "missing.db"))
    _, stderr = bad.communicate(timeout=120)
    assert bad.returncode == 2 and stderr.startswith("error: no fleet database")


@pytest.mark.mosquitto
def test_tools_are_installed():
    """CI installs Mosquitto and PostgreSQL (make setup): the fleet tests must not silently skip there."""
    assert mosquitto_path()
    if os.environ.get("CI"):
        assert _postgres_available()


def _schema_1(store: FleetStore) -> None:
    """Turn a fresh fleet database into what a schema-1 consumer left behind."""
    with store.transaction() as cur:
        for column in ("port", "authenticated"):
            cur.execute(f"ALTER TABLE results DROP COLUMN {column}")
        cur.execute("UPDATE fleet_meta SET value = '1' WHERE key = 'schema'")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=needs_pg)])
def test_a_schema_1_fleet_store_migrates_and_records_the_source_of_results(backend, tmp_path, request):
    """Issue 16: results say which gateway port they came from and whether their device proved its key."""
    from tinyml.device import protocol
    from tinyml.gateway.processor import result_payload

    if backend == "sqlite":
        db = str(tmp_path / "fleet.db")
    else:  # the store reads the password from the environment, as `fleet run` does
        db = request.getfixturevalue("pgdb")
        for name, value in request.getfixturevalue("pg").env().items():
            request.getfixturevalue("monkeypatch").setenv(name, value)
    store = FleetStore(db, consumer="c1")
    store.write([parse("tinyml/s/fan/result", result_message("s", "fan", 7, 0)[2].encode())])
    _schema_1(store)
    store.close()
    store = FleetStore(db, consumer="c1")  # migrated at start
    r = protocol.Result(1, 7, 10, 5, protocol.LATENCY_US, 0, 0.5, ())
    messages = [parse("tinyml/s/fan/result", result_payload("s", "fan", r, 1.0, None, False, port="/dev/ttyUSB0",
                                                             authenticated=True).encode())]
    assert isinstance(messages[0], Result) and messages[0].authenticated is True
    store.write(messages)
    rows = store.query("SELECT seq, port, authenticated FROM results ORDER BY seq")
    assert [(seq, port, None if auth is None else bool(auth)) for seq, port, auth in rows] == \
        [(0, None, None), (1, "/dev/ttyUSB0", True)]
    assert store.query("SELECT value FROM fleet_meta WHERE key = 'schema'") == [("2",)]
    store.close()
    bad = json.loads(result_payload("s", "fan", r, 1.0, None, False))
    assert parse("tinyml/s/fan/result", json.dumps({**bad, "authenticated": "yes"}).encode()).reason == "invalid"
