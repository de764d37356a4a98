"""`tinyml fleet`: consume what gateways forward into one store, or show what it holds."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from tinyml.errors import InputError

DB_HELP = "SQLite file, or postgresql://user@host:port/db (password from PGPASSWORD or a passfile)."


def _mqtt(url: str, password_file: Path | None, topic_prefix: str):
    from tinyml.gateway.config import PASSWORD_ENV, parse_mqtt_url

    if urlsplit(url).password is not None:
        raise InputError("the --mqtt URL carries a password",
                         f"drop it from the URL; set ${PASSWORD_ENV} or pass --mqtt-password-file")
    options: dict[str, object] = {"topic_prefix": topic_prefix}
    if password_file is not None:
        try:
            options["password"] = password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise InputError(f"cannot read the MQTT password file {password_file}: {exc.strerror}",
                             "give a readable file holding only the password") from None
    return parse_mqtt_url(url, options)


@click.group()
def fleet() -> None:
    """Store what many gateways forward: MQTT shared subscriptions into SQLite or PostgreSQL."""


@fleet.command()
@click.option("--mqtt", "mqtt_url", required=True, metavar="URL",
              help="Broker, mqtt://[user@]host:port or mqtts://...; password from $TINYML_MQTT_PASSWORD.")
@click.option("--mqtt-password-file", type=click.Path(path_type=Path), help="File holding the MQTT password.")
@click.option("--db", default="fleet.db", show_default=True, help=DB_HELP)
@click.option("--http", metavar="127.0.0.1:PORT", help="Serve fleet-wide /status and /metrics on loopback.")
@click.option("--group", default="tinyml-fleet", show_default=True,
              help="Shared-subscription group: consumers of one group split the messages.")
@click.option("--client-id", default="", help="MQTT client id, stable across restarts (default fleet-GROUP-HOST); "
              "each consumer needs its own.")
@click.option("--topic-prefix", default="tinyml", show_default=True, help="The gateways' topic prefix.")
@click.option("-v", "--verbose", is_flag=True, help="Log every committed batch.")
def run(mqtt_url: str, mqtt_password_file: Path | None, db: str, http: str | None, group: str, client_id: str,
        topic_prefix: str, verbose: bool) -> None:
    """Subscribe (QoS 1, persistent session), store idempotently, acknowledge after commit."""
    from tinyml.fleet.consumer import Consumer, FleetConfig
    from tinyml.gateway.config import parse_http

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("asyncio", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = FleetConfig(mqtt=_mqtt(mqtt_url, mqtt_password_file, topic_prefix), db=db, group=group,
                         client_id=client_id, http=parse_http(http) if http else None)
    asyncio.run(Consumer(config).run())


@fleet.command()
@click.option("--db", default=os.environ.get("TINYML_FLEET_DB", "fleet.db"), show_default=True, help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the full status as JSON.")
def status(db: str, as_json: bool) -> None:
    """Sites, devices, rates, last class, open alerts, drift and rejected input from the store."""
    from tinyml.fleet.status import format_text, snapshot
    from tinyml.fleet.store import FleetStore, StoreUnavailable, redact

    try:
        store = FleetStore(db, readonly=True)
    except StoreUnavailable as exc:
        raise InputError(str(exc), f"is the database at {redact(db)} running?") from None
    try:
        snap = snapshot(store)
    finally:
        store.close()
    click.echo(json.dumps(snap, indent=1) if as_json else format_text(snap))
