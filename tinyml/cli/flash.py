"""`tinyml flash` and `tinyml ports`: parse options, show progress, print results."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import click

from tinyml.cli.sign import PUBKEY_HELP
from tinyml.errors import InputError


class ProgressBars:
    """One tqdm bar per flashed region, created when its label first shows up."""

    def __init__(self) -> None:
        self._bar = None
        self._label: str | None = None

    def __call__(self, label: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if label != self._label:
            self.close()
            self._label = label
            self._bar = tqdm(total=total, desc=label, unit="B", unit_scale=True, leave=True,
                             file=click.get_text_stream("stderr"))
        self._bar.total = total
        self._bar.n = min(done, total)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def parse_address(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError as exc:
        raise InputError(f"--address {text!r} is not a number", hint="write e.g. 0x10000") from exc


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


@click.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--board", "board_name", required=True, help="Board name (see `tinyml boards`) or .toml path.")
@click.option("--port", default=None, help="Serial port for esptool boards; 'auto' (default) picks the only match.")
@click.option("--baud", type=click.IntRange(300, 10_000_000), default=None, help="esptool transfer baud (default: the board's).")
@click.option("--before", default=None, help="esptool reset before: default-reset, usb-reset, no-reset, ...")
@click.option("--after", default=None, help="esptool reset after: hard-reset, soft-reset, no-reset, ...")
@click.option("--no-compress", is_flag=True, help="esptool: send uncompressed data.")
@click.option("--no-stub", is_flag=True, help="esptool: talk to the ROM loader, skip the flasher stub.")
@click.option("--address", default=None, help="Where a single raw .bin goes (esptool default 0x0, "
                                                "others the board's flash_origin).")
@click.option("--drive", type=click.Path(path_type=Path), default=None, help="UF2: the mounted drive folder.")
@click.option("--wait", "drive_wait", type=click.FloatRange(0, 3600), default=30.0, show_default=True,
              help="UF2: seconds to wait for the drive to appear and to go away.")
@click.option("--probe", default=None, help="pyOCD: unique id of the probe to use.")
@click.option("--tcp-port", type=click.IntRange(1, 65535), default=5555, show_default=True, help="Emulated boards: serial TCP port.")
@click.option("--run", "run_emulator", is_flag=True, help="Emulated boards: start the emulator too.")
@click.option("--connect-attempts", type=click.IntRange(1, 100), default=7, show_default=True,
              help="esptool: connection attempts before giving up.")
@click.option("--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path), help=PUBKEY_HELP)
@click.option("--allow-unsigned", is_flag=True, help="Flash even without a valid signature (warns).")
@click.option("-v", "--verbose", is_flag=True, help="Also print esptool's log.")
def flash(target: Path, board_name: str, port: str | None, baud: int | None, before: str | None,
          after: str | None, no_compress: bool, no_stub: bool, address: str | None, drive: Path | None,
          drive_wait: float, probe: str | None, tcp_port: int, run_emulator: bool, connect_attempts: int,
          pubkeys: tuple[Path, ...], allow_unsigned: bool, verbose: bool) -> None:
    """Flash TARGET (a built firmware folder or an image file) onto --board."""
    from tinyml.firmware.boards import load_board
    from tinyml.flash import FlashOptions
    from tinyml.flash import flash as do_flash

    board = load_board(board_name)
    options = FlashOptions(port=port, baud=baud, before=before, after=after, compress=not no_compress,
                           stub=not no_stub, address=parse_address(address), drive=drive, drive_wait=drive_wait,
                           probe=probe, tcp_port=tcp_port, connect_attempts=connect_attempts,
                           pubkeys=list(pubkeys), allow_unsigned=allow_unsigned)
    bars = ProgressBars()
    try:
        report = do_flash(target, board, options, progress=bars, echo=_echo_err)
    finally:
        bars.close()
    if report.method == "qemu":
        command = shlex.join(report.command)
        click.echo(f"{report.images[0]} is a valid image for {board.name}; emulator command:\n{command}")
        click.echo(f"then talk to it with: tinyml monitor --port socket://127.0.0.1:{tcp_port}")
        if run_emulator:
            raise SystemExit(subprocess.call(report.command))
        return
    if verbose:
        for line in report.lines:
            click.echo(line)
    if report.command:
        click.echo("ran: " + shlex.join(report.command))
    names = ", ".join(p.name for p in report.images)
    click.echo(f"flashed {names} onto {board.name} via {report.method}" +
               (" (every region MD5-verified)" if report.method == "esptool" else ""))


def _usability(device: str) -> str:
    """'' for a port we can open, else why not (busy and by whom, or no permission)."""
    from tinyml.errors import DeviceError
    from tinyml.flash.ports import check_port_usable

    try:
        check_port_usable(device)
    except DeviceError as exc:
        return f"  ({exc.one_line()})"
    return ""


@click.command()
@click.option("--board", "board_name", default=None, help="Also say which port `--port auto` would pick.")
def ports(board_name: str | None) -> None:
    """List serial ports with a board guess from their USB VID:PID."""
    from tinyml.flash import board_usb_ids
    from tinyml.flash import ports as port_info

    guesses = port_info.guess_ports(port_info.list_serial_ports(), board_usb_ids())
    if not guesses:
        click.echo("no serial ports found (is the board plugged in with a data cable?)")
    for guess in guesses:
        click.echo(guess.line() + _usability(guess.device))
    if board_name:
        from tinyml.firmware.boards import load_board

        board = load_board(board_name)
        click.echo(f"--port auto for {board.name}: {port_info.pick_port(guesses, board.name)}")
