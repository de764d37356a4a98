"""`tinyml capture`: raw sensor windows from a device into a dataset file.

Two sources, like Edge Impulse's data forwarder:
- a tinyml device (firmware in run mode, or `tinyml emulate` of a run directory): CAPTURE
  mode 1 asks it to stream its windows as SAMPLES frames (docs/protocol.md), each window with
  its boot id, window number, rate and sensor;
- any device that prints plain CSV lines (one sample per line, one value per channel); the
  rate is given with ``fs`` or measured from the arrival times.

Windows are collected in memory and appended to the dataset in one atomic write at the end
(tinyml/data/capture.py). When the stream breaks (cut mid-window, rate change, silence), the
complete windows before the break are saved and the error says so; the partial window never is.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyml.data.capture import WindowOrigin, append_windows, check_compatible, same_rate
from tinyml.data.dataset import Dataset, load
from tinyml.device import protocol as p
from tinyml.device.link import Link
from tinyml.device.windows import RawWindow, WindowAssembler
from tinyml.errors import DeviceError, InputError, TinymlError

CSV_SPLIT = re.compile(r"[,;\s]+")
RATE_JITTER = 0.25  # measured CSV rate: a window this far from the running rate means the rate changed
MEASURED_MATCH = 0.05  # a measured rate this close to the file's rate is taken as the file's rate


@dataclass(frozen=True)
class CaptureRequest:
    label: str
    out: Path
    seconds: float | None = None
    windows: int | None = None
    timeout: float = 10.0  # longest silence tolerated while waiting for samples
    channels: list[str] | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.windows is None):
            raise InputError("give exactly one of --seconds and --windows", "e.g. --windows 50")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise InputError(f"--seconds must be positive, got {self.seconds}", "e.g. --seconds 30")
        if self.windows is not None and not 1 <= self.windows <= 65535:
            raise InputError(f"--windows must be between 1 and 65535, got {self.windows}", "e.g. --windows 50")
        if not self.label or not self.label.strip():
            raise InputError("--label must not be empty", "name the class, e.g. --label healthy")


@dataclass
class Captured:
    """What a session collected: complete windows and where each came from."""

    windows: list[np.ndarray] = field(default_factory=list)
    origins: list[WindowOrigin] = field(default_factory=list)
    device: str = ""
    skipped_lines: int = 0

    @property
    def n(self) -> int:
        return len(self.windows)


Progress = Callable[[Captured], None]


def _existing(req: CaptureRequest) -> Dataset | None:
    """The dataset to append to, read before capturing so a bad file fails at once."""
    return load(req.out) if req.out.exists() else None


def _session(req: CaptureRequest, device: str) -> str:
    return f"{req.label}-{device}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"


def save(req: CaptureRequest, got: Captured, existing: Dataset | None) -> Dataset:
    return append_windows(req.out, np.stack(got.windows), got.origins, label=req.label,
                          session=_session(req, got.device), channels=req.channels, kind=req.kind, existing=existing)


def run_capture(collect: Callable[[Captured, Dataset | None], None], req: CaptureRequest) -> tuple[Dataset, Captured]:
    """Collect windows, then append them; a break mid-way saves what was complete and re-raises."""
    existing = _existing(req)
    got = Captured()
    try:
        collect(got, existing)
    except TinymlError as exc:
        if not got.n:
            raise
        save(req, got, existing)
        raise type(exc)(f"{exc.message}; the {got.n} complete window(s) before it were saved to {req.out}",
                        exc.hint) from None
    except KeyboardInterrupt:
        if not got.n:
            raise
    return save(req, got, existing), got


# ---- tinyml devices: SAMPLES frames ---------------------------------------------------------------

def collect_protocol(link: Link, req: CaptureRequest, got: Captured, existing: Dataset | None,
                     progress: Progress) -> None:
    """Ask the device to stream windows, reassemble them until enough, then stop the stream."""
    hello = link.request(p.HelloReq(), p.Hello)
    assert isinstance(hello, p.Hello)
    got.device = hello.device_id or f"port:{link.name}"
    try:
        link.request(p.Capture(p.CAPTURE_STREAM, req.windows or 0), p.Ack,
                     match=lambda m: isinstance(m, p.Ack) and m.for_type == p.Capture.TYPE)
    except DeviceError as exc:
        raise DeviceError(f"{got.device} cannot stream samples: {exc.message}",
                          "flash run-mode firmware with a sensor (make MODE=run), or emulate "
                          "a training run directory") from None
    try:
        _receive_windows(link, req, got, existing, hello.boot_id, progress)
    finally:
        with contextlib.suppress(DeviceError):
            link.send(p.Capture(p.CAPTURE_STOP, 0))


def _receive_windows(link: Link, req: CaptureRequest, got: Captured, existing: Dataset | None, boot_id: int,
                     progress: Progress) -> None:
    assembler = WindowAssembler(got.device)
    deadline = None if req.seconds is None else time.monotonic() + req.seconds
    first: RawWindow | None = None
    while req.windows is None or got.n < req.windows:
        now = time.monotonic()
        if deadline is not None and now >= deadline and not assembler.pending:
            return
        wait = req.timeout if deadline is None or assembler.pending else min(req.timeout, deadline - now)
        msg = link.recv(max(wait, 0.01))
        if msg is None:
            if deadline is not None and time.monotonic() >= deadline and not assembler.pending:
                return
            assembler.close()
            raise DeviceError(f"no samples from {got.device} for {req.timeout:g} s",
                              "check that the device reads its sensor (run mode), or raise --timeout for slow sensors")
        if isinstance(msg, p.Hello) and msg.boot_id != boot_id:
            assembler.close()
            raise DeviceError(f"{got.device} rebooted during the capture", "check its power supply, then capture again")
        if not isinstance(msg, p.Samples):
            continue
        raw = assembler.feed(msg)
        if raw is None:
            continue
        if first is None:
            first = raw
            if existing is not None:
                check_compatible(existing, fs=raw.fs, samples=raw.values.shape[0], channels=raw.values.shape[1],
                                 path=req.out, channel_names=req.channels)
        elif not same_rate(raw.fs, first.fs) or raw.layout[1:] != first.layout[1:]:
            raise DeviceError(f"{got.device} changed its stream from {first.fs:g} Hz x {first.values.shape[0]} "
                              f"samples x {first.values.shape[1]} channels to {raw.fs:g} Hz x {raw.values.shape[0]} x "
                              f"{raw.values.shape[1]} mid-capture", "one dataset file holds one rate and layout; "
                              "capture the new stream into another --out file")
        got.windows.append(raw.values)
        got.origins.append(WindowOrigin(got.device, raw.boot_id, raw.window, time.time(), raw.sensor, raw.fs,
                                        "protocol"))
        progress(got)


# ---- plain CSV lines --------------------------------------------------------------------------------

def parse_csv_line(line: str) -> list[float] | None:
    """The numbers of one line, or None for a line that is not all numbers (a header, a log line)."""
    parts = [x for x in CSV_SPLIT.split(line.strip()) if x]
    if not parts:
        return None
    try:
        values = [float(x) for x in parts]
    except ValueError:
        return None
    return values if all(math.isfinite(v) for v in values) else None


def collect_csv(link: Link, req: CaptureRequest, got: Captured, existing: Dataset | None, *, window: int | None,
                fs: float | None, progress: Progress) -> None:
    """Cut the device's CSV lines into windows of ``window`` samples; the rate is ``fs`` or measured."""
    window = window or (existing.x.shape[1] if existing is not None else None)
    if not window or window < 2:
        raise InputError("CSV capture needs the window length", "pass --window SAMPLES (e.g. --window 128)")
    if fs is not None and not (math.isfinite(fs) and fs > 0):
        raise InputError(f"--fs must be a positive rate in Hz, got {fs}", "e.g. --fs 100, or leave it out to measure")
    got.device = f"csv:{link.name}"
    try:
        _receive_csv(link, req, got, existing, window, fs, progress)
    finally:  # on a break too: the complete windows are saved with one rate
        if fs is None and got.origins:
            _settle_measured_rate(got, existing)


def _receive_csv(link: Link, req: CaptureRequest, got: Captured, existing: Dataset | None, window: int,
                 fs: float | None, progress: Progress) -> None:
    deadline = None if req.seconds is None else time.monotonic() + req.seconds
    rows: list[list[float]] = []
    times: list[float] = []
    width: int | None = None
    first_line = True
    running_rate: float | None = None
    while req.windows is None or got.n < req.windows:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            if rows:
                raise DeviceError(f"the CSV stream ended mid-window: {len(rows)} of {window} lines at the end of "
                                  f"--seconds", "the partial window is dropped; use --windows N for exact counts")
            return
        wait = req.timeout if deadline is None else min(req.timeout, deadline - now)
        event = link.recv_event(max(wait, 0.01))
        if event is None:
            if deadline is not None and time.monotonic() >= deadline and not rows:
                return
            what = f"mid-window ({len(rows)} of {window} lines)" if rows else "between windows"
            raise DeviceError(f"the CSV stream from {link.name} stopped {what}: no line for {req.timeout:g} s",
                              "check that the device prints one line of values per sample, or raise --timeout")
        if not isinstance(event, p.Text):
            continue
        values = parse_csv_line(event.line)
        if first_line:  # connecting mid-line gives a partial first line
            first_line = False
            continue
        if values is None or (width is not None and len(values) != width):
            got.skipped_lines += 1
            continue
        if width is None:
            width = len(values)
            if existing is not None:
                check_compatible(existing, fs=existing.fs if fs is None else fs, samples=window, channels=width,
                                 path=req.out, channel_names=req.channels)
        rows.append(values)
        times.append(time.monotonic())
        if len(rows) < window:
            continue
        rate = fs if fs is not None else _measured_rate(times)
        if fs is None and running_rate is not None and abs(rate - running_rate) > RATE_JITTER * running_rate:
            raise DeviceError(f"the CSV stream changed its rate from about {running_rate:.3g} Hz to {rate:.3g} Hz",
                              "one dataset file holds one rate: fix the device's sampling, or pass --fs")
        running_rate = rate if running_rate is None else running_rate
        got.windows.append(np.array(rows, np.float32))
        got.origins.append(WindowOrigin(got.device, None, got.n, time.time(), "csv", rate, "csv"))
        rows, times = [], []
        progress(got)


def _measured_rate(times: list[float]) -> float:
    span = times[-1] - times[0]
    if span <= 0:
        raise DeviceError("the CSV lines arrive too fast to measure their rate", "pass --fs HZ")
    return (len(times) - 1) / span


def _settle_measured_rate(got: Captured, existing: Dataset | None) -> None:
    """One rate for the session: the file's when the measurement agrees with it, else the median
    measurement to 3 significant digits."""
    median = float(np.median([o.fs for o in got.origins]))
    if existing is not None and abs(median - existing.fs) <= MEASURED_MATCH * existing.fs:
        rate = existing.fs
    else:
        rate = float(f"{median:.3g}")
    got.origins = [WindowOrigin(o.device, o.boot_id, o.window, o.time, o.sensor, rate, o.source) for o in got.origins]
