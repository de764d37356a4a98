"""Turn one serial line's bytes into gateway records: pure, no I/O, one object per connection.

RESULT frames carry (seq, boot_id) but not the device id, which only HELLO gives. A
line therefore learns who is talking from HELLO (the gateway asks with HELLO_REQ when it
connects) and holds early results until then. Bad frames and debug text are counted and
skipped; the decoder resynchronises at the next 0x00, so garbage never stops a line.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tinyml.device import protocol
from tinyml.device.windows import RawWindow, WindowAssembler
from tinyml.errors import DeviceError
from tinyml.gateway.limits import IdBudget

MAX_PENDING = 1024  # results held per line while the device has not said HELLO
HELLO_RETRY_S = 2.0


@dataclass(frozen=True)
class Identified:
    """A HELLO: which device is on this port, running what, since which boot."""

    port: str
    device: str
    board: str
    fw_version: str
    model_hash: str
    boot_id: int
    at: float


@dataclass(frozen=True)
class ResultsRecord:
    """Consecutive results of one identified device from one read, in arrival order: one
    record per read rather than per result, so the writer looks the device up once."""

    port: str
    device: str
    results: list[protocol.Result]
    at: float


@dataclass(frozen=True)
class WindowRecord:
    """A complete raw window (SAMPLES) from an identified device: evidence the gateway asked for."""

    port: str
    device: str
    window: RawWindow
    at: float


@dataclass(frozen=True)
class HeartbeatRecord:
    port: str
    device: str
    heartbeat: protocol.Heartbeat
    at: float


@dataclass(frozen=True)
class LineCounts:
    """Frame counters of one read: good frames, bad frames, text lines, device ERRORs and
    results dropped because the device never identified itself."""

    port: str
    device: str | None
    frames: int
    bad_frames: int
    text_lines: int
    device_errors: int
    unidentified: int
    at: float


@dataclass(frozen=True)
class PortState:
    port: str
    connected: bool
    error: str | None
    at: float


@dataclass(frozen=True)
class Tick:
    """Time passes: lets time-based rules (device silent) fire."""

    at: float


@dataclass(frozen=True)
class Retention:
    at: float


Record = Identified | ResultsRecord | WindowRecord | HeartbeatRecord | LineCounts | PortState | Tick | Retention


def batch_size(records: list[Record]) -> int:
    """What a list of records weighs in a writer batch: each result counts, as does every other record."""
    return sum(len(r.results) if type(r) is ResultsRecord else 1 for r in records)


class LineState:
    """What one connected port has said so far. Create a new one on every (re)connect:
    another device may have been plugged in."""

    def __init__(self, port: str, budget: IdBudget | None = None):
        self.port = port
        self.budget = budget  # shared limits on device ids (tinyml/gateway/limits.py); None: no limits
        self.decoder = protocol.Decoder()
        self.device: str | None = None
        self.pending: deque[protocol.Result] = deque()
        self.hello_asked_at: float | None = None
        self.windows = WindowAssembler(port)

    def wants_hello(self, now: float) -> bool:
        """True when the gateway should (re)send HELLO_REQ: unidentified and not asked lately."""
        if self.device is not None:
            return False
        if self.hello_asked_at is not None and now - self.hello_asked_at < HELLO_RETRY_S:
            return False
        self.hello_asked_at = now
        return True

    def feed(self, data: bytes, now: float) -> list[Record]:
        out: list[Record] = []
        results: list[protocol.Result] | None = None  # the open run of results, if the last record is one
        frames = bad = text = errors = dropped = 0
        for event in self.decoder.feed(data):
            cls = type(event)
            if cls is protocol.Result and results is not None:  # the usual case, first
                frames += 1
                results.append(event)
                continue
            if cls is protocol.BadFrame:
                bad += 1
                continue
            if cls is protocol.Text:
                text += 1
                continue
            frames += 1
            results = None
            if cls is protocol.Hello:
                device = event.device_id or f"port:{self.port}"
                if self.budget is not None and not self.budget.admit(self.port, device, now):
                    continue  # refused: no new device state; the line keeps what it had
                self.device = device
                out.append(Identified(self.port, self.device, event.board, event.fw_version,
                                      event.model_hash.hex(), event.boot_id, now))
                if self.pending:
                    results = list(self.pending)
                    out.append(ResultsRecord(self.port, self.device, results, now))
                    self.pending.clear()
            elif cls is protocol.Result:
                if self.device is not None:
                    results = [event]
                    out.append(ResultsRecord(self.port, self.device, results, now))
                else:
                    if len(self.pending) == MAX_PENDING:
                        self.pending.popleft()
                        dropped += 1
                    self.pending.append(event)
            elif cls is protocol.Samples and self.device is not None:
                try:
                    window = self.windows.feed(event)
                except DeviceError:  # a cut or malformed window is dropped; the next one is read
                    window = None
                if window is not None:
                    out.append(WindowRecord(self.port, self.device, window, now))
            elif cls is protocol.Heartbeat and self.device is not None:
                out.append(HeartbeatRecord(self.port, self.device, event, now))
            elif cls is protocol.Error:
                errors += 1
        if frames or bad or text or errors or dropped:
            out.append(LineCounts(self.port, self.device, frames, bad, text, errors, dropped, now))
        return out
