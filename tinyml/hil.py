"""On-device validation: run test inputs on a board and compare with the host reference.

The host quantises every input exactly as the reference gets it, sends it over the device
protocol (INPUT chunks, then INFER), fetches any output a RESULT frame cannot hold
(OUTPUT_REQ), and compares the whole raw int8 output of the device byte for byte with the
TFLM Python interpreter's output for the same input. A device result that differs is a bug
to show: the report counts every mismatching byte and points at the first one.

A run whose preprocessing keeps state across windows (the ``daily_cycle`` feature) is validated
over windows in data order, from the start of their stream: before a window the host sends
SERIES where the device must reset its state (a new stream) or jump to the window's slot of the
day (a gap), so the device's C computes the state exactly as Python does over the same windows.

The line may be noisy: a frame that arrives garbled (the device answers ERROR 1, or the
host's decoder counts a bad frame, or nothing comes back) is simply sent again; the
report counts bad frames and retries, and only gives up after ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyml.device import protocol as p
from tinyml.device.link import ERROR_HINT, read_output
from tinyml.errors import CheckFailed, DeviceError, InputError
from tinyml.firmware.boards import Board
from tinyml.rundir import Int8Model

MAX_ATTEMPTS = 8
DEFAULT_RANDOM_INPUTS = 20


@dataclass(frozen=True)
class SeriesPlaces:
    """Where each input window sits in its stream, for a preprocessing with state across windows:
    its slot of the day and whether it starts a stream (Python's state starts afresh there)."""

    slots: np.ndarray        # int [N], each window's slot of the day
    starts: np.ndarray       # bool [N], True where a new stream (group) begins
    per_day: int             # slots in a day

    def frame(self, i: int) -> p.Series | None:
        """The SERIES window ``i`` needs first: a reset where a stream starts, the slot after a gap
        (the device's own count would go on from the previous window's slot); None otherwise."""
        slot = int(self.slots[i])
        if self.starts[i]:
            return p.Series(1, slot)
        return None if slot == (int(self.slots[i - 1]) + 1) % self.per_day else p.Series(0, slot)

    def time(self, i: int, span_ms: int) -> p.Time:
        """The TIME that places window ``i`` in its slot on a run-mode device that reads it at once (replay): the
        slot's own start plus the window's span (``features_series.window_span_ms``), half a slot from either
        edge of the rounding."""
        from tinyml.data.features_series import DAY

        return p.Time(round(int(self.slots[i]) * DAY / self.per_day + span_ms / 1000))

    def summary(self) -> dict[str, int]:
        frames = [self.frame(i) for i in range(self.slots.size)]
        return {"streams": sum(1 for m in frames if m is not None and m.reset),
                "gaps": sum(1 for m in frames if m is not None and not m.reset), "slots_per_day": self.per_day}


@dataclass
class ValidationInputs:
    """Quantised model inputs [N, input_bytes], the true labels when known, and for feature
    models the raw windows [N, T*C] (float32) for devices that compute the features; ``series``
    for a preprocessing with state across windows (windows in data order)."""

    x: np.ndarray
    labels: np.ndarray | None
    source: str
    windows: np.ndarray | None = None
    series: SeriesPlaces | None = None
    slope: np.ndarray | None = None  # the slope guard's CUSUM after each window (slope_guard.Tables.run), Q16

    def raw(self, device_bytes: int) -> bool:
        """True when a device whose HELLO says ``device_bytes`` takes raw windows (computes the features)."""
        return self.windows is not None and device_bytes != self.x.shape[1] and device_bytes == self.windows.shape[1] * 4

    def payload(self, i: int, device_bytes: int) -> bytes:
        """What input ``i`` looks like to a device whose HELLO says it takes ``device_bytes``."""
        if device_bytes == self.x.shape[1]:
            return self.x[i].tobytes()
        if self.raw(device_bytes):
            return self.windows[i].astype("<f4").tobytes()
        raise CheckFailed(f"the device takes {device_bytes}-byte inputs; this model's are {self.x.shape[1]} bytes"
                          + ("" if self.windows is None else f" (raw windows {self.windows.shape[1] * 4})"),
                          "flash the firmware built for this model")


@dataclass
class ValidationReport:
    board: str
    runtime: str
    model_sha256: str
    inputs: int
    output_bytes_compared: int
    mismatches: int                 # output bytes that differ from the host reference
    mismatched_inputs: int
    max_abs_diff: int
    accuracy: float | None
    host_accuracy: float | None     # the host reference's labels on the same inputs
    device_computes_features: bool  # raw windows sent; the device ran the C features itself
    device_labels_agree: float | None  # device's own decision vs the same rule on the reference
    latency_unit: str               # what the device's counter counts (its RESULT's latency_unit)
    latency_mean: float
    instructions_per_inference: float | None  # exactly one of these four holds latency_mean in its unit
    cycles_per_inference: float | None
    ticks_per_inference: float | None
    latency_us_per_inference: float | None
    preprocess_latency_mean: float | None   # devices computing the preprocessing: its mean, same unit
    instructions_with_preprocessing: float | None  # preprocessing + model, emulated boards
    flash_bytes: int | None
    ram_bytes: int | None
    bad_frames: int                 # garbled frames the host received
    device_rx_errors: int           # garbled frames the device reported (ERROR 1)
    retries: int
    seconds: float
    data: str
    first_mismatches: list[dict[str, Any]] = field(default_factory=list)  # input, first_byte, device, reference
    # rows: true label, columns: the device's label (class index, or 0 normal / 1 anomaly); None without labels
    confusion_matrix: list[list[int]] | None = None
    arena_bytes: int | None = None  # the firmware's tensor arena, when it was built here
    reference: str = "TFLM"         # the host computation the device was compared with (HostReference)
    tflm_mismatches: int | None = None  # device vs the TFLM interpreter, when that is not the reference
    departures: list[dict[str, Any]] = field(default_factory=list)  # where TFLM departs from the reference
    # state across windows computed on the device: streams begun (state reset), gaps (slot set), slots a day
    series: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> list[str]:
        how = "raw windows, features computed on the device" if self.device_computes_features else "model inputs"
        lines = [f"board {self.board} ({self.runtime}): {self.inputs} inputs from {self.data} ({how})",
                 f"mismatches: {self.mismatches} of {self.output_bytes_compared} output bytes "
                 f"({self.mismatched_inputs} inputs, max |diff| {self.max_abs_diff}) against the host reference "
                 f"({self.reference})"]
        if self.series is not None:
            lines.append(f"state across windows kept by the device: {self.series['streams']} stream(s) begun "
                         f"(state reset), {self.series['gaps']} gap(s) (slot set), "
                         f"{self.series['slots_per_day']} slots a day")
        if self.departures:
            from tinyml.codegen.semantics import describe

            lines.append(f"TFLM host interpreter: {self.tflm_mismatches} output bytes differ from the device, "
                         f"because {describe(self.departures[0])}")
        if self.first_mismatches:
            m = self.first_mismatches[0]
            i = m["first_byte"]
            lines.append(f"first difference: input {m['input']}, output byte {i}: device {m['device'][i]}, "
                         f"reference {m['reference'][i]}")
        if self.accuracy is not None:
            host = ("" if self.host_accuracy is None
                    else f", host ({self.reference}) on the same inputs {self.host_accuracy:.4f}")
            lines.append(f"on-device accuracy: {self.accuracy:.4f}{host}")
        if self.instructions_per_inference is not None:
            lines.append(f"instructions per inference: {self.instructions_per_inference:,.0f}")
        elif self.cycles_per_inference is not None:
            lines.append(f"cycles per inference: {self.cycles_per_inference:,.0f}")
        elif self.ticks_per_inference is not None:
            lines.append(f"timer ticks per inference: {self.ticks_per_inference:,.0f}")
        elif self.latency_us_per_inference is not None:
            lines.append(f"latency per inference: {self.latency_us_per_inference:,.1f} µs")
        else:
            lines.append(f"latency per inference: {self.latency_mean:,.1f} (unknown unit)")
        if self.instructions_with_preprocessing is not None:
            lines.append(f"instructions with the on-device preprocessing: {self.instructions_with_preprocessing:,.0f} "
                         "(model alone above)")
        elif self.preprocess_latency_mean is not None:
            lines.append(f"on-device preprocessing: {self.preprocess_latency_mean:,.1f} {self.latency_unit} "
                         "more per inference")
        if self.flash_bytes is not None:
            lines.append(f"flash {self.flash_bytes:,} B, static RAM {self.ram_bytes:,} B")
        lines.append(f"line: {self.bad_frames} bad frames received, {self.device_rx_errors} reported by the device, "
                     f"{self.retries} retries; {self.seconds:.2f} s")
        return lines


# ---- inputs and reference ---------------------------------------------------------------

def prepare_inputs(model: Int8Model, data: str | Path | None, split: str | None, limit: int | None,
                   seed: int = 0) -> ValidationInputs:
    """Model inputs quantised exactly as the host reference receives them."""
    from tinyml.model.interpreters import quantize_input

    if limit is not None and limit <= 0:
        raise InputError(f"--limit must be positive, got {limit}", "e.g. --limit 50")
    model.guard(), model.slope(), model.stuck()  # a malformed or stale guard stops validate and replay before any work
    if data is None:
        n = limit or DEFAULT_RANDOM_INPUTS
        rng = np.random.default_rng(seed)
        return ValidationInputs(rng.integers(-128, 128, (n, model.input_bytes), dtype=np.int8), None,
                          f"{n} seeded random inputs")
    from tinyml.data.dataset import load

    ds = load(data).subset(split)
    source = f"{Path(data).name} [{split or 'all'}]"
    pre = model.preprocess()
    if pre is not None and pre.stateful:
        return series_inputs(model, pre, ds, source, limit)
    if limit is not None and ds.n > limit:
        source += f", {limit} of {ds.n} windows stratified by class (seed {seed})"
        ds = ds.take(stratified_sample(ds.y, limit, seed))
    raw = ds.x.reshape(ds.n, -1).astype(np.float32)
    if pre is not None and pre.integer:  # the device computes these from raw windows, in integers
        q = pre.int8_inputs(ds.x, model.in_scale, model.in_zp)
        return ValidationInputs(q, _truth(model, ds), source, raw)
    if pre is not None and pre.mode == "features":
        # quantized exactly as the device's C does it (tinyml_features_quantize), not half-to-even
        from tinyml.data.features import quantize_features
        from tinyml.preprocess import compute_feature_matrix

        pre.apply(ds.x)  # checks the window shape with a clear message
        feats = compute_feature_matrix(ds.x, pre.feature_spec, pre.fs)
        q = quantize_features(feats, pre.mean, pre.std, model.in_scale, model.in_zp)
        return ValidationInputs(q, _truth(model, ds), source, raw)
    x = pre.apply(ds.x) if pre is not None else ds.x
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] != model.input_bytes:
        raise InputError(f"dataset windows hold {flat.shape[1]} values but the model takes {model.input_bytes}",
                         "pass the dataset the model was trained on, or a run directory with preprocess.json")
    q = quantize_input(flat, model.in_scale, model.in_zp).astype(np.int8)
    return ValidationInputs(q, _truth(model, ds), source)


def series_inputs(model: Int8Model, pre: Any, ds: Any, source: str, limit: int | None) -> ValidationInputs:
    """Inputs of a run whose features keep state across windows: the windows in data order (by group,
    then start time, as ``features_series.stream_features`` runs them), the first ``limit`` of them,
    the int8 inputs Python computes over exactly these windows (state fresh at each stream's first)."""
    from tinyml.data.features_series import NAME, stream_slots
    from tinyml.train.slope_guard import samples

    if ds.times is None or not np.all(np.isfinite(ds.times)):
        raise InputError("this run's daily_cycle feature keeps state across windows, so validate needs each "
                         "window's time", "pass the timestamped dataset the run was trained on "
                         "(`data import --time-column`)")
    ds = ds.take(np.lexsort((ds.times, ds.groups)))
    if limit is not None and ds.n > limit:
        source += f", the first {limit} of {ds.n} windows in data order (state across windows)"
        ds = ds.take(np.arange(limit))
    else:
        source += ", in data order (state across windows)"
    q = pre.int8_inputs(ds.x, model.in_scale, model.in_zp, stream=ds.stream())
    per_day = int(next(e for e in pre.feature_spec if e.get("name") == NAME)["slots"])
    groups = np.asarray(ds.groups)
    starts = np.r_[True, groups[1:] != groups[:-1]]
    places = SeriesPlaces(stream_slots(ds.times, per_day), starts, per_day)
    slope = model.slope()
    levels = None if slope is None else slope.run(samples(pre, ds.x), stream_slots(ds.times, slope.slots), starts)
    return ValidationInputs(q, _truth(model, ds), source, ds.x.reshape(ds.n, -1).astype(np.float32), places, levels)


def stratified_sample(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` windows drawn (seeded) so that every class keeps its share, each present
    class at least one window while ``n`` allows; sorted, so the data's order is kept. The
    first N windows would be the first classes only (datasets are stored in class order)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    share = counts * n / counts.sum()
    take = np.floor(share).astype(int)
    if n >= classes.size:
        take = np.maximum(take, 1)
    order = np.argsort(-(share - np.floor(share)), kind="stable")  # largest remainders first
    i = 0
    while take.sum() < n:
        c = order[i % classes.size]
        if take[c] < counts[c]:
            take[c] += 1
        i += 1
    while take.sum() > n:  # the minimum of one per class overshot: trim the largest classes
        take[int(np.argmax(take))] -= 1
    picked = [rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(picked))


def _truth(model: Int8Model, ds: Any) -> np.ndarray | None:
    """True labels in the device's terms: class index, or 1 = anomaly / 0 = normal."""
    if ds.y.size == 0 or (ds.y < 0).any():
        return None
    if model.task == "anomaly":
        normal = ds.normal_class or ds.classes[0]
        return (ds.y != ds.classes.index(normal)).astype(np.int64) if normal in ds.classes else None
    return ds.y.astype(np.int64)


def host_reference(model: Int8Model, inputs: np.ndarray) -> np.ndarray:
    """TFLM Python interpreter outputs [N, output_bytes] for the quantised inputs."""
    from tinyml.model.interpreters import io_quantization, tflm_run

    data = model.data
    shape = io_quantization(data).in_shape
    return tflm_run(data, inputs.reshape(inputs.shape[0], *shape)).reshape(inputs.shape[0], -1)


@dataclass(frozen=True)
class HostReference:
    """What the device's outputs are compared with: TFLM's, or for native firmware of a model TFLM
    computes wrongly, the op-by-op reference semantics (docs/codegen.md), with TFLM's outputs and
    where TFLM departs beside them."""

    outputs: np.ndarray
    name: str
    tflm_outputs: np.ndarray
    departures: list[dict[str, Any]]


def device_reference(model: Int8Model, inputs: np.ndarray, runtime: str) -> HostReference:
    """TFLM's outputs, unless the device runs generated C and TFLM departs from the reference
    semantics on the first inputs; then the reference semantics' outputs."""
    from tinyml.codegen import semantics

    tflm = host_reference(model, inputs)
    if runtime != "native":  # a TFLM firmware must equal TFLM, right or wrong
        return HostReference(tflm, "TFLM", tflm, [])
    try:
        found = [d.to_json() for d in semantics.trace(model.data, inputs[:8], engines=("tflm",)).departures]
    except InputError:  # a model the op-by-op reference cannot cut up: TFLM stays the reference
        found = []
    if not found:
        return HostReference(tflm, "TFLM", tflm, [])
    return HostReference(semantics.reference_outputs(model.data, inputs), "reference semantics, docs/codegen.md",
                         tflm, found)


def decide(model: Int8Model, inputs: np.ndarray, outputs: np.ndarray, slope: np.ndarray | None = None,
           windows: np.ndarray | None = None) -> np.ndarray:
    """The decision rule of docs/protocol.md applied on the host (0xFF when undecided; 2, a sensor fault, where the
    stuck guard fires); for a device that computes the features from the raw windows: ``slope``, the slope guard's
    CUSUM after each window (``ValidationInputs.slope``), and ``windows``, the raw windows [N, T * C] its stuck guard
    counts."""
    if model.task == "anomaly":
        if model.threshold is None:
            return np.full(outputs.shape[0], p.LABEL_UNDECIDED)
        from tinyml.train.guard import fold, int8_scores

        x = model.in_scale * (inputs.astype(np.float64) - model.in_zp)
        y = model.out_scale * (outputs.astype(np.float64) - model.out_zp)
        scores = int8_scores(model, inputs, ((x - y) ** 2).mean(axis=1))
        if slope is not None:
            scores = fold(scores, model.slope().excess(slope), model.threshold)
        labels = (scores > model.threshold).astype(np.int64)
        stuck = None if windows is None else model.stuck()
        if stuck is not None:  # a frozen reading: its own label, which the gateway alerts on at once
            pre = model.preprocess()
            raw = np.asarray(windows).reshape(len(windows), pre.window, len(pre.channels))
            excess = stuck.window_excess(pre, raw)
            labels[excess > 0] = p.LABEL_SENSOR_FAULT
        return labels
    if outputs.shape[1] == 1:
        return (model.out_scale * (outputs[:, 0].astype(np.float64) - model.out_zp) >= 0.5).astype(np.int64)
    return outputs.argmax(axis=1)


# ---- talking to the device ----------------------------------------------------------------

class DeviceSession:
    """Stop-and-wait exchanges with retries over one link; counts what the line cost."""

    def __init__(self, link: Any, timeout: float):
        self.link, self.timeout = link, timeout
        self.retries = 0
        self.device_rx_errors = 0
        self.hello_msg: p.Hello | None = None
        self.preprocess_latency: dict[int, int] = {}  # seq -> the device's ACK(INFER) value

    def _exchange(self, msg: p.Message, accept: Callable[[p.Message], bool], what: str,
                  unanswered_hint: str = "check the device runs the tinyml validation firmware at this baud rate"
                  ) -> p.Message:
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                self.retries += 1
            self.link.send(msg)
            deadline = time.monotonic() + self.timeout
            while (left := deadline - time.monotonic()) > 0:
                answer = self.link.recv(left)
                if answer is None:
                    break
                if accept(answer):
                    return answer
                if isinstance(answer, p.Error):
                    if answer.code == p.ERR_BAD_FRAME:
                        self.device_rx_errors += 1
                        break  # the device saw garbage: send again at once
                    raise DeviceError(f"device answered {p.type_name(msg)} with error {answer.code}: "
                                      f"{answer.message}",
                                      ERROR_HINT.get(answer.code, "see docs/protocol.md for the error codes"))
        raise DeviceError(f"no {what} from the device after {MAX_ATTEMPTS} tries of {self.timeout:g} s",
                          unanswered_hint)

    def hello(self) -> p.Hello:
        """The boot HELLO, or the answer to HELLO_REQ when the device was already running."""
        deadline = time.monotonic() + min(self.timeout, 1.0)
        msg: p.Message | None = None
        while (left := deadline - time.monotonic()) > 0:
            msg = self.link.recv(left)
            if isinstance(msg, p.Hello) or msg is None:
                break
        if not isinstance(msg, p.Hello):
            msg = self._exchange(p.HelloReq(), lambda m: isinstance(m, p.Hello), "HELLO")
        self.hello_msg = msg  # type: ignore[assignment]
        return msg  # type: ignore[return-value]

    def infer(self, seq: int, x: bytes) -> p.Result:
        """INPUT chunks (each ACKed), then INFER; the RESULT that carries ``seq``."""
        for off in range(0, len(x), p.MAX_INPUT_CHUNK):
            end = min(len(x), off + p.MAX_INPUT_CHUNK)
            self._exchange(p.Input(off, x[off:end]),
                           lambda m, e=end: isinstance(m, p.Ack) and m.for_type == p.Input.TYPE and m.value == e,
                           "ACK")
        def accept(m: p.Message) -> bool:
            if isinstance(m, p.Ack) and m.for_type == p.Infer.TYPE:  # preprocessing latency, before RESULT
                self.preprocess_latency[seq] = m.value
            return isinstance(m, p.Result) and m.seq == seq

        return self._exchange(p.Infer(seq), accept, "RESULT")  # type: ignore[return-value]

    def place(self, msg: p.Series) -> None:
        """SERIES, ACKed with its slot: where the next window sits in its stream (idempotent, so resent freely)."""
        self._exchange(msg, lambda m: isinstance(m, p.Ack) and m.for_type == p.Series.TYPE and m.value == msg.slot,
                       "ACK of SERIES", "firmware built before SERIES existed cannot place windows in time: "
                       "rebuild and flash it with this tinyml version")

    def output(self, result: p.Result, output_bytes: int) -> bytes:
        """The whole raw output of ``result``: its head plus OUTPUT chunks for the rest."""
        return read_output(result, output_bytes, lambda req, accept: self._exchange(
            req, accept, "OUTPUT", "firmware built before OUTPUT_REQ existed sends at most 484 output bytes: "
                                   "rebuild and flash it with this tinyml version"))


# ---- the validation -----------------------------------------------------------------------

def check_hello(hello: p.Hello, model: Int8Model) -> None:
    if hello.arena_bytes == p.ARENA_FAILED:
        raise CheckFailed("the device could not allocate its tensor arena at boot: every inference would fail",
                          "re-render the firmware with this tinyml version (it sizes the arena for the chip's "
                          "kernels) or enlarge kArenaBytes in main/tflm_model.cc")
    if hello.model_hash != model.hash8:
        raise CheckFailed(f"the device runs model {hello.model_hash.hex()}, not {model.hash8.hex()} "
                          f"({model.source_name})", "flash the firmware built for this model")
    if hello.output_bytes != model.output_bytes:
        raise CheckFailed(f"device output is {hello.output_bytes} bytes, the model's {model.output_bytes}",
                          "flash the firmware built for this model")


def run_validation(session: DeviceSession, model: Int8Model, tests: ValidationInputs,
                   progress: bool = False) -> tuple[np.ndarray, list[p.Result]]:
    """Send every input; returns the device's whole outputs [N, output_bytes] and the RESULT messages."""
    from tinyml.progress import steps

    hello = session.hello()
    check_hello(hello, model)
    tests.payload(0, hello.input_bytes)  # fails early when the device takes another input
    results: list[p.Result] = []
    outputs = np.empty((tests.x.shape[0], hello.output_bytes), np.int8)
    places = tests.series if tests.raw(hello.input_bytes) else None  # the device's C keeps the state
    for seq in steps(range(tests.x.shape[0]), total=tests.x.shape[0], desc="validate", unit="input",
                     quiet=not progress):
        if places is not None and (msg := places.frame(seq)) is not None:
            session.place(msg)
        results.append(session.infer(seq, tests.payload(seq, hello.input_bytes)))
        outputs[seq] = np.frombuffer(session.output(results[-1], hello.output_bytes), np.int8)
    return outputs, results


def latency_figures(board: Board, unit_code: int, mean: float) -> dict[str, float | None]:
    """The mean latency under the name of what it counts. The device's RESULT says its unit; only
    when that is the unit the emulated ``board``'s own firmware reports (so the counter runs under
    ``-icount``) does the board's instructions-per-tick factor turn it into instructions. Any other
    device (e.g. ``tinyml emulate`` on --port, which reports µs) keeps its own unit."""
    figures: dict[str, float | None] = dict.fromkeys(
        ("instructions_per_inference", "cycles_per_inference", "ticks_per_inference", "latency_us_per_inference"))
    unit = p.LATENCY_UNIT_NAMES.get(unit_code)
    if board.emulated and board.instructions_per_tick and unit == board.latency_unit:
        figures["instructions_per_inference"] = mean * board.instructions_per_tick
    elif unit is not None:
        key = {"instructions": "instructions_per_inference", "cycles": "cycles_per_inference",
               "ticks": "ticks_per_inference", "us": "latency_us_per_inference"}[unit]
        figures[key] = mean
    return figures


def compare(board: Board, runtime: str, model: Int8Model, tests: ValidationInputs, device_out: np.ndarray,
            results: list[p.Result], host: HostReference, session: DeviceSession, seconds: float,
            sizes: tuple[int, ...] | None) -> ValidationReport:
    """Byte-for-byte comparison of the whole outputs, accuracy and latency figures."""
    reference = host.outputs
    diff = np.abs(device_out.astype(np.int16) - reference.astype(np.int16))
    bad_rows = np.flatnonzero(diff.max(axis=1) > 0)
    labels = np.array([r.label for r in results])
    accuracy, confusion = None, None
    if tests.labels is not None and not (labels == p.LABEL_UNDECIDED).all():
        accuracy = float((as_classes(model, labels) == tests.labels).mean())
        confusion = device_confusion(model, tests.labels, as_classes(model, labels))
    on_device = bool(session.hello_msg and tests.raw(session.hello_msg.input_bytes))
    host_labels = decide(model, tests.x, reference, *((tests.slope, tests.windows) if on_device else ()))
    host_accuracy = None
    if tests.labels is not None and not (host_labels == p.LABEL_UNDECIDED).all():
        host_accuracy = float((as_classes(model, host_labels) == tests.labels).mean())
    agree = None if (host_labels == p.LABEL_UNDECIDED).all() else float((host_labels == labels).mean())
    latency = float(np.mean([r.latency for r in results]))
    pre = [session.preprocess_latency[r.seq] for r in results if r.seq in session.preprocess_latency]
    pre_mean = float(np.mean(pre)) if pre and len(pre) == len(results) else None
    model_figures = latency_figures(board, results[0].latency_unit, latency)
    with_pre = None
    if pre_mean is not None and model_figures["instructions_per_inference"] is not None:
        with_pre = latency_figures(board, results[0].latency_unit, latency + pre_mean)["instructions_per_inference"]
    unit = p.LATENCY_UNIT_NAMES.get(results[0].latency_unit, "?")
    first = [{"input": int(i), "first_byte": int(np.argmax(diff[i] > 0)), "device": device_out[i].tolist(),
              "reference": reference[i].tolist()} for i in bad_rows[:3]]
    return ValidationReport(
        board=board.name, runtime=runtime, model_sha256=model.sha256, inputs=int(tests.x.shape[0]),
        output_bytes_compared=int(device_out.size), mismatches=int((diff > 0).sum()),
        mismatched_inputs=int(bad_rows.size), max_abs_diff=int(diff.max(initial=0)), accuracy=accuracy,
        host_accuracy=host_accuracy,
        device_computes_features=on_device,
        device_labels_agree=agree, latency_unit=unit, latency_mean=latency,
        **model_figures, preprocess_latency_mean=pre_mean, instructions_with_preprocessing=with_pre,
        flash_bytes=sizes[0] if sizes else None, ram_bytes=sizes[1] if sizes else None,
        bad_frames=int(session.link.decoder.bad_frames), device_rx_errors=session.device_rx_errors,
        retries=session.retries, seconds=seconds, data=tests.source, first_mismatches=first,
        confusion_matrix=confusion, arena_bytes=sizes[2] if sizes and len(sizes) > 2 else None,
        reference=host.name, departures=host.departures,
        tflm_mismatches=int((device_out != host.tflm_outputs).sum()) if host.departures else None,
        series=tests.series.summary() if on_device and tests.series is not None else None)


def as_classes(model: Int8Model, labels: np.ndarray) -> np.ndarray:
    """Device labels as the dataset's classes: an anomaly detector's sensor fault (2) is an anomaly (1)."""
    if model.task != "anomaly":
        return labels
    return np.where(labels == p.LABEL_SENSOR_FAULT, 1, labels)


def device_confusion(model: Int8Model, truth: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    """Counts of (true label, device label); undecided answers are left out."""
    from tinyml.train.metrics import confusion_matrix

    n = 2 if model.task == "anomaly" else max(model.output_bytes, 2)  # one sigmoid byte: two classes
    decided = (labels >= 0) & (labels < n) & (truth >= 0) & (truth < n)
    return confusion_matrix(truth[decided], labels[decided], n).tolist()


@contextmanager
def emulated_link(board: Board, elf: Path, timeout: float) -> Iterator[Any]:
    """A link to ``elf`` booted on the emulated ``board``; the emulator always dies with it."""
    from tinyml.device.link import open_link
    from tinyml.device.qemu import CONNECT_TIMEOUT_S, EmulatedBoard

    with EmulatedBoard(board, elf) as emu, open_link(emu.url, board.baud, timeout, CONNECT_TIMEOUT_S) as link:
        try:
            yield link
        finally:
            if emu.proc is not None and emu.proc.poll() is None:
                with suppress(DeviceError):
                    link.send(p.Exit(0))
                emu.wait(2.0)


def validate(board: Board, model: Int8Model, tests: ValidationInputs, port: str | None = None,
             elf: Path | None = None, runtime: str = "native", sizes: tuple[int, ...] | None = None,
             timeout: float | None = None, progress: bool = False) -> ValidationReport:
    """Validate on a real board at ``port``, or boot ``elf`` on the emulated ``board``."""
    from tinyml.device.link import open_link
    from tinyml.progress import stage

    stage(f"validate: host reference for {tests.x.shape[0]} inputs", quiet=not progress)
    reference = device_reference(model, tests.x, runtime)
    start = time.monotonic()
    wait = timeout or (1.0 if port is None else 3.0)
    if port is not None:
        stage(f"validate: connecting to {port}", quiet=not progress)
        ctx = open_link(port, board.baud, wait, connect_timeout=2.0)  # a TCP device may be starting
    elif elf is not None:
        stage(f"validate: booting {elf.name} on the emulated {board.name}", quiet=not progress)
        ctx = emulated_link(board, elf, wait)
    else:
        raise InputError(f"board {board.name} is not emulated and no --port was given",
                         "pass --port /dev/ttyUSB0 (see `tinyml ports`) or pick a qemu-* board")
    with ctx as link:
        session = DeviceSession(link, wait)
        device_out, results = run_validation(session, model, tests, progress)
    return compare(board, runtime, model, tests, device_out, results, reference, session,
                   time.monotonic() - start, sizes)


# ---- render -> build -> validate -> tolerance ------------------------------------------------

def build_firmware(board: Board, model: Int8Model, out: Path, *, runtime: str = "native",
                   target: str | None = None, mode: str = "validate", **render_options: Any) -> Any:
    """Render the firmware project for ``model`` into ``out`` and build it in ``mode``; its size
    report. ``render_options`` go to ``render_project`` (a sensor and its options)."""
    from tinyml.firmware.build import build_project
    from tinyml.firmware.render import render_project

    render_project(board, model, out, runtime, target=target, **render_options)
    return build_project(out, mode=mode)


def check_on_device(board: Board, model: Int8Model, tests: ValidationInputs, *, port: str | None = None,
                    project: Path | None = None, build: bool = True, runtime: str = "native",
                    target: str | None = None, timeout: float | None = None, tolerance: int = 0,
                    report_path: Path | None = None, progress: bool = False,
                    show: Callable[[str], None] = lambda line: None,
                    log: Callable[[str], None] = lambda line: None) -> ValidationReport:
    """The one place render, build, validate and the tolerance are wired together.

    With ``port`` the board already runs its firmware. Otherwise the firmware is rendered and
    built into ``project`` (a temporary folder when None), or, with ``build`` False, ``project``
    already holds it built. ``log`` gets the build line, ``show`` the report's summary lines;
    the report is written to ``report_path``; more than ``tolerance`` output bytes different from
    the host reference raise CheckFailed."""
    import tempfile

    from tinyml.firmware.build import ELF_NAME, measure
    from tinyml.firmware.render import read_manifest
    from tinyml.outputs import write_json

    with tempfile.TemporaryDirectory(prefix="tinyml-fw-") as tmp:
        elf, sizes = None, None
        if port is None:
            folder = Path(project or Path(tmp) / board.name)
            if build:
                size = build_firmware(board, model, folder, runtime=runtime, target=target)
                kernels = f", {read_manifest(folder)['codegen_target']} kernels" if runtime == "native" else ""
                log(f"built firmware for {board.name}{kernels}: flash {size.flash_bytes:,} B, "
                    f"static RAM {size.ram_bytes:,} B")
            else:
                size = measure(folder / ELF_NAME, board, int(read_manifest(folder).get("arena_bytes", 0)))
            elf, sizes = folder / ELF_NAME, (size.flash_bytes, size.ram_bytes, size.arena_bytes)
        report = validate(board, model, tests, port=port, elf=elf, runtime=runtime, sizes=sizes, timeout=timeout,
                          progress=progress)
    for line in report.summary():
        show(line)
    if report_path is not None:
        write_json(report_path, report.to_json())
    if report.mismatches > tolerance:
        where = f"{report_path} shows where (first_mismatches)" if report_path else "--report FILE shows where"
        raise CheckFailed(f"{report.mismatches} output bytes differ from the host reference ({report.reference}, "
                          f"tolerance {tolerance})",
                          f"{where}; a difference is a code generator or firmware bug")
    return report
