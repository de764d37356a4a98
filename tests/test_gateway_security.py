"""Gateway findings of issue 16 (part 5): status ids unique per content, device ids that cannot
take the gateway's own topic, log lines devices cannot forge, and a warning for a password in argv."""

from __future__ import annotations

import json
import logging

from tests.conftest import run_cli
from tests.test_gateway_store import config, feed, hello, rows
from tinyml.gateway.config import password_in_url_warning
from tinyml.gateway.ingest import LineState
from tinyml.gateway.processor import Processor, topic_part
from tinyml.gateway.store import Store


def test_status_with_new_content_gets_a_new_id_and_a_republish_keeps_it(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    feed(proc, hello("dev", 7), line=LineState("p1"), now=1000.0)
    feed(proc, hello("dev", 7), line=LineState("p2"), now=1001.0)  # same boot, moved to another port
    statuses = [json.loads(p) for (p,) in rows(store, "SELECT payload FROM outbox WHERE topic LIKE '%status'")]
    assert [s["port"] for s in statuses] == ["p1", "p2"]
    ids = [s["id"] for s in statuses]
    assert len(set(ids)) == 2 and all(i.startswith("status/dev/00000007/") for i in ids)
    # a consumer deduplicating by id (docs/gateway.md) keeps both updates; the same content keeps its id
    from tinyml.gateway.processor import status_id
    assert status_id({k: v for k, v in statuses[0].items() if k != "id"}) == ids[0]
    store.close()


def test_device_ids_cannot_take_the_gateways_topic_level():
    reserved = ["_gateway", "/gateway", "+gateway", "\ngateway", "_", ""]
    parts = [topic_part(name) for name in reserved]
    assert "_gateway" not in parts and all(not p.startswith("_") or p.startswith("__") for p in parts)
    assert topic_part("gateway") == "gateway" and topic_part("fan-1") == "fan-1"
    assert len({topic_part(n) for n in ["_a", "__a", "a"]}) == 3


def test_a_device_named_gateway_publishes_under_its_own_topic(tmp_path):
    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    feed(proc, hello("_gateway", 1), line=LineState("p1"))
    topics = [t for (t,) in rows(store, "SELECT topic FROM outbox")]
    assert topics and all(not t.startswith("tinyml/lab/_gateway/") for t in topics)
    store.close()


def test_control_characters_in_device_text_cannot_forge_log_lines(caplog):
    import tinyml.gateway  # noqa: F401  (installs the filter)

    log = logging.getLogger("tinyml.gateway")
    with caplog.at_level(logging.INFO, logger="tinyml.gateway"):
        log.warning("evidence request to %s on %s failed: %s", "dev\n2026-01-01 INFO forged", "p1",
                    ValueError("bad\r\x1b[2Jline"))
    text = caplog.records[-1].getMessage()
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert "dev\\x0a2026-01-01 INFO forged" in text and "\\x1b[2J" in text


def test_password_in_mqtt_url_warns_and_points_to_the_environment():
    assert password_in_url_warning("mqtt://user@localhost:1883") is None
    warning = password_in_url_warning("mqtt://user:s3cret@localhost:1883")
    assert warning and "s3cret" not in warning and "$TINYML_MQTT_PASSWORD" in warning and "file" in warning


def test_gateway_cli_warns_about_a_password_on_the_command_line(tmp_path):
    proc = run_cli("gateway", "run", "--mqtt", "mqtt://u:s3cret@127.0.0.1:1", "--db", tmp_path / "g.db",
                   "--config", tmp_path / "missing.toml", timeout=60)
    assert "warning: the password in --mqtt" in proc.stderr and "TINYML_MQTT_PASSWORD" in proc.stderr
    assert "s3cret" not in proc.stderr


def test_a_hello_flood_creates_a_bounded_number_of_devices(tmp_path):
    from tinyml.gateway.limits import IdBudget, IdLimits

    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    budget = IdBudget(IdLimits(per_port=8, total=20, new_per_min=12))
    flood = b"".join(hello(f"fake-{i}", 1) for i in range(20_000))  # the audit's 20,000 HELLOs on one line
    feed(proc, flood, line=LineState("p1", budget))
    assert store.conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 8
    assert sum(budget.refused.values()) == 20_000 - 8
    # another port still gets its devices in, up to the rate limit of new ids per minute
    feed(proc, b"".join(hello(f"b-{i}", 1) for i in range(6)), line=LineState("p2", budget), now=1001.0)
    assert store.conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 12
    # a genuine device already known is admitted on its port, whatever the flood did
    line = LineState("p1", budget)
    feed(proc, hello("fake-3", 2), line=line, now=1002.0)
    assert line.device == "fake-3"
    # after a minute the rate allows new ids again, but the total cap holds
    for i in range(5):
        feed(proc, hello(f"c-{i}", 1), line=LineState(f"p{3 + i}", budget), now=1100.0 + i)
    assert len(budget.known) <= 20 and store.conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 17
    store.close()


def test_status_pages_its_devices_and_keeps_the_default_shape(tmp_path):
    from tinyml.gateway.api import route
    from tinyml.gateway.status import snapshot

    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    for i in range(5):
        feed(proc, hello(f"d{i}", 1), line=LineState(f"p{i}"))

    def snap(**page):
        return snapshot(store.conn, now=1001.0, **page)

    def get(path):
        head, _, body = route(path, snap).partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0].decode(), json.loads(body)

    status, whole = get("/status")
    assert status.endswith("200 OK") and [d["device"] for d in whole["devices"]] == [f"d{i}" for i in range(5)]
    assert {"at", "results", "outbox", "devices", "ports", "alerts", "recent_alerts"} <= set(whole)
    status, page = get("/status?limit=2&offset=2")
    assert [d["device"] for d in page["devices"]] == ["d2", "d3"] and page["devices_total"] == 5
    for bad in ("/status?limit=0", "/status?limit=x", "/status?offset=-1", "/status?limit=100000"):
        assert get(bad)[0].endswith("400 Bad Request")
    store.close()


def test_limits_are_read_from_gateway_toml(tmp_path):
    import pytest

    from tinyml.errors import InputError
    from tinyml.gateway.config import load

    cfg = tmp_path / "gateway.toml"
    cfg.write_text("[limits]\nper_port = 2\ntotal = 50\nnew_per_min = 5\n")
    limits = load(cfg, ports=("socket://127.0.0.1:1",)).limits
    assert (limits.per_port, limits.total, limits.new_per_min) == (2, 50, 5)
    cfg.write_text("[limits]\nper_port = 0\n")
    with pytest.raises(InputError, match="per_port must be at least 1"):
        load(cfg, ports=("socket://127.0.0.1:1",))


def test_status_text_escapes_control_characters_in_device_ids(tmp_path):
    from tinyml.gateway.status import format_text, snapshot

    store = Store(tmp_path / "g.db")
    proc = Processor(store, config())
    feed(proc, hello("evil\n  fake-device  seen 0s\x1b[2J", 1), line=LineState("p1"))
    text = format_text(snapshot(store.conn, now=1001.0))
    assert "\x1b" not in text and "evil\\x0a  fake-device" in text
    assert len([ln for ln in text.splitlines() if "fake-device" in ln]) == 1
    store.close()
