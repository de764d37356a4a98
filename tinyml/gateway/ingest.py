"""Turn one serial line's bytes into gateway records: pure, no I/O, one object per connection.

RESULT frames carry (seq, boot_id) but not the device id, which only HELLO gives. A
line therefore learns who is talking from HELLO (the gateway asks with HELLO_REQ when it
connects) and holds early results until then. A device id with a key must prove it: the line
answers its HELLO with AUTH_CHALLENGE and identifies the device only on a valid AUTH_HELLO,
then takes only AUTH_RESULTs of that boot with rising seq and a valid MAC (docs/protocol.md,
tinyml/gateway/identity.py). Bad frames and debug text are counted and skipped; the decoder
resynchronises at the next 0x00, so garbage never stops a line. What the line must send (HELLO_REQ,
AUTH_CHALLENGE) it queues in ``outgoing``; the reader writes it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tinyml.device import auth, protocol
from tinyml.device.windows import RawWindow, WindowAssembler
from tinyml.errors import DeviceError
from tinyml.gateway.clock import TIME_EVERY_S, DeviceClock
from tinyml.gateway.identity import Identity, Refused
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
    authenticated: bool = False


@dataclass(slots=True)
class ResultsRecord:
    """Consecutive results of one identified device from one read, in arrival order: one
    record per read rather than per result, so the writer looks the device up once. Like
    ``LineCounts`` it is made for every read, so it is a plain slots class (a frozen
    dataclass sets each field through ``object.__setattr__``); nothing changes it."""

    port: str
    device: str
    results: list[protocol.RawResult | protocol.Result]  # RESULTs raw (output as bytes), AUTH_RESULTs whole
    at: float
    authenticated: bool = False


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


@dataclass(slots=True)
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
    refused: int = 0  # results and claims refused (identity, docs/security.md)


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


Record = (Identified | ResultsRecord | WindowRecord | HeartbeatRecord | LineCounts | PortState | Tick | Retention
          | Refused)


def batch_size(records: list[Record]) -> int:
    """What a list of records weighs in a writer batch: each result counts, as does every other record."""
    return sum(len(r.results) if type(r) is ResultsRecord else 1 for r in records)


class LineState:
    """What one connected port has said so far. Create a new one on every (re)connect:
    another device may have been plugged in."""

    def __init__(self, port: str, budget: IdBudget | None = None, identity: Identity | None = None,
                 clock: DeviceClock | None = None):
        self.port = port
        self.budget = budget  # shared limits on device ids (tinyml/gateway/limits.py); None: no limits
        self.identity = identity if identity is not None else Identity()  # keys, policy, bindings (shared)
        self.decoder = protocol.Decoder(raw_results=True)  # the output is stored and forwarded, never read
        self.device: str | None = None
        self.authenticated = False  # the device proved its key for boot ``session_boot``
        self.session_boot: int | None = None
        self.session_seq: int | None = None  # the last seq accepted in the session
        self.claim: protocol.Hello | None = None  # a keyed device's HELLO, waiting for its AUTH_HELLO
        self.nonce: bytes | None = None  # the challenge sent for ``claim``
        self.proof: protocol.AuthHello | None = None  # the AUTH_HELLO that established the session
        self.pending: deque[protocol.RawResult | protocol.AuthResult] = deque()
        self.hello_asked_at: float | None = None
        self.outgoing = bytearray()  # frames for the device (HELLO_REQ, AUTH_CHALLENGE)
        self.windows = WindowAssembler(port)
        self.clock = clock  # TIME to the device when it identifies and every TIME_EVERY_S (clock.py); None: never
        self.time_sent_at = 0.0

    def wants_hello(self, now: float) -> bool:
        """True when the gateway should (re)ask: unidentified and not asked lately. Queues HELLO_REQ,
        or AUTH_CHALLENGE again (same nonce) while a keyed device's proof is outstanding."""
        if self.device is not None and self.claim is None:
            return False
        if self.hello_asked_at is not None and now - self.hello_asked_at < HELLO_RETRY_S:
            return False
        self.hello_asked_at = now
        if self.claim is not None and self.nonce is not None:
            self.outgoing += protocol.encode(protocol.AuthChallenge(self.nonce))
        else:
            self.outgoing += protocol.encode(protocol.HelloReq())
        return True

    def take_outgoing(self) -> bytes:
        out = bytes(self.outgoing)
        self.outgoing.clear()
        return out

    def feed(self, data: bytes, now: float) -> list[Record]:
        out: list[Record] = []
        results: list[protocol.RawResult | protocol.Result] | None = None  # the open run of results, if any
        fast = self._unchecked()
        frames = bad = text = errors = dropped = refused = 0
        for event in self.decoder.feed(data):
            cls = type(event)
            if cls is fast and results is not None:  # the usual case, first
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
            if cls is protocol.RawResult or cls is protocol.AuthResult:
                verdict = self._result(event)
                if verdict is None:
                    if results is None:
                        results = []
                        out.append(ResultsRecord(self.port, self.device, results, now, self.authenticated))
                    results.append(event)
                elif verdict == "pending":
                    if len(self.pending) == MAX_PENDING:
                        self.pending.popleft()
                        dropped += 1
                    self.pending.append(event)
                else:
                    refused += 1
                    self._refuse(self.claimed() or "", verdict, now, out)
                continue
            results = None
            if cls is protocol.Hello or cls is protocol.AuthHello:
                before = len(out)
                refused += self._hello(event, now, out)
                fast = self._unchecked()
                if self.device is not None and len(out) > before and type(out[-1]) is Identified:
                    refused += self._release_pending(now, out)
            elif cls is protocol.Samples and self.device is not None and self.claim is None:
                try:
                    window = self.windows.feed(event)
                except DeviceError:  # a cut or malformed window is dropped; the next one is read
                    window = None
                if window is not None:
                    out.append(WindowRecord(self.port, self.device, window, now))
            elif cls is protocol.Heartbeat and self.device is not None and self.claim is None:
                out.append(HeartbeatRecord(self.port, self.device, event, now))
            elif cls is protocol.Error:
                errors += 1
        if self.clock is not None and self.device is not None and now - self.time_sent_at >= TIME_EVERY_S:
            self.send_time(now)
        if frames or bad or text or errors or dropped or refused:
            out.append(LineCounts(self.port, self.device, frames, bad, text, errors, dropped, now, refused))
        return out

    def _unchecked(self) -> type | None:
        """The result type stored without a check (the hot path): plain RESULTs of an identified,
        unauthenticated session; None while every result needs ``_result``."""
        return protocol.RawResult if self.device is not None and not self.authenticated and self.claim is None else None

    def claimed(self) -> str | None:
        """The device id this line speaks for, or claims to."""
        if self.claim is not None:
            return self.claim.device_id or f"port:{self.port}"
        return self.device

    def _refuse(self, device: str, reason: str, now: float, out: list[Record]) -> None:
        record = self.identity.refuse(self.port, device, reason, now)
        if record is not None:
            out.append(record)

    def _result(self, r: protocol.RawResult | protocol.AuthResult) -> str | None:
        """None: store it; "pending": hold it until the device is identified; else why it is refused."""
        if self.claim is not None:  # a keyed device's proof is outstanding
            if type(r) is protocol.AuthResult:
                return "pending"
            return "unauthenticated result for a device id known with a key"
        if self.device is None:
            return "pending"
        if not self.authenticated:
            return None  # an unauthenticated session (policy optional, no key): stored and marked so
        if type(r) is not protocol.AuthResult:
            return "unauthenticated result for a device id known with a key"
        if r.boot_id != self.session_boot:
            return "authenticated result of another boot (replay)"
        if self.session_seq is not None and r.seq <= self.session_seq:
            return "authenticated result with a seq at or below the session's last (replay or rewind)"
        key = self.identity.key(self.device)
        if key is None or not auth.verify(key, r):
            return "authenticated result with a wrong MAC"
        self.session_seq = r.seq
        return None

    def _hello(self, hello: protocol.Hello, now: float, out: list[Record]) -> int:
        """Handle HELLO or AUTH_HELLO; returns the number of refusals (0 or 1)."""
        device = hello.device_id or f"port:{self.port}"
        identity = self.identity
        key = identity.key(device)
        proven = False
        if key is not None:
            if hello == self.proof and self.claim is None:
                return 0  # the same proof again (a challenge sent twice was answered twice): nothing new
            if type(hello) is protocol.Hello:  # a claim: challenge it, trust nothing until proven
                if self.claim is None or self.claim.device_id != hello.device_id or self.claim.boot_id != hello.boot_id:
                    self.nonce = auth.new_nonce()
                self.claim = hello
                self.hello_asked_at = now
                self.outgoing += protocol.encode(protocol.AuthChallenge(self.nonce))
                return 0
            if self.nonce is None or hello.nonce != self.nonce or not auth.verify(key, hello):
                self._refuse(device, "AUTH_HELLO does not verify (wrong key, or a replayed or stale challenge)",
                             now, out)
                return 1
            proven = True
        elif identity.required(self.port):
            self._refuse(device, "no key for this device id and this port requires authentication", now, out)
            self._forget_claim()
            return 1
        holder = identity.holder(device, self.port)
        if holder is not None and not proven:
            self._refuse(device, f"already connected on port {holder}", now, out)
            self._forget_claim()
            return 1
        if self.budget is not None and not self.budget.admit(self.port, device, now):
            return 0  # refused by the id limits (counted and logged there): no new device state
        identity.bind(device, self.port)
        self.claim, self.nonce = None, None
        self.proof = hello if proven else None
        self.device, self.authenticated = device, proven
        self.session_boot, self.session_seq = (hello.boot_id, None) if proven else (None, None)
        out.append(Identified(self.port, device, hello.board, hello.fw_version, hello.model_hash.hex(),
                              hello.boot_id, now, proven))
        if self.clock is not None:
            self.send_time(now)  # a device that (re)booted counts its slots from boot until it gets TIME
        return 0

    def send_time(self, now: float) -> None:
        """Queue TIME (the data's clock now) for the device."""
        assert self.clock is not None
        self.outgoing += self.clock.frame(now)
        self.time_sent_at = now

    def _forget_claim(self) -> None:
        self.claim = self.nonce = None
        self.device, self.authenticated = None, False

    def _release_pending(self, now: float, out: list[Record]) -> int:
        """The results held before the device was identified, judged now; returns the refusals."""
        held = list(self.pending)
        self.pending.clear()
        results: list[protocol.RawResult | protocol.Result] = []
        refused = 0
        for r in held:
            verdict = self._result(r)
            if verdict is None:
                results.append(r)
            elif verdict != "pending":
                refused += 1
                self._refuse(self.device or "", verdict, now, out)
        if results:
            out.append(ResultsRecord(self.port, self.device or "", results, now, self.authenticated))
        return refused
