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
