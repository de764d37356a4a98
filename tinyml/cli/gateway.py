"""`tinyml gateway`: run the aggregator, or show what it has stored."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import click

from tinyml.cli.outpath import OUT_FILE


@click.group()
def gateway() -> None:
    """Collect, store, analyse and forward device results."""


@gateway.command()
@click.option("--port", "ports", multiple=True, metavar="PORT",
              help="Serial device path or socket://HOST:PORT (repeatable).")
@click.option("--db", type=click.Path(path_type=Path), help="SQLite database (default gateway.db).")
@click.option("--mqtt", "mqtt_url", metavar="URL",
              help="Broker, mqtt://[user@]host:port or mqtts://...; password from $TINYML_MQTT_PASSWORD.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="gateway.toml.")
@click.option("--site", help="Site name used in MQTT topics tinyml/<site>/<device>/...")
@click.option("--http", metavar="127.0.0.1:PORT", help="Serve /status and /metrics on loopback.")
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path), metavar="RUN",
              help="Training run whose class names and threshold give results meaning (repeatable; matched by "
                   "model hash; one alone serves every device). Default: the model of ./tinyml.toml, if any.")
@click.option("--keys", type=click.Path(path_type=Path), metavar="FILE",
              help="Device key store (mode 600) written by `tinyml provision`; devices with a key must prove it.")
@click.option("--auth", type=click.Choice(["optional", "required"]),
              help="Every port: accept only authenticated devices (required), or also unauthenticated ones, "
                   "marked as such (optional, the default).")
@click.option("--shards", type=click.IntRange(0, 64), metavar="N",
              help="Read the ports in N processes feeding the one writer (default 0: in-process; [ingest] shards).")
@click.option("-v", "--verbose", is_flag=True, help="Log every committed batch.")
def run(ports: tuple[str, ...], db: Path | None, mqtt_url: str | None, config_path: Path | None,
        site: str | None, http: str | None, models: tuple[Path, ...], keys: Path | None, auth: str | None,
        shards: int | None, verbose: bool) -> None:
    """Read device ports, store results in SQLite, run alert and drift rules, forward to MQTT."""
    from tinyml.gateway.config import load, password_in_url_warning, project_model
    from tinyml.gateway.service import Gateway

    warning = password_in_url_warning(mqtt_url)
    if warning:
        click.echo(warning, err=True)

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    if not models and config_path is None:
        found = project_model(Path.cwd())
        if found is not None:
            logging.getLogger("tinyml.gateway").info("class names from %s (the model of ./tinyml.toml)", found)
            models = (found,)
    config = load(config_path, ports=ports, db=db, mqtt_url=mqtt_url, site=site, http=http, models=models,
                  keys=keys, auth=auth, shards=shards)
    asyncio.run(Gateway(config).run())


@gateway.command()
@click.option("--db", type=click.Path(path_type=Path), default=Path("gateway.db"), show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the full status as JSON.")
def status(db: Path, as_json: bool) -> None:
    """Devices, last seen, rates, alerts and outbox depth from a gateway database."""
    from tinyml.gateway.status import format_text, read

    snap = read(db)
    click.echo(json.dumps(snap, indent=1) if as_json else format_text(snap))


@gateway.command()
@click.option("--db", type=click.Path(path_type=Path), default=Path("gateway.db"), show_default=True)
@click.option("--out", "out", required=True, type=OUT_FILE, help="Dataset .npz to write.")
@click.option("--device", help="Only this device's windows.")
@click.option("--since", help="Only windows received since: unix seconds, an ISO time, or an age (30m, 2h, 7d).")
@click.option("--label", help="Label every window with this class (default: what the device's model said).")
@click.option("--append", is_flag=True, help="Append to the dataset at --out (e.g. the training data) instead of "
                                             "writing a new file.")
def export(db: Path, out: Path, device: str | None, since: str | None, label: str | None, append: bool) -> None:
    """Write the evidence windows stored after alerts as a dataset for `tinyml data` and `tinyml train`."""
    from tinyml.gateway.evidence import export as export_windows
    from tinyml.gateway.evidence import parse_since

    ds, n = export_windows(db, out, device=device, since=None if since is None else parse_since(since), label=label,
                           append=append)
    classes = ", ".join(f"{c} {int((ds.y == i).sum())}" for i, c in enumerate(ds.classes))
    click.echo(f"exported {n} evidence window(s) of {ds.x.shape[1]} x {ds.x.shape[2]} at {ds.fs:g} Hz to {out}, "
               f"which holds {ds.n} window(s): {classes}")
