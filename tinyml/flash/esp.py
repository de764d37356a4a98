"""Flash ESP32-family boards through esptool's Python API (no subprocess).

Writes the regions an ESP-IDF build records in ``build/flasher_args.json`` (bootloader,
partition table, app) or one merged image, compressed unless asked otherwise; esptool
checks every region's MD5 after writing it. A failed automatic reset is answered with
the manual BOOT-button procedure, the commonest fix for "Failed to connect".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tinyml.errors import CheckFailed, DeviceError, InputError

BEFORE_MODES = ("default-reset", "usb-reset", "no-reset", "no-reset-no-sync")
AFTER_MODES = ("hard-reset", "soft-reset", "no-reset", "no-reset-stub", "watchdog-reset")
ROM_BAUD = 115200
STUB_GREETING_TIMEOUT = 3.0  # s; esptool alone waits for the started stub's "OHAI" without a limit
MANUAL_BOOT = ("put the chip in download mode by hand: hold BOOT (IO0), press and release EN/RESET, "
               "release BOOT, then rerun with --before no-reset")
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Region:
    offset: int
    path: Path


@dataclass(frozen=True)
class EspImage:
    """What to write where, plus the flash settings and chip the build recorded."""

    regions: tuple[Region, ...]
    chip: str | None = None
    flash_mode: str = "keep"
    flash_size: str = "keep"
    flash_freq: str = "keep"
    before: str | None = None   # the reset modes and stub use the build recorded, if any
    after: str | None = None
    stub: bool | None = None

    def end(self) -> int:
        return max(r.offset + r.path.stat().st_size for r in self.regions)


def _offset(text: str, where: str) -> int:
    try:
        return int(str(text), 0)
    except ValueError as exc:
        raise InputError(f"{where}: flash offset {text!r} is not a number",
                         hint="offsets look like 0x10000") from exc


def read_flasher_args(path: Path) -> EspImage:
    """Parse an ESP-IDF ``flasher_args.json``; file paths are relative to its folder."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["flash_files"]
        settings = data.get("flash_settings", {})
        extra = data.get("extra_esptool_args", {})
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a readable JSON file", hint="rebuild the ESP-IDF project") from exc
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path} has no flash_files table", hint="is this an ESP-IDF build's flasher_args.json?") from exc
    if not isinstance(files, dict) or not files:
        raise InputError(f"{path}: flash_files is empty", hint="rebuild the ESP-IDF project")
    if not all(isinstance(name, str) for name in files.values()):
        raise InputError(f"{path}: flash_files must map offsets to file names", hint="rebuild the ESP-IDF project")
    regions = sorted((Region(_offset(off, str(path)), path.parent / name) for off, name in files.items()),
                     key=lambda r: r.offset)
    image = EspImage(tuple(regions), chip=extra.get("chip"),
                     flash_mode=settings.get("flash_mode", "keep"),
                     flash_size=settings.get("flash_size", "keep"),
                     flash_freq=settings.get("flash_freq", "keep"),
                     before=_text_or_none(extra.get("before")), after=_text_or_none(extra.get("after")),
                     stub=extra.get("stub") if isinstance(extra.get("stub"), bool) else None)
    check_regions(image)
    return image


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def single_image(path: Path, offset: int) -> EspImage:
    """One binary (e.g. an ``esptool merge-bin`` image at 0x0) written at ``offset``."""
    image = EspImage((Region(offset, path),))
    check_regions(image)
    return image


def check_regions(image: EspImage) -> None:
    """Every region exists, is non-empty, sector aligned and does not overlap the next."""
    previous_end, previous = -1, None
    for region in image.regions:
        if not region.path.is_file():
            raise InputError(f"flash image {region.path} not found", hint="build the firmware first")
        size = region.path.stat().st_size
        if size == 0:
            raise InputError(f"flash image {region.path} is empty", hint="rebuild the firmware")
        if region.offset % 0x1000:
            raise InputError(f"{region.path.name} at {region.offset:#x} is not 4 KiB aligned",
                             hint="ESP flash is erased in 4 KiB sectors; fix the offset")
        if region.offset < previous_end:
            raise InputError(f"{region.path.name} at {region.offset:#x} overlaps {previous}",
                             hint="fix the offsets in flasher_args.json")
        previous_end, previous = region.offset + size, region.path.name


def normalise_mode(mode: str, allowed: tuple[str, ...], what: str) -> str:
    """ESP-IDF writes ``default_reset``; esptool 5 spells it ``default-reset``."""
    spelled = mode.replace("_", "-")
    if spelled not in allowed:
        raise InputError(f"unknown {what} mode {mode!r}", hint="use one of " + ", ".join(allowed))
    return spelled


@dataclass(frozen=True, kw_only=True)
class EspOptions:
    port: str
    chip: str
    baud: int = 460800
    before: str = "default-reset"
    after: str = "hard-reset"
    compress: bool = True
    stub: bool = True
    connect_attempts: int = 7


def _esptool_logger(progress: ProgressFn | None, lines: list[str]):
    """An esptool ``TemplateLogger`` that keeps its chatter and forwards progress."""
    from esptool.logger import TemplateLogger

    class Bridge(TemplateLogger):
        def __init__(self) -> None:
            self.label = ""  # the region being written, named from esptool's "Writing 'X' at A"

        def print(self, *args, **kwargs):
            text = " ".join(str(a) for a in args).strip()
            if text:
                lines.append(text)
                match = re.match(r"Writing '(.+)' at (0x[0-9a-f]+)", text)
                if match:
                    self.label = f"{Path(match.group(1)).name} @ {match.group(2)}"

        def note(self, message):
            self.print(f"note: {message}")

        def warning(self, message):
            self.print(f"warning: {message}")

        def error(self, message):
            self.print(f"error: {message}")

        def stage(self, finish=False):
            pass

        def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
            if progress is not None:
                progress(self.label or prefix.strip(), cur_iter, total_iters)

        def set_verbosity(self, verbosity):
            pass

    return Bridge()


@contextmanager
def _quiet_esptool(progress: ProgressFn | None, lines: list[str]) -> Iterator[None]:
    from esp_pylib.logger import EspLog
    from esptool.logger import log

    previous = EspLog.instance
    log.set_logger(_esptool_logger(progress, lines))
    try:
        yield
    finally:
        EspLog.instance = previous


def _fatal_text(exc: BaseException) -> str:
    text = str(exc).split("\nFor troubleshooting")[0]
    text = re.sub(r",? ?for troubleshooting steps visit: \S+", "", text, flags=re.IGNORECASE)
    return " ".join(text.split())


def flash_esp(image: EspImage, options: EspOptions, progress: ProgressFn | None = None) -> list[str]:
    """Connect, write every region (MD5-verified by esptool) and reset; returns esptool's log."""
    import serial
    from esptool.cmds import attach_flash, connect_esp, reset_chip, run_stub, write_flash
    from esptool.util import FatalError

    lines: list[str] = []
    before = normalise_mode(options.before, BEFORE_MODES, "--before")
    after = normalise_mode(options.after, AFTER_MODES, "--after")
    with _quiet_esptool(progress, lines):
        try:
            esp = connect_esp(port=options.port, chip=options.chip, initial_baud=min(ROM_BAUD, options.baud),
                              before=before, connect_attempts=options.connect_attempts)
        except (FatalError, serial.SerialException, OSError) as exc:
            text = _fatal_text(exc)
            hint = MANUAL_BOOT if before != "no-reset" or "Failed to connect" in text else "check --port"
            if "Wrong chip" in text:
                hint = "pick the --board that matches the chip on the port"
            raise DeviceError(f"cannot connect to the {options.chip} on {options.port}: {text}", hint=hint) from exc
        try:
            # A stub left running by an earlier session answers SYNC with 0: use it even under
            # --no-stub (nothing is uploaded), since it does not speak the ROM's argument formats.
            if options.stub or esp.sync_stub_detected:
                esp._port.timeout = STUB_GREETING_TIMEOUT  # commands set their own; this bounds the greeting
                try:
                    esp = run_stub(esp)
                except FatalError as exc:
                    raise DeviceError(f"uploading esptool's flasher stub failed: {_fatal_text(exc)}",
                                      hint="retry with --no-stub to flash through the ROM loader") from exc
            if options.baud > ROM_BAUD:
                esp.change_baud(options.baud)
            attach_flash(esp)
            write_flash(esp, [(r.offset, str(r.path)) for r in image.regions],
                        flash_freq=image.flash_freq, flash_mode=image.flash_mode, flash_size=image.flash_size,
                        compress=options.compress, no_compress=not options.compress)
            reset_chip(esp, after)
        except FatalError as exc:
            text = _fatal_text(exc)
            if "MD5" in text or "empty" in text:
                raise CheckFailed(f"flash verification failed on {options.port}: {text}",
                                  hint="the flash did not keep what was written; retry, then suspect "
                                       "the board's flash or power") from exc
            raise DeviceError(f"flashing over {options.port} failed: {text}",
                              hint="retry; lower --baud if it keeps failing") from exc
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"lost the serial port {options.port}: {_fatal_text(exc)}",
                              hint="check the cable and that nothing else uses the port") from exc
        finally:
            with suppress(OSError, AttributeError):
                esp._port.close()
    return lines
