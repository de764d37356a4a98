"""`tinyml boards`, `tinyml firmware new` and `tinyml build`: parse, call the library, print."""

from __future__ import annotations

import json

import click

from tinyml.cli.outpath import OUT_DIR
from tinyml.firmware.boards import list_boards, load_board


def _kib(n: int) -> str:
    return f"{n / 1024:g} KiB" if n < 1024 * 1024 else f"{n / 1048576:g} MiB"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def boards(as_json: bool) -> None:
    """List the boards tinyml knows, their memory and what this machine can do with each."""
    rows = []
    for name in list_boards():
        board = load_board(name)
        missing = board.missing()
        rows.append({**board.to_json(), "here": {k: why is None for k, why in missing.items()},
                     "why_not": {k: why for k, why in missing.items() if why is not None}})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'board':<20} {'cpu':<14} {'flash':>9} {'ram':>9}  {'flash via':<9} build emulate flash  why not")
    for r in rows:
        here = r["here"]
        marks = "  ".join(f"{'yes' if here[k] else 'no':<5}" for k in ("build", "emulate", "flash"))
        reasons = "; ".join(f"{k}: {why}" for k, why in r["why_not"].items())
        click.echo(f"{r['name']:<20} {r['cpu']:<14} {_kib(r['flash_bytes']):>9} {_kib(r['ram_bytes']):>9}  "
                   f"{r['flash_method']:<9} {marks} {reasons}".rstrip())


@click.group()
def firmware() -> None:
    """Render firmware projects for a board."""


@firmware.command("new")
@click.option("--board", "board_name", required=True, help="Board name (see `tinyml boards`) or a board .toml.")
@click.option("--model", required=True, type=click.Path(), help="Run directory from `tinyml train`, or an int8 .tflite.")
@click.option("--out", required=True, type=OUT_DIR, help="Project directory to write.")
@click.option("--runtime", type=click.Choice(["native", "tflm"]), default="native", show_default=True,
              help="native: C from `tinyml codegen`; tflm: TensorFlow Lite Micro (ESP-IDF boards).")
@click.option("--target", default=None,
              help="Codegen kernels (portable, cortex-m4-dsp); default: the fastest that fits the board's flash.")
@click.option("--sensor", default=None, help="Sensor driver run mode reads (see docs/sensors.md), e.g. tmp105, replay.")
@click.option("--sensor-option", "sensor_options", multiple=True, metavar="KEY=VALUE",
              help="Sensor setting: bus, address, range, unit, channels, speedup (repeatable).")
@click.option("--device-id", default="", help="The id the device says in HELLO (default: the board name); "
                                              "`tinyml provision` gives it a key.")
def firmware_new(board_name: str, model: str, out: str, runtime: str, target: str | None, sensor: str | None,
                 sensor_options: tuple[str, ...], device_id: str) -> None:
    """Render a plain firmware project (Makefile or ESP-IDF) that runs MODEL on BOARD."""
    from tinyml.errors import InputError
    from tinyml.firmware.render import read_manifest, render_project
    from tinyml.firmware.sensors import parse_options
    from tinyml.rundir import int8_model

    if sensor_options and sensor is None:
        raise InputError("--sensor-option needs --sensor", "name the sensor, e.g. --sensor tmp105")
    board = load_board(board_name)
    path = render_project(board, int8_model(model), out, runtime, device_id, target=target, sensor=sensor,
                          sensor_options=parse_options(sensor_options))
    how = "idf.py build" if board.builder == "idf.py" else f"tinyml build {path}"
    manifest = read_manifest(path)
    kernels = f", {manifest['codegen_target']} kernels: {manifest['codegen_choice']}" if runtime == "native" else ""
    reads = ""
    if manifest.get("sensor"):
        s = manifest["sensor"]
        reads = f", run mode reads {s['name']} on {s['bus']} at {s['rate_hz']:g} Hz"
    click.echo(f"firmware project for {board.name} ({runtime}{kernels}{reads}) written to {path}; "
               f"build it with `{how}`")


@click.command()
@click.argument("project", type=click.Path())
@click.option("--keys", required=True, type=click.Path(), metavar="FILE",
              help="The gateway's device key store (created mode 600 if missing; `gateway run --keys FILE`).")
@click.option("--rotate", is_flag=True, help="Replace the device's key with a new one (the old one stops working).")
def provision(project: str, keys: str, rotate: bool) -> None:
    """Give PROJECT's device its own secret key: written into the project (mode 600) and into the key store."""
    from tinyml.firmware.provision import provision as run_provision

    done = run_provision(project, keys, rotate=rotate)
    what = "a new key" if done.new_key else "its existing key"
    click.echo(f"device {done.device_id}: {what} written to {done.header} (mode 600) and kept in {done.keys}"
               + ("; build/ removed (built before this key was written)" if done.removed_build else "")
               + f"; build it with `tinyml build {project}`")


@click.command()
@click.argument("project", type=click.Path())
@click.option("--flash-limit", type=int, default=None, help="Check against this many flash bytes instead of the board's.")
@click.option("--mode", type=click.Choice(("validate", "run")), default="validate", show_default=True,
              help="validate: serves the device protocol; run: reads the sensor (docs/sensors.md).")
@click.option("--json", "as_json", is_flag=True, help="Print the size report as JSON.")
def build(project: str, flash_limit: int | None, mode: str, as_json: bool) -> None:
    """Build a firmware project and report flash, static RAM, arena and stack against the board."""
    from tinyml.firmware.build import build_project

    report = build_project(project, flash_limit, mode=mode)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    click.echo(f"built {report.elf} for {report.board}")
    for line in report.lines():
        click.echo(f"  {line}")
