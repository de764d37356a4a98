"""The gateway's live dashboard in a real headless Chromium: `tinyml gateway run --http` as a
child process, scripted protocol devices on TCP (one injecting faults, one sending garbage),
a real Mosquitto broker.

The page must show what /status says, change as the devices send, show the alert a faulty
device fires, survive the gateway being killed and restarted, and fetch nothing but its own
loopback origin.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.browser import ROOT, chromium, console_errors, outside_loopback, requested_urls, save_screenshot
from tests.gateway_devices import ScriptedDevice
from tests.mosquitto import Broker, free_tcp_port
from tests.test_gateway_e2e import GatewayProcess, wait_until

CLASSES = ["normal", "unbalanced", "bearing <wear> & \"tear\""]
ROWS_JS = """
const rows = {};
for (const tr of document.querySelectorAll('#devices tbody tr')) {
  const o = {};
  for (const td of tr.querySelectorAll('td[data-field]')) o[td.dataset.field] = td.textContent;
  o.sparkline_points = (tr.querySelector('svg.spark polyline') || {getAttribute: () => ''})
    .getAttribute('points').split(' ').filter(Boolean).length;
  rows[tr.dataset.device] = o;
}
return rows;
"""
TABLE_JS = """
return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)].map(tr => {
  const o = {...tr.dataset};
  for (const td of tr.querySelectorAll('td[data-field]')) o[td.dataset.field] = td.textContent;
  return o;
});
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


def status(port: int) -> dict:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5).read())


def answers(port: int) -> bool:
    try:
        status(port)
        return True
    except OSError:
        return False


def expected_rows(snap: dict) -> dict[str, dict[str, str]]:
    """What the page must show for each device, formatted as the page formats it."""
    return {d["device"]: {"device": d["device"], "state": d["state"], "board": d["board"] or "-",
                          "last_class": d["last"]["class"] if d["last"] else "-",
                          "last_score": f"{d['last']['score']:.4f}" if d["last"] else "-",
                          "results": str(d["results"]), "missing": str(d["missing"]),
                          "reboots": str(d["reboots"]), "bad_frames": str(d["bad_frames"])}
            for d in snap["devices"]}


def shown_rows(driver) -> dict[str, dict[str, str]]:
    keep = ("device", "state", "board", "last_class", "last_score", "results", "missing", "reboots", "bad_frames")
    return {name: {k: (v.split(" ")[0] if k == "bad_frames" else v) for k, v in row.items() if k in keep}
            for name, row in driver.execute_script(ROWS_JS).items()}


def grafana_metrics() -> set[str]:
    """The metric names docs/grafana-dashboard.json queries (its panels' PromQL)."""
    board = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and board["__inputs"][0]["pluginId"] == "prometheus"
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    return {m for e in exprs for m in re.findall(r"tinyml_gateway_[a-z_]+", e)}


@pytest.mark.mosquitto
def test_dashboard_follows_the_gateway_through_alerts_and_a_restart(tmp_path: Path, broker) -> None:
    model = tmp_path / "model.json"
    model.write_text(json.dumps({"task": "classifier", "classes": CLASSES, "normal_class": "normal"}))
    config = tmp_path / "gateway.toml"
    config.write_text("site = 'lab'\n[rules]\nsilent_seconds = 120\n"
                      "[drift]\nbaseline_n = 40\nwindow = 40\nevery = 10\nthreshold = 0.6\nclear = 0.3\n"
                      f"[[models]]\nrun = '{model}'\ndevices = ['*']\n")
    faulty = threading.Event()
    rng = random.Random(7)

    def press(seq: int) -> tuple[int, float]:
        return (2, rng.uniform(0.9, 1.0)) if faulty.is_set() else (seq % 2, rng.uniform(0.6, 0.8))

    devices = [ScriptedDevice("fan-1", rate=20), ScriptedDevice("pump-<b>2</b>", rate=20, garbage_every=5),
               ScriptedDevice("press-3", rate=20, outcome=press)]
    for d in devices:
        d.start()
    http = free_tcp_port()
    args = ([d.url for d in devices], "--mqtt", broker.url, "--config", str(config), "--http", f"127.0.0.1:{http}")
    gw = GatewayProcess(tmp_path, *args)
    try:
        with chromium() as driver:
            wait_until(lambda: answers(http), 30, "the gateway's HTTP endpoint")
            driver.get(f"http://127.0.0.1:{http}/")
            wait_until(lambda: len(shown_rows(driver)) == 3, 30, "three device rows")
            assert driver.find_element("id", "link").get_attribute("data-state") == "live"
            assert console_errors(driver) == []
            # the page changes as the devices send: results grow, the sparkline fills, drift is computed
            before = int(shown_rows(driver)["fan-1"]["results"])
            wait_until(lambda: int(shown_rows(driver)["fan-1"]["results"]) > before + 20, 30, "new results shown")
            wait_until(lambda: driver.execute_script(ROWS_JS)["fan-1"]["drift"].startswith("KS "), 30, "drift")
            rows = driver.execute_script(ROWS_JS)
            assert rows["fan-1"]["sparkline_points"] > 10 and rows["press-3"]["last_class"] in CLASSES[:2]
            assert int(shown_rows(driver)["pump-<b>2</b>"]["bad_frames"]) > 0  # escaped: the id is text
            assert driver.find_elements("css selector", "#devices b") == []
            broker_state = driver.find_element("id", "broker")
            wait_until(lambda: broker_state.get_attribute("data-state") == "connected", 20, "broker connected")
            # a fault: press-3 reports the bearing class; the anomalies rule fires and the page shows it
            faulty.set()
            wait_until(lambda: any(a["device"] == "press-3" and a["rule"] == "anomalies"
                                   for a in driver.execute_script(TABLE_JS, "alerts")), 30, "the alert on the page")
            wait_until(lambda: shown_rows(driver)["press-3"]["last_class"] == CLASSES[2], 10, "the fault class")
            assert any(a["rule"] == "anomalies" and a["device"] == "press-3" for a in status(http)["alerts"])
            assert any(a["state"] == "open" for a in driver.execute_script(TABLE_JS, "recent-alerts"))
            time.sleep(1.5)
            save_screenshot(driver, "dashboard.png", tmp_path)
            # the shipped Grafana dashboard asks only for metrics this gateway exports
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
            exported = set(re.findall(r"^# TYPE (\S+)", metrics, re.M))
            wanted = grafana_metrics()
            assert len(wanted) >= 12 and wanted <= exported, wanted - exported
            assert console_errors(driver) == []
            # killed: the page says the gateway is unreachable and keeps polling
            started = driver.find_element("id", "started").text
            gw.kill()
            wait_until(lambda: driver.find_element("id", "link").get_attribute("data-state") == "down", 15,
                       "the page noticing the gateway is gone")
            assert "unreachable" in driver.find_element("id", "link").text
            shown = int(shown_rows(driver)["fan-1"]["results"])
            # restarted on the same database and port: the page recovers by itself
            time.sleep(1.0)
            gw = GatewayProcess(tmp_path, *args, db=gw.db, name="gw2")
            wait_until(lambda: driver.find_element("id", "link").get_attribute("data-state") == "live", 40,
                       "the page back to live")
            wait_until(lambda: driver.find_element("id", "started").text != started, 10, "the new start time")
            wait_until(lambda: int(shown_rows(driver)["fan-1"]["results"]) > shown, 30, "results after the restart")
            # the only errors: polls of /status that failed while the gateway was down
            down = console_errors(driver)
            assert down and all(f"127.0.0.1:{http}/status - Failed to load resource: net::ERR_" in e for e in down), down
            time.sleep(2.5)
            assert console_errors(driver) == []
            # devices stop: the counters settle and every row equals /status; ports show down
            for d in devices:
                d.stop()
            wait_until(lambda: all(not p["connected"] for p in status(http)["ports"]), 20, "ports down")
            wait_until(lambda: shown_rows(driver) == expected_rows(status(http)), 15, "the page equal to /status")
            ports = {p["port"]: p for p in driver.execute_script(TABLE_JS, "ports")}
            assert set(ports) == {d.url for d in devices} and all(p["state"] == "down" for p in ports.values())
            alerts = driver.execute_script(TABLE_JS, "alerts")
            assert [(a["device"], a["rule"]) for a in alerts] == [(a["device"], a["rule"]) for a in status(http)["alerts"]]
            wait_until(lambda: driver.find_element("id", "outbox").text == str(status(http)["outbox"]) == "0", 15,
                       "the outbox drained, on the page too")
            # nothing but the gateway itself was ever asked for anything
            urls = requested_urls(driver)
            assert urls and outside_loopback(urls) == []
            assert all(u.startswith(f"http://127.0.0.1:{http}/") for u in urls if u.startswith("http")), urls
    finally:
        for d in devices:
            d.stop()
        if gw.proc.poll() is None:
            assert gw.stop() == 0


def test_dashboard_assets_and_headers(tmp_path: Path) -> None:
    """The page and its two assets come from the gateway with a strict policy; another Host is refused."""
    http = free_tcp_port()
    gw = GatewayProcess(tmp_path, [f"socket://127.0.0.1:{free_tcp_port()}"], "--http", f"127.0.0.1:{http}")
    try:
        wait_until(lambda: answers(http), 30, "the gateway's HTTP endpoint")
        for path, kind in (("/", "text/html"), ("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")):
            with urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=5) as r:
                assert r.headers["Content-Type"].startswith(kind)
                assert "default-src 'none'" in r.headers["Content-Security-Policy"]
                body = r.read().decode()
            assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")  # no outside URL at all
        forged = urllib.request.Request(f"http://127.0.0.1:{http}/status", headers={"Host": "attacker.example"})
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(forged, timeout=5)
        assert status(http)["devices"] == []
    finally:
        assert gw.stop() == 0


@pytest.mark.parametrize(("host", "ok"), [("127.0.0.1:8080", True), ("localhost", True), ("LOCALHOST:1", True),
                                          ("[::1]:8080", True), ("[::1]", True), ("attacker.example", False),
                                          ("127.0.0.1.attacker.example:80", False), ("", False)])
def test_only_loopback_host_headers_are_served(host: str, ok: bool) -> None:
    from tinyml.gateway.api import loopback_host

    head = f"GET /status HTTP/1.1\r\nAccept: */*\r\nHost: {host}\r\n\r\n".encode()
    assert loopback_host(head) is ok
    assert loopback_host(b"GET / HTTP/1.0\r\n\r\n") is False  # no Host header at all
