"""`tinyml boards`, `tinyml firmware new` and `tinyml build`: parse, call the library, print."""

from __future__ import annotations

import json

import click

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
        rows.append({**board.to_json(), "here": board.capabilities()})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'board':<20} {'cpu':<14} {'flash':>9} {'ram':>9}  {'flash via':<9} build emulate flash")
    for r in rows:
        here = r["here"]
        marks = "  ".join(f"{'yes' if here[k] else 'no':<5}" for k in ("build", "emulate", "flash"))
        click.echo(f"{r['name']:<20} {r['cpu']:<14} {_kib(r['flash_bytes']):>9} {_kib(r['ram_bytes']):>9}  "
                   f"{r['flash_method']:<9} {marks}")
