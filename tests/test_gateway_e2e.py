"""The gateway as a user runs it: `tinyml gateway run` as a child process, emulated devices on
TCP and ptys, a real Mosquitto broker and a subscriber that deduplicates by message id."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.gateway_devices import ScriptedDevice
from tests.mosquitto import Broker, Gate, Subscriber, free_tcp_port, make_tls_files
from tinyml.device.emulator import EmulatedFleet, Faults

pytestmark = [pytest.mark.mosquitto]

MODEL = "feat_ae_int8.tflite"


class GatewayProcess:
    def __init__(self, tmp: Path, ports: list[str], *extra: str, db: Path | None = None,
                 env: dict[str, str] | None = None, name: str = "gw"):
        self.db = db or tmp / "gateway.db"
        self.log = tmp / f"{name}-{time.monotonic_ns()}.log"
        args = [sys.executable, "-m", "tinyml", "gateway", "run", "--db", str(self.db), "-v", *extra]
        for p in ports:
            args += ["--port", p]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(self.log, "w"),  # noqa: SIM115
                                     env={**os.environ, **(env or {})})

    def text(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            self.proc.stdout.close()


def query(db: Path, sql: str, *args) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []  # schema not created yet
    finally:
        conn.close()


def wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    assert predicate(), f"timed out waiting for {what}"


def count(db: Path, sql: str, *args) -> int:
    rows = query(db, sql, *args)
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


@pytest.fixture
def subscriber(broker):
    sub = Subscriber(broker.port)
    yield sub
    sub.close()


@pytest.fixture(scope="module")
def model(shared) -> Path:
    return shared / "models" / MODEL


def test_fleet_with_garbage_and_drift_over_mqtt_and_http(tmp_path, broker, subscriber, model):
    """Garbage on one line never stops the others; reboots are seen; drift is flagged for the drifted device only;
    every stored result reaches MQTT once per id; /status and /metrics answer on loopback."""
    faults = {0: Faults(garbage_every=3, truncate_every=7, bad_crc_every=11), 2: Faults(reboot_every=3.0)}
    cfg = tmp_path / "gateway.toml"
    # KS over 100 scores against 100: healthy windows reach about 0.2 by chance (p ~ 0.04 per
    # check, and a long run checks hundreds of times); the drifted device's is near 1
    cfg.write_text("site = 'lab'\n[drift]\nbaseline_n = 100\nwindow = 100\nevery = 10\nthreshold = 0.4\nclear = 0.2\n"
                   "[rules]\nsilent_seconds = 60\n")
    http = free_tcp_port()
    with EmulatedFleet(model, count=4, tcp_port=0, rate=50, faults=faults, seed=1) as fleet:
        gw = GatewayProcess(tmp_path, fleet.endpoints, "--mqtt", broker.url, "--config", str(cfg),
                            "--http", f"127.0.0.1:{http}")
        # drift starts once the gateway holds emu-003's baseline (its first 100 scores)
        wait_until(lambda: count(gw.db, "SELECT count(*) FROM results WHERE device='emu-003'") >= 120, 40,
                   "baseline")
        fleet.schedule(3, Faults(drift_after=time.monotonic() - fleet.start_time))
        wait_until(lambda: count(gw.db, "SELECT count(*) FROM alerts WHERE rule='drift'") > 0, 40, "drift alert")
        time.sleep(1.0)
        status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http}/status", timeout=5).read())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{http}/nope", timeout=5)
        with pytest.raises(urllib.error.HTTPError, match="405"):
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{http}/status", data=b"x"), timeout=5)
        assert gw.stop() == 0
    devices = {d["device"]: d for d in status["devices"]}
    assert sorted(devices) == ["emu-000", "emu-001", "emu-002", "emu-003"]
    assert devices["emu-000"]["bad_frames"] > 10
    assert all(devices[d]["bad_frames"] == 0 for d in ("emu-001", "emu-002", "emu-003"))
    # the noisy line lost only the frames that were hit; the others lost nothing
    assert devices["emu-000"]["results"] > 0.5 * devices["emu-001"]["results"] > 0
    assert all(devices[d]["missing"] == 0 for d in ("emu-001", "emu-002", "emu-003"))
    assert devices["emu-002"]["reboots"] >= 1 and devices["emu-001"]["reboots"] == 0
    boots = query(gw.db, "SELECT count(DISTINCT boot_id) FROM results WHERE device='emu-002'")[0][0]
    reboots = count(gw.db, "SELECT reboots FROM devices WHERE device='emu-002'")
    # every boot stored results, except perhaps the last one, announced just before the gateway stopped
    assert reboots <= boots <= reboots + 1
    assert [(a["device"], a["rule"]) for a in status["alerts"] if a["rule"] == "drift"] == [("emu-003", "drift")]
    assert 'tinyml_gateway_alert_firing{device="emu-003",rule="drift"} 1' in metrics
    assert re.search(r'tinyml_gateway_device_bad_frames_total\{device="emu-000"\} [1-9]', metrics)
    # every stored result was published; the subscriber sees each id (duplicates are allowed)
    stored = {f"{d}/{b:08x}/{s}" for d, b, s in query(gw.db, "SELECT device, boot_id, seq FROM results")}
    assert subscriber.wait_for(lambda: set(subscriber.ids()) >= stored, 15)
    assert set(subscriber.ids()) == stored
    drift_msgs = [p for p in subscriber.payloads("alert") if p["rule"] == "drift"]
    assert [(p["device"], p["state"]) for p in drift_msgs] == [("emu-003", "firing")]
    assert count(gw.db, "SELECT count(*) FROM outbox") == 0


def _anomaly_burst(seq: int) -> tuple[int, float]:
    """Normal results, then a burst of anomalies (seq 60-99), then normal again."""
    return (1, 0.9) if 60 <= seq < 100 else (0, 0.1)


def test_alerts_fire_and_clear_end_to_end_and_silent_devices_are_flagged(tmp_path, broker, subscriber):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text("site = 'lab'\n[rules]\nanomaly_k = 4\nanomaly_n = 6\nanomaly_clear_k = 1\nanomaly_clear_seconds = 0\n"
                   "silent_seconds = 2\n")
    dev = ScriptedDevice("fan-1", rate=50, outcome=_anomaly_burst, hold_until_connected=True).start()
    gw = GatewayProcess(tmp_path, [dev.url], "--mqtt", broker.url, "--config", str(cfg))
    try:
        wait_until(lambda: count(gw.db, "SELECT max(seq) FROM results") >= 150, 30, "150 results")
        dev.stop()  # the device goes quiet
        wait_until(lambda: count(gw.db, "SELECT count(*) FROM alerts WHERE rule='silent'") == 1, 15, "silent")
    finally:
        dev.stop()
        assert gw.stop() == 0
    alerts = query(gw.db, "SELECT rule, cleared_at IS NOT NULL FROM alerts ORDER BY id")
    assert alerts == [("anomalies", 1), ("silent", 0)]  # one alert for the burst, no flapping
    assert subscriber.wait_for(lambda: len(subscriber.payloads("alert")) >= 3, 10)
    states = [(p["device"], p["rule"], p["state"]) for p in subscriber.payloads("alert")]
    assert states == [("fan-1", "anomalies", "firing"), ("fan-1", "anomalies", "cleared"),
                      ("fan-1", "silent", "firing")]
    out = subprocess.run([sys.executable, "-m", "tinyml", "gateway", "status", "--db", str(gw.db)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ALERT fan-1 silent" in out.stdout


def test_ports_that_disappear_are_reconnected(tmp_path, model):
    """A TCP device that drops off and a pty whose device node vanishes (USB unplug) both come back."""
    link = tmp_path / "ttyFAN"  # like /dev/serial/by-id/...: a stable name for a changing node
    pty_dev = ScriptedDevice("fan-pty", rate=50, pty=True).start()
    link.symlink_to(pty_dev.path)
    with EmulatedFleet(model, count=1, tcp_port=0, rate=50, seed=2) as fleet:
        gw = GatewayProcess(tmp_path, [fleet.endpoints[0], str(link)])
        try:
            wait_until(lambda: count(gw.db, "SELECT count(*) FROM results WHERE device='fan-pty'") > 50, 20, "pty")
            wait_until(lambda: count(gw.db, "SELECT count(*) FROM results WHERE device='emu-000'") > 20, 20, "tcp")
            # the TCP device drops its endpoint for 2 s, then listens again on the same port
            fleet.schedule(0, Faults(disconnect_after=time.monotonic() - fleet.start_time, disconnect_for=2.0))
            pty_dev.close_pty()  # unplugged
            link.unlink()
            time.sleep(1.5)
            before = count(gw.db, "SELECT count(*) FROM results WHERE device='fan-pty'")
            pty_dev.open_pty()  # plugged in again, under a new node
            link.symlink_to(pty_dev.path)
            wait_until(lambda: count(gw.db, "SELECT count(*) FROM results WHERE device='fan-pty'") > before + 50,
                       20, "pty results after replug")
            wait_until(lambda: count(gw.db, "SELECT connects FROM ports WHERE port=?", fleet.endpoints[0]) >= 2,
                       20, "tcp reconnect")
            tcp_before = count(gw.db, "SELECT count(*) FROM results WHERE device='emu-000'")
            wait_until(lambda: count(gw.db, "SELECT count(*) FROM results WHERE device='emu-000'") > tcp_before + 20,
                       20, "tcp results after reconnect")
        finally:
            pty_dev.stop()
            assert gw.stop() == 0
    assert count(gw.db, "SELECT connects FROM ports WHERE port=?", str(link)) >= 2
    assert count(gw.db, "SELECT missing FROM devices WHERE device='fan-pty'") > 0  # the unplugged time
    assert "disconnected" in gw.text() and "Traceback" not in gw.text()


def _acknowledged(log: str) -> int:
    """The last committed total the gateway reported (it reports only after COMMIT)."""
    totals = re.findall(r"committed \d+ result\(s\), \d+ duplicate\(s\); (\d+) stored", log)
    return int(totals[-1]) if totals else -1


@pytest.mark.parametrize("batch,ingest", [(False, ""), (True, ""), (True, "commit_interval_ms = 50\nbusy_rate = 50"),
                                          (False, "fsync = false")],
                         ids=["per-result", "batched", "batched-paced", "per-result-no-fsync"])
def test_sigkill_and_broker_restart_lose_nothing_and_publish_every_id(tmp_path, model, batch, ingest):
    """Kill the gateway with SIGKILL at random points, and stop the broker mid-stream: every
    acknowledged result is still stored after restart, no row is duplicated, and a
    deduplicating subscriber ends up with exactly the stored ids, each device in order.
    Batched (``[mqtt] batch``): the same, with every result arriving inside a batch message.
    Paced: the writer holds its commits 50 ms apart (``[ingest]``, busy at 400 results/s).
    Without fsync (``[ingest] fsync = false``) a killed process loses nothing either.

    The broker is durable and the subscriber keeps a persistent session, as in a deployment
    that claims "nothing lost": a broker that has PUBACKed a message owns it, and one without
    persistence drops what it has not yet delivered when it stops."""
    rng = random.Random(7)
    broker = Broker(tmp_path, port=free_tcp_port(), durable=True).start()
    sub = Subscriber(broker.port, session="e2e-dedup-subscriber")
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"[mqtt]\nbatch = {'true' if batch else 'false'}\n"
                   + (f"[ingest]\n{ingest}\n" if ingest else ""))
    try:
        kills = 10 if batch else 14
        acknowledged: list[int] = []
        with EmulatedFleet(model, count=4, tcp_port=0, rate=100, seed=3) as fleet:
            for i in range(kills):
                gw = GatewayProcess(tmp_path, fleet.endpoints, "--mqtt", broker.url, "--config", str(cfg),
                                    name=f"kill{i}")
                if i == kills // 2:  # the broker stops mid-stream; the gateway keeps storing
                    wait_until(lambda gw=gw: "MQTT connected" in gw.text(), 20, "gateway connected")
                    time.sleep(0.5)
                    broker.stop()
                    wait_until(lambda gw=gw: "lost; storing" in gw.text(), 10, "broker loss noticed")
                    time.sleep(1.0)
                else:
                    time.sleep(rng.uniform(0.7, 1.6))
                gw.kill()
                acknowledged.append(_acknowledged(gw.text()))
                if i == kills // 2:  # back, with its saved sessions: the subscriber reconnects by itself
                    broker.start()
            final = GatewayProcess(tmp_path, fleet.endpoints, "--mqtt", broker.url, "--config", str(cfg),
                                   name="final")
            # up (a SIGTERM before its handler is installed would end it with -15) and storing
            wait_until(lambda: "MQTT connected" in final.text() and _acknowledged(final.text()) > max(acknowledged),
                       60, "final gateway connected and storing")
        wait_until(lambda: count(final.db, "SELECT count(*) FROM outbox") == 0, 30, "outbox drained")
        assert final.stop() == 0
        stored_rows = query(final.db, "SELECT device, boot_id, seq FROM results ORDER BY id")
        assert query(final.db, "PRAGMA integrity_check") == [("ok",)]
        assert len(stored_rows) == len(set(stored_rows)), "duplicate rows in the store"
        assert max(acknowledged) > 0
        assert len(stored_rows) >= max(acknowledged), "an acknowledged result was lost"
        stored = [f"{d}/{b:08x}/{s}" for d, b, s in stored_rows]
        sub.wait_for(lambda: set(sub.ids()) >= set(stored), 30)
        seen = sub.ids()
        missing = sorted(set(stored) - set(seen))
        assert not missing, f"{len(missing)} stored id(s) never published, e.g. {missing[:5]}"
        assert set(seen) == set(stored), "published ids differ from stored ids"
        # per device and boot, first deliveries arrive in sequence order
        first: dict[str, list[tuple[int, int]]] = {}
        for msg_id in dict.fromkeys(seen):
            device, boot, seq = msg_id.rsplit("/", 2)
            first.setdefault(f"{device}/{boot}", []).append(int(seq))
        assert all(seqs == sorted(seqs) for seqs in first.values())
        # batched: every result came inside a .../results message; paced commits (50 ms apart at 400 results/s)
        # hold several results per device, so some messages hold several (unpaced, a quiet machine commits
        # each result on its own)
        if batch:
            assert 0 < sub.batches <= len(seen) and (sub.batches < len(seen) or not ingest), (sub.batches, len(seen))
        else:
            assert sub.batches == 0
    finally:  # a failed wait or assertion must not leave the broker running
        sub.close()
        broker.stop()
    print(f"{kills} kills, {len(stored)} results stored, {len(seen) - len(set(seen))} duplicate deliveries")


def test_broker_credentials_work_and_never_appear_in_logs(tmp_path):
    secret = "pa55-w0rd-never-logged"
    broker = Broker(tmp_path, users={"gw": secret, "reader": "r"}).start()
    sub = Subscriber(broker.port, username="reader", password="r")
    dev = ScriptedDevice("fan-9", rate=50).start()
    other = ScriptedDevice("fan-10", rate=50).start()  # a device serves one host at a time
    try:
        gw = GatewayProcess(tmp_path, [dev.url], "--mqtt", f"mqtt://gw@127.0.0.1:{broker.port}", "--site", "s1",
                            "--http", "127.0.0.1:0", env={"TINYML_MQTT_PASSWORD": secret})
        assert sub.wait_for(lambda: len(sub.ids()) >= 20, 30), gw.text()
        wrong = GatewayProcess(tmp_path, [other.url], "--mqtt", f"mqtt://gw:wrong-{secret}@127.0.0.1:{broker.port}",
                               db=tmp_path / "wrong.db", name="wrong")
        wait_until(lambda: count(wrong.db, "SELECT count(*) FROM outbox") > 0, 20, "outbox fills without broker")
        time.sleep(1.0)
        assert wrong.stop() == 0 and gw.stop() == 0
    finally:
        dev.stop()
        other.stop()
        sub.close()
        broker.stop()
    assert all(t.startswith("tinyml/s1/fan-9/") for t, _ in sub.messages if "fan-9" in t)
    status = subprocess.run([sys.executable, "-m", "tinyml", "gateway", "status", "--json", "--db", str(gw.db)],
                            capture_output=True, text=True, timeout=60)
    snap = json.loads(status.stdout)
    assert snap["outbox"] == 0 and [d["device"] for d in snap["devices"]] == ["fan-9"]
    assert wrong.text().count("refused") == 1  # the bad password is reported once, the results stay queued
    assert count(wrong.db, "SELECT count(*) FROM results") > 0
    for text in (gw.text(), wrong.text(), status.stdout, status.stderr, gw.db.read_bytes().decode("latin-1")):
        assert secret not in text


def test_tls_broker_with_a_private_ca_over_mqtt_3_1_1(tmp_path):
    ca, cert, key = make_tls_files(tmp_path)
    broker = Broker(tmp_path, tls=(ca, cert, key)).start()
    sub = Subscriber(broker.port, ca=ca)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"[mqtt]\nurl = 'mqtts://127.0.0.1:{broker.port}'\nca = '{ca}'\nprotocol = '3.1.1'\n")
    dev = ScriptedDevice("fan-tls", rate=50).start()
    gw = GatewayProcess(tmp_path, [dev.url], "--config", str(cfg))
    (tmp_path / "other").mkdir()
    other_ca = make_tls_files(tmp_path / "other")[0]  # a CA that did not sign the broker's certificate
    distrust = tmp_path / "distrust.toml"
    distrust.write_text(f"[mqtt]\nurl = 'mqtts://127.0.0.1:{broker.port}'\nca = '{other_ca}'\n")
    other = ScriptedDevice("fan-tls-2", rate=50).start()  # a device serves one host at a time
    bad = GatewayProcess(tmp_path, [other.url], "--config", str(distrust), db=tmp_path / "bad.db", name="bad")
    try:
        assert sub.wait_for(lambda: len(sub.ids()) >= 20, 30), gw.text()
        assert f"mqtts://127.0.0.1:{broker.port}" in gw.text()
        wait_until(lambda: "certificate verify failed" in bad.text(), 20, "TLS failure reported")
    finally:
        dev.stop()
        other.stop()
        assert gw.stop() == 0 and bad.stop() == 0
        sub.close()
        broker.stop()
    assert bad.text().count("certificate verify failed") == 1  # once, not on every retry


def test_unreachable_broker_at_start_keeps_storing_and_delivers_later(tmp_path, broker, subscriber):
    gate = Gate(broker.port)  # shut: the broker is unreachable for the gateway
    dev = ScriptedDevice("fan-2", rate=50).start()
    gw = GatewayProcess(tmp_path, [dev.url], "--mqtt", f"mqtt://127.0.0.1:{gate.port}")
    try:
        wait_until(lambda: count(gw.db, "SELECT count(*) FROM outbox") > 200, 20, "results queued")
        wait_until(lambda: "unreachable" in gw.text(), 10, "unreachable warning")
        gate.open = True
        wait_until(lambda: count(gw.db, "SELECT count(*) FROM outbox") < 50, 30, "outbox drained")
        dev.stop()
        time.sleep(0.5)
        assert gw.stop() == 0
    finally:
        dev.stop()
        gate.close()
    stored = {f"fan-2/{b:08x}/{s}" for b, s in query(gw.db, "SELECT boot_id, seq FROM results")}
    assert subscriber.wait_for(lambda: set(subscriber.ids()) >= stored, 15)
    seqs = [int(i.rsplit("/", 1)[1]) for i in dict.fromkeys(subscriber.ids())]
    assert seqs == sorted(seqs), "results published out of order after the outage"


def test_demo_step_streams_through_a_local_broker_and_summarises(tmp_path, model):
    from tinyml.gateway.demo import stream_through_gateway

    text = stream_through_gateway(model, tmp_path, devices=2, seconds=4.0)
    head, summary = text.split("\n", 1)
    results = int(re.search(r"(\d+) result", head).group(1))
    stored = count(tmp_path / "gateway.db", "SELECT count(*) FROM results")
    assert results > 0 and stored > 0 and results >= stored - 40  # the last batch may not be delivered
    assert summary.startswith("2 device(s)") and "emu-000" in summary and "emu-001" in summary


def test_authenticated_devices_a_spoofer_and_the_per_port_policy(tmp_path, broker, subscriber, model):
    """Issue 16, part 1, as a user runs it: emulated devices with keys from a mode-600 key store, the
    audit's spoofer (device 3 claims emu-000 with its boot id and sequence numbers ahead), an
    unauthenticated device on an optional port and one on a required port, real Mosquitto."""
    from tinyml.device.keystore import provision_key, read_keys

    keys = tmp_path / "device-keys.json"
    for device in ("emu-000", "emu-002"):
        provision_key(keys, device)
    faults = {2: Faults(reboot_every=2.0), 3: Faults(impersonate=0)}  # a keyed device that reboots, a spoofer
    http = free_tcp_port()
    with EmulatedFleet(model, count=5, tcp_port=0, rate=50, faults=faults, seed=4, keys=read_keys(keys)) as fleet:
        ports = fleet.endpoints
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(f"site = 'lab'\n[auth]\nkeys = '{keys.name}'\nmode = 'required'\n"
                       f"[auth.ports]\n'{ports[1]}' = 'optional'\n")
        gw = GatewayProcess(tmp_path, ports, "--mqtt", broker.url, "--config", str(cfg), "--http", f"127.0.0.1:{http}")
        wait_until(lambda: count(gw.db, "SELECT count(*) FROM results WHERE device='emu-000'") >= 300, 40, "results")
        wait_until(lambda: count(gw.db, "SELECT count(*) FROM results WHERE device='emu-001'") >= 100, 20, "emu-001")
        wait_until(lambda: count(gw.db, "SELECT reboots FROM devices WHERE device='emu-002'") >= 2, 20, "reboots")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
        assert gw.stop() == 0
    by_port = dict(query(gw.db, "SELECT port, count(*) FROM results GROUP BY port"))
    assert by_port.get(ports[3], 0) == 0 and by_port.get(ports[4], 0) == 0  # the spoofer and the unauthenticated one
    assert query(gw.db, "SELECT DISTINCT device, port, authenticated FROM results ORDER BY device") == \
        [("emu-000", ports[0], 1), ("emu-001", ports[1], 0), ("emu-002", ports[2], 1)]
    # nothing genuine dropped: from the gateway's connect on (results before it had no listener), every
    # seq of emu-000 is stored, none twice
    for boot, low, high, n in query(gw.db, "SELECT boot_id, min(seq), max(seq), count(*) FROM results "
                                           "WHERE device='emu-000' GROUP BY boot_id"):
        assert n == high - low + 1, boot
    # after each reboot a new challenge, and the results sent before the proof were held, not lost
    boots = query(gw.db, "SELECT boot_id, min(seq), max(seq), count(*) FROM results WHERE device='emu-002' "
                         "GROUP BY boot_id ORDER BY min(id)")
    assert len(boots) >= 3 and all(low == 0 and n == high + 1 for _, low, high, n in boots[1:-1])
    assert count(gw.db, "SELECT duplicates FROM devices WHERE device='emu-000'") == 0
    alerts = query(gw.db, "SELECT device, rule FROM alerts ORDER BY device")
    assert ("emu-000", "identity") in alerts and ("emu-004", "identity") in alerts
    refused = dict(query(gw.db, "SELECT port, refused FROM ports"))
    assert refused[ports[3]] > 0 and refused[ports[0]] == refused[ports[1]] == refused[ports[2]] == 0
    assert re.search(rf'tinyml_gateway_port_refused_total\{{port="{re.escape(ports[3])}"\}} [1-9]', metrics)
    log = gw.text()
    assert log.count(f"port {ports[3]}: device id emu-000 refused") == 1  # logged once
    assert keys.read_text().split('"key": "')[1][:64] not in log  # no secret in the log
    stored = {f"{d}/{b:08x}/{s}" for d, b, s in query(gw.db, "SELECT device, boot_id, seq FROM results")}
    assert subscriber.wait_for(lambda: set(subscriber.ids()) >= stored, 15)
    marks = {(p["device"], p["port"], p["authenticated"]) for p in subscriber.payloads("result")}
    assert marks == {("emu-000", ports[0], True), ("emu-001", ports[1], False), ("emu-002", ports[2], True)}
