"""A fleet of emulated devices that speak the device protocol exactly as the firmware does.

Each device has its own id and serial endpoint (a TCP port on 127.0.0.1 or a pty), sends
HELLO when a host connects, RESULT frames at ``rate`` Hz and a HEARTBEAT every few seconds,
and answers HELLO_REQ, INPUT, INFER, OUTPUT_REQ, TIME and EXIT, so `tinyml monitor`, `tinyml
validate` and the gateway work against it as against a board. Faults can be scheduled per device: garbage
bytes, truncated frames, bad CRCs, reboots, silence, disconnects and input drift.

Like a UART without flow control, a device never waits for its listener: bytes nobody reads
(no client, or a full socket buffer) are dropped and counted, and output never exceeds the
line rate (``baud`` / 10 bytes per second). One thread serves the whole fleet with a
selector, and run-mode results come from pools computed at start (see ``emulated_model``),
so 64 devices at line rate fit on one core.

A device with a key (``keys``, from the key store `tinyml provision` writes) behaves as provisioned
firmware does: it answers AUTH_CHALLENGE with AUTH_HELLO and sends its run-mode results as
AUTH_RESULT (docs/protocol.md); the others answer AUTH_CHALLENGE with ERROR 2, as firmware
without a key does. ``Faults(impersonate=I)`` makes a device the audit's spoofer: it claims device
I's id and boot id, with sequence numbers ahead of I's, and has no key.

A run whose features keep state across windows (``daily_cycle``) is emulated as its run-mode firmware runs
it (tinyml_app.c): a window every training hop (a shorter hop slides it: the last window's newest samples,
then the hop's fresh ones, whole after a boot; after a longer one the window shares nothing with the last),
its slot of the day counted from boot until the host's first TIME, which
starts the state afresh, and from then on the slot of its start (``DayClock``).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml import __version__
from tinyml.data.features_series import DAY, DAY_MS, SeriesState, Stream, slot_ending
from tinyml.device import auth
from tinyml.device import protocol as p
from tinyml.device.background import BackgroundService
from tinyml.device.emulated_model import DeviceModel, Outcome
from tinyml.device.endpoints import listen_tcp, open_pty, socket_url
from tinyml.device.windows import window_chunks
from tinyml.errors import InputError
from tinyml.train.slope_guard import SlopeState

HEARTBEAT_S = 5.0
RING_WINDOWS = 16  # recent raw windows a device keeps for CAPTURE mode 2 (firmware: TINYML_CAPTURE_WINDOWS)
TICK_S = 0.005
LINE_RATE_BATCH = 1 << 20  # "as fast as the line allows": the line budget is the only limit


@dataclass(frozen=True, kw_only=True)
class Faults:
    """A device's fault schedule; times are seconds since the fleet started, counts are results."""

    garbage_every: int = 0          # after every Nth result, a burst of non-frame bytes
    truncate_every: int = 0         # every Nth result is cut short (that result is lost)
    bad_crc_every: int = 0          # every Nth result has a wrong CRC (that result is lost)
    reboot_every: float = 0.0       # reboot: new boot_id, seq restarts at 0, HELLO again
    silence_after: float = 0.0      # stop sending anything ...
    silence_for: float = 0.0        # ... for this long (the device hangs, then recovers)
    disconnect_after: float = 0.0   # drop the connection and the endpoint ...
    disconnect_for: float = 1.0     # ... for this long, then listen again (a pty gets a new path)
    drift_after: float | None = None  # from then on, inputs come from the drifted distribution
    impersonate: int | None = None  # claim this device's id and boot, with seqs ahead of its own (a spoofer)

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if value is not None and value < 0:
                raise InputError(f"{name} must be >= 0, got {value}", hint="0 disables the fault")


@dataclass
class DeviceStats:
    results: int = 0           # results produced (including ones lost to faults or no listener)
    bytes_sent: int = 0
    bytes_dropped: int = 0     # nobody listening, or the listener fell behind
    garbage: int = 0
    truncated: int = 0
    bad_crc: int = 0
    reboots: int = 0
    disconnects: int = 0
    rx_frames: int = 0
    rx_errors: int = 0
    connections: int = 0


class EmulatedDevice:
    """One device's protocol behaviour; the fleet gives it bytes and asks for due output."""

    def __init__(self, index: int, model: DeviceModel, rate: float, baud: int, faults: Faults,
                 seed: int, start: float, condition: str | None = None, key: bytes | None = None):
        self.index = index
        self.device_id = f"emu-{index:03d}"
        self.key = key  # signs AUTH_HELLO and run-mode AUTH_RESULTs when set
        self.victim: EmulatedDevice | None = None  # whom this device poses as (Faults.impersonate)
        self.model = model
        self.rate = rate
        self.line_bytes_per_s = baud / 10.0
        self.faults = faults
        self.rng = random.Random(seed * 1000 + index)
        self.np_rng = np.random.default_rng(seed * 1000 + index)
        self.condition = condition or default_condition(model)
        self.fleet_start = start
        self.stats = DeviceStats()
        self.decoder = p.Decoder()
        self.input = bytearray(model.input_bytes)
        self.exit_code: int | None = None
        self._boot(start)

    def _boot(self, now: float) -> None:
        self.boot_id = self.rng.getrandbits(32)
        self.boot_time = now
        self.seq = 0
        self.last_result: tuple[int, Outcome] | None = None  # what OUTPUT_REQ serves
        self.scheduled = 0  # results the rate asked for since boot (sent or skipped for a full line)
        self.next_heartbeat = now + HEARTBEAT_S
        self.line_budget = 0.0
        self.last_tick = now
        self.next_reboot = now + self.faults.reboot_every if self.faults.reboot_every else None
        # capture (docs/protocol.md, CAPTURE): the ring of recent raw windows and the stream state
        self.ring: deque[tuple[int, int, np.ndarray]] = deque(maxlen=RING_WINDOWS)
        self.streaming = False
        self.stream_left = 0  # windows still to stream; 0 = until stopped
        # state across windows (daily_cycle): as tinyml_app.c, slots counted from boot until the first TIME
        self.clock: DayClock | None = None
        self.series = None if self.model.series is None else SeriesState(self.model.series[0], self.model.sensor.channels)
        self.slope = None if self.model.slope is None else SlopeState(self.model.slope)  # its CUSUM, beside it
        self.next_slot = 0
        self.time_fresh = False
        self.slots_used: list[int] = []  # the slot of each stateful window since boot (what tests compare)
        self.last_window: np.ndarray | None = None  # a sliding device keeps its last window's newest samples

    # ---- messages ----
    def hello(self) -> p.Hello:
        m = self.model
        return p.Hello(1, "emulated", f"tinyml-emu {__version__}", self.claimed_id, m.model_hash,
                       m.arena_bytes, m.input_bytes, m.output_bytes, self.claimed_boot, p.LATENCY_US)

    @property
    def claimed_id(self) -> str:
        return self.victim.device_id if self.victim is not None else self.device_id

    @property
    def claimed_boot(self) -> int:
        return self.victim.boot_id if self.victim is not None else self.boot_id

    def _uptime_ms(self, now: float) -> int:
        return int((now - self.boot_time) * 1000) & 0xFFFFFFFF

    def _result(self, seq: int, outcome: Outcome, now: float) -> p.Result:
        """The RESULT frame (the output's head); the whole output stays for OUTPUT_REQ, as on a board."""
        self.last_result = (seq, outcome)
        return p.Result(seq, self.claimed_boot, self._uptime_ms(now), outcome.latency_us, p.LATENCY_US,
                        outcome.label, outcome.score, outcome.output[:p.MAX_OUTPUT])

    def greeting(self) -> bytes:
        """What a host sees on connecting: a boot line and HELLO."""
        return f"tinyml emulated device {self.claimed_id} boot {self.claimed_boot:08x}\n".encode() + p.encode(self.hello())

    # ---- host -> device ----
    def receive(self, data: bytes, now: float) -> bytes:
        """Answers to the host's frames in ``data``."""
        out = bytearray()
        before = self.decoder.bad_frames
        for event in self.decoder.feed(data):
            if isinstance(event, p.Text):
                continue
            if isinstance(event, p.BadFrame):
                # as the firmware: only an intact frame of an unknown type is final; a short
                # body ("bad length") may be a garbled frame the host should resend
                code = p.ERR_UNKNOWN_TYPE if event.reason == p.BAD_UNKNOWN_TYPE else p.ERR_BAD_FRAME
                out += p.encode(p.Error(code, f"bad frame: {event.reason}"))
                continue
            self.stats.rx_frames += 1
            out += self._answer(event, now)
        self.stats.rx_errors += self.decoder.bad_frames - before
        return bytes(out)

    def _answer(self, msg: p.Message, now: float) -> bytes:
        if isinstance(msg, p.HelloReq):
            return p.encode(self.hello())
        if isinstance(msg, p.AuthChallenge):
            if self.key is None:
                return p.encode(p.Error(p.ERR_UNKNOWN_TYPE, "unexpected message type"))
            return p.encode(auth.authenticated_hello(self.key, self.hello(), msg.nonce))
        if isinstance(msg, p.Input):
            end = msg.offset + len(msg.data)
            if end > len(self.input):
                return p.encode(p.Error(p.ERR_BAD_LENGTH, f"input ends at {end}, tensor has {len(self.input)} bytes"))
            self.input[msg.offset:end] = msg.data
            return p.encode(p.Ack(p.Input.TYPE, end))
        if isinstance(msg, p.Infer):
            self.stats.results += 1
            return p.encode(self._result(msg.seq, self.model.infer(bytes(self.input)), now))
        if isinstance(msg, p.OutputReq):
            return p.encode(self._output(msg))
        if isinstance(msg, p.Capture):
            return self._capture(msg)
        if isinstance(msg, p.Time):
            return p.encode(p.Ack(p.Time.TYPE, self._set_time(msg.seconds, now)))
        if isinstance(msg, p.Exit):
            self.exit_code = msg.code
            return b""
        return p.encode(p.Error(p.ERR_UNSUPPORTED, f"{p.type_name(msg)} is not a host command"))

    def _output(self, req: p.OutputReq) -> p.Output | p.Error:
        if self.last_result is None or self.last_result[0] != req.seq:
            return p.Error(p.ERR_UNSUPPORTED, "no output for this seq: the device keeps only its last result")
        output = self.last_result[1].output_bytes
        if req.offset >= len(output):
            return p.Error(p.ERR_BAD_LENGTH, f"offset {req.offset} outside the {len(output)}-byte output tensor")
        return p.Output(req.seq, req.offset, output[req.offset:req.offset + p.MAX_OUTPUT_CHUNK])

    def _capture(self, msg: p.Capture) -> bytes:
        if self.model.sensor is None:
            return p.encode(p.Error(p.ERR_UNSUPPORTED, "no sensor: emulate a training run directory to capture"))
        if msg.mode == p.CAPTURE_STOP:
            self.streaming = False
            return p.encode(p.Ack(p.Capture.TYPE, 0))
        if msg.mode == p.CAPTURE_STREAM:
            self.streaming, self.stream_left = True, msg.count
            return p.encode(p.Ack(p.Capture.TYPE, 0))
        if msg.mode == p.CAPTURE_RECENT:
            recent = list(self.ring)[-msg.count:] if msg.count else list(self.ring)
            return p.encode(p.Ack(p.Capture.TYPE, len(recent))) + b"".join(
                self._samples(window, ts, values) for window, ts, values in recent)
        return p.encode(p.Error(p.ERR_BAD_LENGTH, f"unknown capture mode {msg.mode}"))

    def _samples(self, window: int, timestamp_ms: int, values: np.ndarray) -> bytes:
        s = self.model.sensor
        assert s is not None
        return b"".join(p.encode(m) for m in window_chunks(boot_id=self.boot_id, window=window, timestamp_ms=timestamp_ms,
                                                           fs=s.fs, sensor=s.name, values=values))

    def _set_time(self, seconds: int, now: float) -> int:
        """Record the time of day (tinyml_app.c ``set_time``); the slot a window read now gets, or NO_SLOT."""
        if self.model.series is None:
            return p.NO_SLOT
        if self.clock is None:
            self.time_fresh = True
        self.clock = DayClock(seconds % 86400 * 1000, int(now * 1000))
        return slot_ending(self.clock.day_ms, self.model.series[1], int(self.model.series[0]["slots"]))

    def _stateful_window(self, drifted: bool, now: float) -> tuple[np.ndarray, Outcome]:
        """The next window (a hop after the last one's start) in its slot of the day, through the device's state
        (tinyml_app.c ``place_window``)."""
        entry, span_ms = self.model.series
        slots = int(entry["slots"])
        if self.clock is not None:
            slot = slot_ending(self.clock.ms_of_day(int(now * 1000)), span_ms, slots)
            if self.time_fresh:
                self.series, self.time_fresh = SeriesState(entry, self.model.sensor.channels), False
                if self.slope is not None:
                    self.slope.reset()
        else:
            slot = self.next_slot
        self.next_slot = (slot + 1) % slots
        self.slots_used.append(slot)
        stream = Stream(np.array([slot * DAY / slots]), state=self.series)
        hop = self.model.hop
        kept = None if self.last_window is None or hop >= len(self.last_window) else self.last_window[hop:]
        values, outcome = self.model.fresh(self.condition, drifted, self.np_rng, stream, kept)
        if self.slope is not None:
            outcome = self.model.with_slope(values, slot, self.slope, outcome)
        self.last_window = values
        return values, outcome

    # ---- run mode ----
    def silent(self, now: float) -> bool:
        f = self.faults
        t = now - self.fleet_start
        return bool(f.silence_for) and f.silence_after <= t < f.silence_after + f.silence_for

    def due_output(self, now: float) -> bytes:
        """Frames due since the last call: reboots, RESULTs at the rate (within the line rate), HEARTBEATs."""
        out = bytearray()
        if self.next_reboot is not None and now >= self.next_reboot:
            self.stats.reboots += 1
            self._boot(now)
            out += self.greeting()
        elapsed, self.last_tick = now - self.last_tick, now
        if self.silent(now):
            return bytes(out)
        self.line_budget = min(self.line_budget + elapsed * self.line_bytes_per_s, self.line_bytes_per_s)
        if self.rate > 0:
            due = LINE_RATE_BATCH if math.isinf(self.rate) else \
                int((now - self.boot_time) * self.rate) - self.scheduled
            while due > 0 and self.line_budget > 0:
                frame = self._next_result_frame(now)
                out += frame
                self.line_budget -= len(frame)
                self.scheduled += 1
                due -= 1
            if not math.isinf(self.rate):
                self.scheduled += max(due, 0)  # the line was full: a device blocked in its UART write skips them
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + HEARTBEAT_S
            out += p.encode(p.Heartbeat(self.claimed_boot, self._uptime_ms(now), self.seq,
                                        self.stats.rx_errors))
        return bytes(out)

    def _next_result_frame(self, now: float) -> bytes:
        f = self.faults
        drifted = f.drift_after is not None and now - self.fleet_start >= f.drift_after
        m = self.model
        if m.series is not None:  # state across windows: the window slid by the hop, in its slot of the day
            values, outcome = self._stateful_window(drifted, now)
        elif self.streaming:  # a fresh window of the machine's condition, and its exact result
            values, outcome = m.fresh(self.condition, drifted, self.np_rng)
        else:  # a precomputed result, and the window behind it when the model has a sensor
            pool, windows = (m.drifted_pool, m.drifted_windows) if drifted else (m.normal_pool, m.normal_windows)
            i = self.rng.randrange(len(pool))
            outcome, values = pool[i], None if windows is None else windows[i]
        seq = self.seq if self.victim is None else (self.victim.seq + 1 + self.seq) & 0xFFFFFFFF  # ahead of it
        result = self._result(seq, outcome, now)
        frame = p.encode(result if self.key is None else auth.authenticated_result(self.key, result))
        samples = b""
        if values is not None:
            self.ring.append((self.seq, result.timestamp_ms, values))
            if self.streaming:
                samples = self._samples(self.seq, result.timestamp_ms, values)
                self.stream_left -= 1
                self.streaming = self.stream_left != 0
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.stats.results += 1
        n = self.seq  # the Nth run-mode result since boot
        if f.truncate_every and n % f.truncate_every == 0:
            self.stats.truncated += 1
            frame = frame[:len(frame) // 2]
        elif f.bad_crc_every and n % f.bad_crc_every == 0:
            self.stats.bad_crc += 1
            body = bytearray(p.cobs_decode(frame[1:-1]) or b"")
            body[-1] ^= 0x5A
            frame = b"\x00" + p.cobs_encode(bytes(body)) + b"\x00"
        if f.garbage_every and n % f.garbage_every == 0:
            self.stats.garbage += 1
            frame += bytes(self.rng.randrange(0x80, 0x100) for _ in range(self.rng.randint(4, 40)))
        return frame + samples


@dataclass(frozen=True)
class DayClock:
    """The time of day a TIME frame gave: ``day_ms`` into the day when the device's ms clock read ``at_ms``."""

    day_ms: int
    at_ms: int

    def ms_of_day(self, ms: int) -> int:
        return (self.day_ms + ms - self.at_ms) % DAY_MS


def default_condition(model: DeviceModel) -> str:
    """The healthy state of the emulated machine: the first class of its synthetic data."""
    from tinyml.data.synth import SENSOR_CLASSES

    return SENSOR_CLASSES[model.sensor.kind][0] if model.sensor is not None else ""


def check_condition(model: DeviceModel, condition: str) -> None:
    from tinyml.data.synth import SENSOR_CLASSES

    if model.sensor is None:
        raise InputError(f"--condition {condition} needs an emulated sensor",
                         hint="emulate a training run directory of 3-axis vibration or 1-channel temperature data")
    classes = SENSOR_CLASSES[model.sensor.kind]
    if condition not in classes:
        raise InputError(f"no {model.sensor.kind} condition {condition!r}", hint=f"use one of: {', '.join(classes)}")


class Endpoint:
    """A device's serial endpoint: a TCP listener with at most one client, or a pty."""

    def __init__(self, tcp_port: int | None):
        self.tcp_port = tcp_port
        self.listener: socket.socket | None = None
        self.client: socket.socket | None = None
        self.master: int | None = None
        self.slave: int | None = None
        self.address = ""
        self.generation = 0  # bumped on every change of the file descriptors to watch
        self.open()

    def open(self) -> None:
        self.generation += 1
        if self.tcp_port is None:
            self.master, self.slave, self.address = open_pty(blocking=False)
            return
        listener = listen_tcp(self.tcp_port, hint="pick a free --tcp port (device i uses PORT+i), or 0 for any")
        listener.setblocking(False)
        self.listener = listener
        self.tcp_port = listener.getsockname()[1]
        self.address = socket_url(self.tcp_port)

    def close(self) -> None:
        self.generation += 1
        # the listener first: a host that sees its connection close and reconnects at once must be
        # refused, not land in the closing listener's backlog
        for sock in (self.listener, self.client):
            if sock is not None:
                sock.close()
        for fd in (self.master, self.slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.client = self.listener = None
        self.master = self.slave = None

    def write(self, data: bytes) -> int:
        """Bytes actually written; the rest is dropped, as on a UART nobody reads."""
        try:
            if self.client is not None:
                return self.client.send(data)
            if self.master is not None:
                return os.write(self.master, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self.drop_client()
        return 0

    def attach(self, conn: socket.socket) -> None:
        """Serve a newly accepted host; the newest wins, like reopening a port."""
        self.drop_client()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = conn
        self.generation += 1

    def drop_client(self) -> None:
        self.generation += 1
        if self.client is not None:
            self.client.close()
            self.client = None


@dataclass
class _Slot:
    device: EmulatedDevice
    endpoint: Endpoint
    reopen_at: float | None = None
    disconnect_done: bool = False


class EmulatedFleet(BackgroundService):
    """N emulated devices served from one background thread.

    ``tcp_port``: device i listens on 127.0.0.1:tcp_port+i (0: each picks a free port);
    ``pty=True``: each device gets a pty instead. ``faults`` maps a device index to its
    fault schedule. ``on_exit`` is called with the code of an EXIT frame (emulated boards
    end the emulator with it); ``announce`` gets "DEVICE_ID ADDRESS" when an endpoint
    comes back after a disconnect (a pty comes back under a new path).
    """

    def __init__(self, model: str | Path | DeviceModel, *, count: int = 1, tcp_port: int | None = 0,
                 pty: bool = False, rate: float = 1.0, baud: int = 115200, faults: dict[int, Faults] | None = None,
                 seed: int = 0, on_exit: Callable[[int], None] | None = None,
                 announce: Callable[[str], None] | None = None, condition: str | None = None,
                 keys: Mapping[str, bytes] | None = None):
        if count < 1 or count > 1024:
            raise InputError(f"--count must be between 1 and 1024, got {count}", hint="e.g. --count 4")
        if rate < 0:
            raise InputError(f"--rate must be >= 0 results per second, got {rate}", hint="0 sends results only on INFER")
        if baud <= 0:
            raise InputError(f"--baud must be positive, got {baud}", hint="e.g. --baud 115200")
        if pty == (tcp_port is not None):
            raise InputError("emulated devices need exactly one of a TCP port or ptys", hint="pass --tcp PORT or --pty")
        if tcp_port and not 0 < tcp_port + count - 1 < 65536:
            raise InputError(f"ports {tcp_port}..{tcp_port + count - 1} are out of range", hint="pick a lower --tcp")
        unknown = sorted(set(faults or {}) - set(range(count)))
        if unknown:
            raise InputError(f"fault schedule for device {unknown[0]}, but only {count} devices exist",
                             hint=f"device indexes run from 0 to {count - 1}")
        self.model = model if isinstance(model, DeviceModel) else DeviceModel(model, seed)
        if condition is not None:
            check_condition(self.model, condition)
        self.start_time = time.monotonic()
        self.on_exit = on_exit
        self.announce = announce
        self.exit_code: int | None = None
        super().__init__("emulated-fleet")
        self._lock = threading.Lock()
        self.slots: list[_Slot] = []
        try:
            for i in range(count):
                device = EmulatedDevice(i, self.model, rate, baud, (faults or {}).get(i, Faults()), seed,
                                        self.start_time, condition, key=(keys or {}).get(f"emu-{i:03d}"))
                self.slots.append(_Slot(device, Endpoint(None if pty else (tcp_port + i if tcp_port else 0))))
            for device in self.devices:
                victim = device.faults.impersonate
                if victim is not None:
                    if not 0 <= victim < count or victim == device.index:
                        raise InputError(f"device {device.index} cannot impersonate device {victim}",
                                         hint=f"name another of the devices 0..{count - 1}")
                    device.victim = self.devices[victim]
        except BaseException:
            self.close_endpoints()
            raise

    @property
    def devices(self) -> list[EmulatedDevice]:
        return [s.device for s in self.slots]

    @property
    def endpoints(self) -> list[str]:
        return [s.endpoint.address for s in self.slots]

    def _close(self) -> None:
        self.close_endpoints()

    def close_endpoints(self) -> None:
        for slot in self.slots:
            slot.endpoint.close()

    def schedule(self, index: int, faults: Faults) -> None:
        """Replace a device's fault schedule while running (times stay relative to the fleet start)."""
        with self._lock:
            self.slots[index].device.faults = faults

    def set_condition(self, index: int, condition: str) -> None:
        """Change what device ``index``'s machine does (a class of the synthetic data), e.g. "imbalance"."""
        check_condition(self.model, condition)
        with self._lock:
            self.slots[index].device.condition = condition

    # ---- the serving loop ----
    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        registered: dict[int, object] = {}
        generations: list[int] = []
        for slot in self.slots:  # a pty has no "connect": the boot output waits in its buffer
            # (pyserial flushes it when it opens the port, so hosts send HELLO_REQ, as for a real board)
            if slot.endpoint.master is not None:
                self._send(slot, slot.device.greeting())
        try:
            while not self._stop.is_set() and self.exit_code is None:
                now_generations = [slot.endpoint.generation for slot in self.slots]
                if now_generations != generations:
                    generations = now_generations
                    self._sync_registrations(sel, registered)
                for key, _ in sel.select(TICK_S) if registered else [(None, None)]:
                    if key is not None:
                        self._on_readable(key.data, key.fileobj)
                if not registered:
                    time.sleep(TICK_S)
                now = time.monotonic()
                with self._lock:
                    for slot in self.slots:
                        self._tick(slot, now)
        finally:
            sel.close()
        if self.exit_code is not None and self.on_exit is not None:
            self.on_exit(self.exit_code)

    def _sync_registrations(self, sel: selectors.BaseSelector, registered: dict[int, object]) -> None:
        wanted: dict[int, tuple[object, _Slot]] = {}
        for slot in self.slots:
            ep = slot.endpoint
            for obj in (ep.listener, ep.client, ep.master):
                if obj is not None:
                    wanted[obj if isinstance(obj, int) else obj.fileno()] = (obj, slot)
        for fd in list(registered):
            if fd not in wanted or registered[fd] is not wanted[fd][0]:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    sel.unregister(fd)
                del registered[fd]
        for fd, (obj, slot) in wanted.items():
            if fd not in registered:
                sel.register(fd, selectors.EVENT_READ, slot)
                registered[fd] = obj

    def _on_readable(self, slot: _Slot, fd: int) -> None:
        ep, dev = slot.endpoint, slot.device
        now = time.monotonic()
        if ep.listener is not None and fd == ep.listener.fileno():
            with contextlib.suppress(BlockingIOError, OSError):
                conn, _ = ep.listener.accept()
                ep.attach(conn)
                dev.stats.connections += 1
                self._send(slot, dev.greeting())
            return
        try:
            data = ep.client.recv(65536) if ep.client is not None and fd == ep.client.fileno() else \
                os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if ep.client is not None and fd == ep.client.fileno():
                ep.drop_client()
            return
        with self._lock:
            reply = dev.receive(data, now)
        if reply:
            self._send(slot, reply)
        if dev.exit_code is not None:
            self.exit_code = dev.exit_code

    def _send(self, slot: _Slot, data: bytes) -> None:
        dev = slot.device
        written = slot.endpoint.write(data)
        dev.stats.bytes_sent += written
        dev.stats.bytes_dropped += len(data) - written

    def _tick(self, slot: _Slot, now: float) -> None:
        dev, ep, f = slot.device, slot.endpoint, slot.device.faults
        t = now - self.start_time
        if f.disconnect_after and not slot.disconnect_done and t >= f.disconnect_after:
            slot.disconnect_done = True
            dev.stats.disconnects += 1
            ep.close()
            slot.reopen_at = now + f.disconnect_for
        if slot.reopen_at is not None:
            if now < slot.reopen_at:
                dev.due_output(now)  # the device keeps running; its output goes nowhere
                return
            slot.reopen_at = None
            ep.open()
            if ep.master is not None:
                self._send(slot, dev.greeting())
            if self.announce is not None:
                self.announce(f"{dev.device_id} {ep.address}")
        data = dev.due_output(now)
        if data:
            self._send(slot, data)
