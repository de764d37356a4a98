"""Hardware-in-the-loop replay: recorded windows streamed to a device's ``replay`` sensor.

A firmware rendered with ``--sensor replay`` and built in run mode reads its windows from
REPLAY frames (docs/protocol.md) instead of a chip, then does what it does with a real
sensor: its own C preprocessing, the model, the decision, a RESULT frame. The host sends one
window at a time (stop-and-wait on the ACKs), waits for its RESULT and compares the device's
whole raw output with the host pipeline's for the same samples (preprocess.json, then the
TFLM interpreter): the same bytes, or a report of where they differ.

A run whose features keep state across windows (``daily_cycle``) is replayed as ``validate`` sends it: the
windows in data order, SERIES with reset where a stream (group) starts, and before each window a TIME that
places it in its slot of the day, as the device's clock places the windows it reads in the field. Its
run-mode firmware reads a window every training hop (tinyml_run.h), so a window that continues the one before
it by one hop is sent as a sensor delivers it: for a hop shorter than the window (the same samples overlap)
the hop's new samples only; for a longer one (the next slot of the same stream) the samples between the two
windows, which the device reads and discards, then the window. The dataset does not hold those samples, so
they are filled in (a line from the last window's last sample to the next one's first): the device gets as
many samples as a sensor delivers, and the outputs do not depend on their values. Any other window (a gap,
another stretch) is sent whole after SERIES, which makes the device read it whole, the state kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyml.data.features_series import run_hop, window_span_ms
from tinyml.device import protocol as p
from tinyml.errors import DeviceError, InputError
from tinyml.rundir import Int8Model


@dataclass
class ReplayReport:
    windows: int = 0
    identical: int = 0
    mismatched: list[int] = field(default_factory=list)   # window indices whose output bytes differ
    device_labels: list[int] = field(default_factory=list)
    host_labels: list[int] = field(default_factory=list)
    sent_values: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"windows": self.windows, "identical": self.identical, "mismatched": self.mismatched,
                "device_labels": self.device_labels, "host_labels": self.host_labels,
                "sent_values": self.sent_values}


def replay_window(link: Any, window: np.ndarray, *, timeout: float = 10.0) -> p.Result:
    """Send one window (time x channels, training units; a stateful run's samples due, ``as_read``) and return
    the RESULT it produced."""
    values = np.ascontiguousarray(window, dtype="<f4").ravel()
    link.unsolicited.clear()
    for start in range(0, values.size, p.MAX_REPLAY_VALUES):
        chunk = values[start:start + p.MAX_REPLAY_VALUES]
        end = start + chunk.size
        link.request(p.Replay(start, chunk.tobytes()), p.Ack, timeout,
                     match=lambda m, e=end: m.for_type == p.Replay.TYPE and m.value == e)
    for msg in list(link.unsolicited):
        if isinstance(msg, p.Result):
            return msg
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        msg = link.recv(left)
        if isinstance(msg, p.Result):
            return msg
        if isinstance(msg, p.Error):
            raise DeviceError(f"device on {link.name} reported error {msg.code} after a replayed window: "
                              f"{msg.message}", "see docs/protocol.md for the error codes")
    raise DeviceError(f"no RESULT from {link.name} within {timeout:g} s of a complete replayed window",
                      "is the firmware built in run mode (make MODE=run) with --sensor replay?")


def place_window(link: Any, time: p.Time, start: p.Series | None, timeout: float) -> None:
    """Before a window of a run with state across windows: ``start`` (SERIES: a new stream with reset, or a window
    a sliding device must read whole), and its time (TIME, which the device ACKs with the slot it will use)."""
    for frame in (start, time):
        if frame is not None:
            link.request(frame, p.Ack, timeout, match=lambda m, t=frame.TYPE: m.for_type == t)


def continues(windows: np.ndarray, i: int, hop: int) -> bool:
    """Window ``i`` is window ``i - 1`` slid by ``hop`` samples (less than the window): a sliding device reads
    only its last ``hop`` samples."""
    window = windows.shape[1]
    return i > 0 and hop < window and np.array_equal(windows[i, :window - hop], windows[i - 1, hop:])


def as_read(windows: np.ndarray, i: int, hop: int, places: Any) -> tuple[p.Series | None, np.ndarray]:
    """Window ``i`` of a stateful run (``places``: hil.SeriesPlaces) as its run-mode device reads it, and the SERIES
    it needs first: a stream's first window whole after SERIES with reset; a window continuing the one before it,
    what the sensor delivers since that one (the module docstring); any other whole, after SERIES for a device
    that slides or skips (it then reads it at once) and with the TIME alone for one reading windows back to back."""
    window, values = windows.shape[1], windows[i]
    if places.starts[i] or hop == window:
        return places.frame(i) if places.starts[i] else None, values
    if hop < window:
        if continues(windows, i, hop):
            return None, values[-hop:]
        return p.Series(0, int(places.slots[i])), values
    series = places.frame(i)  # None: the slot after the last window's, which the device's next read fills
    if series is not None:
        return series, values
    between = np.linspace(windows[i - 1][-1], values[0], hop - window + 2)[1:-1].astype(values.dtype)
    return None, np.concatenate([between, values])


def replay_dataset(link: Any, model: Int8Model, data: str | Path, *, split: str | None = "test",
                   limit: int | None = None, timeout: float = 10.0) -> ReplayReport:
    """Replay a dataset's windows and compare each device output with the host pipeline's."""
    from tinyml.data.dataset import load
    from tinyml.hil import decide, device_reference, prepare_inputs, stratified_sample

    hello = link.request(p.HelloReq(), p.Hello, timeout)
    if hello.model_hash != model.hash8:
        raise InputError(f"the device on {link.name} runs model {hello.model_hash.hex()}, not {model.hash8.hex()}",
                         "flash the firmware built for this model")
    inputs = prepare_inputs(model, data, split, limit)  # --limit: the same seeded class-stratified pick
    places = inputs.series
    if places is not None:  # state across windows: the windows in data order, as the inputs were computed
        pre = model.preprocess()
        windows = inputs.windows.reshape(-1, pre.window, len(pre.channels))
        span_ms = window_span_ms(pre.window, pre.fs)
        hop = run_hop(pre.feature_spec, pre.window, pre.fs)
    else:
        ds = load(data).subset(split)
        keep = stratified_sample(ds.y, limit, 0) if limit is not None and ds.n > limit else np.arange(ds.n)
        windows = ds.x[keep]
    if windows.shape[0] != inputs.x.shape[0]:
        raise InputError(f"picked {windows.shape[0]} windows to replay but {inputs.x.shape[0]} host inputs",
                         "report this: the replay and validation window picks disagree")
    host = device_reference(model, inputs.x, "native").outputs  # TFLM firmware of a model TFLM gets wrong is refused
    report = ReplayReport(host_labels=[int(v) for v in decide(model, inputs.x, host, inputs.slope, inputs.windows)])
    for i, window in enumerate(windows):
        if places is not None:
            start, window = as_read(windows, i, hop, places)
            place_window(link, places.time(i, span_ms), start, timeout)
        result = replay_window(link, window, timeout=timeout)
        out = np.frombuffer(link.output(result, hello.output_bytes, timeout), dtype=np.int8)
        report.windows += 1
        report.sent_values += window.size
        report.device_labels.append(int(result.label))
        if np.array_equal(out, host[i].astype(np.int8)):
            report.identical += 1
        else:
            report.mismatched.append(i)
    return report
