"""`tinyml monitor` and `tinyml emulate`: follow a device, or pretend to be devices.

(`tinyml validate` lives in ``tinyml/cli/validate.py``.)
"""

from __future__ import annotations

import json
import math
import re
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import click

from tinyml.errors import InputError

DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*$")
SIZE = re.compile(r"^\s*([0-9]+)\s*(KB|MB|K|M|B)?\s*$", re.IGNORECASE)


def parse_seconds(text: str | None, option: str) -> float | None:
    """'30', '30s', '1.5m', '200ms' -> seconds."""
    if text is None:
        return None
    match = DURATION.match(text)
    if not match:
        raise InputError(f"{option} {text!r} is not a duration", hint="write seconds like 30, 30s, 2m or 500ms")
    factor = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * factor


def parse_size(text: str) -> int:
    match = SIZE.match(text)
    if not match:
        raise InputError(f"--flash-size {text!r} is not a size", hint="e.g. 4MB, 2MB or 4194304")
    unit = (match.group(2) or "B").upper().rstrip("B") or "B"
    return int(match.group(1)) * {"B": 1, "K": 1024, "M": 1024 * 1024}[unit]


@click.command()
@click.option("--port", required=True, help="Serial port, pty path or socket://HOST:PORT.")
@click.option("--baud", type=int, default=115200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")
@click.option("--count", type=int, default=0, show_default=True, help="Stop after N results (0: until Ctrl-C).")
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds without any data before giving up.")
@click.option("--model", type=click.Path(), help="Run directory whose model.json names the classes.")
@click.option("--reconnect", is_flag=True, help="Reopen the port when the device goes away (within --timeout).")
def monitor(port: str, baud: int, as_json: bool, count: int, timeout: float, model: str | None,
            reconnect: bool) -> None:
    """Print decoded device results from a serial port, live."""
    from tinyml.device.monitor import Monitor, format_record
    from tinyml.rundir import Labels, open_model

    def emit(record: dict) -> None:
        click.echo(json.dumps(record) if as_json else format_record(record))

    labels = Labels() if model is None else open_model(model, bare=False).labels
    mon = Monitor(port, baud, timeout, reconnect, labels)
    try:
        mon.run(emit, count)
    except KeyboardInterrupt:
        pass
    finally:
        summary = mon.summary.record()
        if as_json:
            click.echo(json.dumps(summary))
        click.echo(format_record(summary), err=True)


@click.command()
@click.option("--port", required=True, help="Serial port, pty path or socket://HOST:PORT of a replay-sensor device.")
@click.option("--model", required=True, type=click.Path(), help="Run directory the firmware was rendered from.")
@click.option("--data", required=True, type=click.Path(), help="Dataset whose windows to stream (.npz).")
@click.option("--split", default="test", show_default=True, help="train, val, test or all.")
@click.option("--limit", type=int, default=None,
              help="Replay at most N windows (class-stratified; the first N in data order for a run with state "
                   "across windows).")
@click.option("--baud", type=int, default=115200, show_default=True)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for each answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def replay(port: str, model: str, data: str, split: str, limit: int | None, baud: int, timeout: float,
           as_json: bool) -> None:
    """Stream recorded windows to a device's replay sensor; compare its outputs with the host's."""
    from tinyml.device.link import open_link
    from tinyml.device.replay import replay_dataset
    from tinyml.errors import CheckFailed
    from tinyml.rundir import int8_model

    info = int8_model(model)
    with open_link(port, baud, timeout, connect_timeout=10.0) as link:
        report = replay_dataset(link, info, data, split=None if split == "all" else split, limit=limit,
                                timeout=timeout)
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        click.echo(f"replayed {report.windows} windows ({report.sent_values} samples): {report.identical} device "
                   f"outputs identical to the host pipeline, {len(report.mismatched)} different")
    if report.mismatched:
        raise CheckFailed(f"{len(report.mismatched)} of {report.windows} replayed windows gave other output bytes "
                          f"than the host pipeline (first: window {report.mismatched[0]})",
                          "rebuild the firmware from this run with `tinyml firmware new --sensor replay`")


FAULT_HELP = "Faults apply to every device, or only to those given with --fault-device."


@click.command(epilog=FAULT_HELP)
@click.option("--model", type=click.Path(), help="int8 .tflite model or a run directory (model_int8.tflite).")
@click.option("--count", type=int, default=1, show_default=True, help="Number of emulated devices.")
@click.option("--tcp", "tcp_port", type=int, help="Device i listens on 127.0.0.1:PORT+i (0: any free ports).")
@click.option("--pty", is_flag=True, help="Give each device a pseudo-terminal; the paths are printed.")
@click.option("--rate", default="1", show_default=True, help="Results per second per device, or 'line' for line rate.")
@click.option("--baud", type=int, default=115200, show_default=True, help="Emulated line speed (caps the output).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--duration", help="Stop after this long (e.g. 60s); default: until Ctrl-C or an EXIT frame.")
@click.option("--garbage-every", type=int, default=0, help="Non-frame bytes after every Nth result.")
@click.option("--truncate-every", type=int, default=0, help="Cut every Nth result frame short.")
@click.option("--bad-crc-every", type=int, default=0, help="Corrupt the CRC of every Nth result frame.")
@click.option("--reboot-every", help="Reboot (new boot id, seq from 0) this often, e.g. 20s.")
@click.option("--silence-after", help="Go silent at this time ...")
@click.option("--silence-for", help="... for this long.")
@click.option("--disconnect-after", help="Drop the connection at this time ...")
@click.option("--disconnect-for", default="1s", show_default=True, help="... and come back after this long.")
@click.option("--fault-device", type=int, multiple=True, help="Device index the faults apply to (repeatable).")
@click.option("--drift-device", type=int, multiple=True, help="Device whose inputs drift (repeatable).")
@click.option("--drift-after", default="30s", show_default=True, help="When the drift starts.")
@click.option("--condition", help="What the emulated machine does (a class of its synthetic data, e.g. imbalance); "
                                  "default: healthy/normal. Needs a run directory.")
@click.option("--keys", type=click.Path(), metavar="FILE",
              help="Device key store (`tinyml provision`): devices emu-NNN with a key there authenticate.")
@click.option("--esp-rom", is_flag=True, help="Emulate an ESP32 ROM serial loader instead (for esptool).")
@click.option("--flash-size", default="4MB", show_default=True, help="--esp-rom: emulated flash size.")
@click.option("--save", type=click.Path(), help="--esp-rom: flash image file, loaded at start and kept up to date.")
@click.option("--rom-faults", help="--esp-rom: faults to inject, e.g. drop:2,corrupt.")
def emulate(model: str | None, count: int, tcp_port: int | None, pty: bool, rate: str, baud: int, seed: int,
            duration: str | None, garbage_every: int, truncate_every: int, bad_crc_every: int,
            reboot_every: str | None, silence_after: str | None, silence_for: str | None,
            disconnect_after: str | None, disconnect_for: str, fault_device: tuple[int, ...],
            drift_device: tuple[int, ...], drift_after: str, condition: str | None, keys: str | None, esp_rom: bool,
            flash_size: str,
            save: str | None, rom_faults: str | None) -> None:
    """Emulated devices (or an ESP32 ROM loader) on ptys or TCP ports."""
    if pty == (tcp_port is not None):
        raise InputError("give exactly one of --tcp PORT and --pty", hint="e.g. --tcp 7000")
    if esp_rom:
        from tinyml.device.esp_rom import serve

        stop = threading.Event()  # Ctrl-C (or SIGTERM) is how a user stops it: a flag, not an exception
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            serve(tcp_port, pty, parse_size(flash_size), Path(save) if save else None, rom_faults, click.echo,
                  stop=stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return
    if model is None:
        raise InputError("--model is required", hint="pass an int8 .tflite or a run directory (or use --esp-rom)")
    from tinyml.device.emulator import EmulatedFleet, Faults
    from tinyml.device.keystore import read_keys

    faults = Faults(garbage_every=garbage_every, truncate_every=truncate_every, bad_crc_every=bad_crc_every,
                    reboot_every=parse_seconds(reboot_every, "--reboot-every") or 0.0,
                    silence_after=parse_seconds(silence_after, "--silence-after") or 0.0,
                    silence_for=parse_seconds(silence_for, "--silence-for") or 0.0,
                    disconnect_after=parse_seconds(disconnect_after, "--disconnect-after") or 0.0,
                    disconnect_for=parse_seconds(disconnect_for, "--disconnect-for") or 0.0)
    targets = set(fault_device) if fault_device else set(range(count))
    drift_at = parse_seconds(drift_after, "--drift-after")
    for index in (*targets, *drift_device):
        if not 0 <= index < count:
            raise InputError(f"device index {index} does not exist", hint=f"use 0 to {count - 1} (--count {count})")
    schedule = {i: replace(faults if i in targets else Faults(), drift_after=drift_at if i in drift_device else None)
                for i in range(count)}
    per_second = math.inf if rate.strip().lower() == "line" else _float(rate, "--rate")
    stop_after = parse_seconds(duration, "--duration")
    exit_codes: list[int] = []
    done = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        fleet = EmulatedFleet(model, count=count, tcp_port=None if pty else tcp_port, pty=pty, rate=per_second,
                              baud=baud, faults=schedule, seed=seed, on_exit=exit_codes.append, announce=click.echo,
                              condition=condition, keys=None if keys is None else read_keys(Path(keys)))
        for device, address in zip(fleet.devices, fleet.endpoints, strict=True):
            click.echo(f"{device.device_id} {address}" + (" (authenticated)" if device.key else ""))
        with fleet:
            click.echo(f"emulating {count} device(s) at {rate} results/s; Ctrl-C stops", err=True)
            while not done.is_set() and not fleet.wait(0.1):
                if stop_after is not None and time.monotonic() - fleet.start_time >= stop_after:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    if exit_codes:  # an EXIT frame ends the emulator with its code, as on an emulated board
        click.get_current_context().exit(exit_codes[0])


def _float(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{option} {text!r} is not a number", hint="e.g. --rate 10 or --rate line") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{option} must be a finite number >= 0, got {text}", hint="e.g. --rate 10 or --rate line")
    return value
