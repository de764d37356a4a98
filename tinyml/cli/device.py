"""`tinyml monitor` and `tinyml emulate`: talk to devices, or pretend to be them.

(`tinyml validate` lives in ``tinyml/cli/validate.py``.)
"""

from __future__ import annotations

import click


@click.command()
@click.option("--port", required=True, help="Serial port, pty path or socket://HOST:PORT.")
def monitor(port: str) -> None:
    """Print decoded device results from a serial port."""
    raise click.UsageError("monitor is not implemented yet")


@click.command()
@click.option("--model", help="int8 .tflite model or a run directory.")
def emulate(model: str | None) -> None:
    """Emulated devices (or an ESP32 ROM loader) on ptys/TCP."""
    raise click.UsageError("emulate is not implemented yet")
