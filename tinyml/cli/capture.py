"""`tinyml capture`: record labelled sensor windows from a device into a dataset file."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from tinyml.cli.outpath import OUT_FILE
from tinyml.errors import InputError


@click.command()
@click.option("--port", required=True, help="Serial port, pty or socket://HOST:PORT of the device.")
@click.option("--label", required=True, help="Class name of everything captured now, e.g. healthy.")
@click.option("--out", "out", required=True, type=OUT_FILE,
              help="Dataset .npz to create or append to.")
@click.option("--seconds", type=float, help="Capture for this long ...")
@click.option("--windows", type=int, help="... or this many windows.")
@click.option("--csv", "csv_lines", is_flag=True,
              help="The device prints plain CSV lines (one sample per line) instead of tinyml frames.")
@click.option("--window", type=int, help="--csv: samples per window (default: the file's window).")
@click.option("--fs", type=float, help="--csv: sampling rate in Hz (default: measured from the line timing).")
@click.option("--channels", help="Channel names, comma-separated (default: x,y,z / temp / ch0..).")
@click.option("--kind", type=click.Choice(["vibration", "temperature", "generic"]),
              help="Data kind of a new file (default generic).")
@click.option("--baud", type=int, default=115200, show_default=True)
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Longest silence tolerated while waiting for samples (seconds).")
def capture(port: str, label: str, out: Path, seconds: float | None, windows: int | None, csv_lines: bool,
            window: int | None, fs: float | None, channels: str | None, kind: str | None, baud: int,
            timeout: float) -> None:
    """Capture labelled raw windows from a device (tinyml frames or plain CSV) into a dataset."""
    from tinyml.device import capture as cap
    from tinyml.device.link import open_link

    if not csv_lines and (window is not None or fs is not None):
        raise InputError("--window and --fs are for --csv devices", "a tinyml device says its window and rate itself")
    if timeout <= 0:
        raise InputError(f"--timeout must be positive, got {timeout}", "e.g. --timeout 10")
    names = [c.strip() for c in channels.split(",")] if channels else None
    req = cap.CaptureRequest(label, out, seconds, windows, timeout, names, kind)
    progress = _progress(label, windows)
    with open_link(port, baud, timeout=min(timeout, 5.0), connect_timeout=2.0) as link:
        if csv_lines:
            ds, got = cap.run_capture(lambda g, e: cap.collect_csv(link, req, g, e, window=window, fs=fs,
                                                                   progress=progress), req)
        else:
            ds, got = cap.run_capture(lambda g, e: cap.collect_protocol(link, req, g, e, progress), req)
    if sys.stdout.isatty():
        click.echo()
    rate = got.origins[0].fs
    skipped = f", {got.skipped_lines} non-sample line(s) skipped" if got.skipped_lines else ""
    click.echo(f"captured {got.n} window(s) of {ds.x.shape[1]} x {ds.x.shape[2]} at {rate:g} Hz from {got.device} "
               f"as {label!r}{skipped}; {out} now holds {ds.n} window(s) of {len(ds.classes)} class(es)")


def _progress(label: str, target: int | None):
    """A live count on a terminal; a plain line at most once a second otherwise."""
    tty = sys.stdout.isatty()
    last = [0.0]

    def show(got) -> None:
        text = f"{got.n}{f'/{target}' if target else ''} window(s) of {label!r} from {got.device}"
        if tty:
            click.echo(f"\r{text}", nl=False)
        elif time.monotonic() - last[0] >= 1.0 or got.n == target:
            last[0] = time.monotonic()
            click.echo(text)
    return show
