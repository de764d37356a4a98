"""``tinyml detect``: a model run over a long timestamped series as the device runs it, alarms as events.

Sliding windows with the model's hop (the hop its training data was cut with, unless ``--hop``), each scored
with the run's own preprocessing, threshold and input guard (``tinyml.train.guard``, when trained with one)
and slope guard (``tinyml.train.slope_guard``, the device's integers: its CUSUM restarts where a window's slot of the
day is not the one after the last, as on a device); the anomalous/normal stream goes through the gateway's own
k-of-n rule with hysteresis and escalation (``tinyml.gateway.rules.AnomalyKofN``; a window the stuck guard flags,
which the device labels a sensor fault, fires it at once, and fires again where it begins during an alarm of another
cause), and each fire..clear (or fire..escalation, fire..fault) is one event, timed at the end of the window that decided it (when a device would have sent it). The rule starts afresh in each
recording (after a gap the device has no state), closing an open event at the end of the recording.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml import rundir
from tinyml.data import series
from tinyml.data.features_series import Stream, stream_slots
from tinyml.data.importer import resample
from tinyml.data.io import read_csv
from tinyml.data.timestamps import iso
from tinyml.errors import InputError
from tinyml.gateway.rules import AnomalyKofN
from tinyml.train.alarm_rate import AlarmRule
from tinyml.train.event_scores import score_events
from tinyml.train.fit import output_scores
from tinyml.train.guard import fold, guarded_scores
from tinyml.train.predict import model_outputs
from tinyml.train.slope_guard import SlopeGuard, run_tables, samples
from tinyml.train.stuck_guard import StuckGuard


@dataclass(frozen=True, kw_only=True)
class DetectOptions:
    time_column: str = "timestamp"
    columns: list[str] | None = None
    time_format: str | None = None
    on_backwards: str = "refuse"
    max_gap: float | None = None
    hop: int | None = None
    k: int = 2                 # fire when k of the last n windows are anomalous ...
    n: int = 3
    clear_k: int = 0           # ... clear when clear_k or fewer are
    escalate: float | None = AlarmRule.escalate  # an open alarm fires anew on a score this many times its lowest since it fired
    runtime: str = "litert"


@dataclass(frozen=True)
class Event:
    start: float
    end: float
    peak_score: float
    anomalous_windows: int
    opened_by: str = "rule"  # "rule" (k of n), "escalation" (of the alarm before it, which it ends) or "sensor_fault"
    # (a window the device labels a sensor fault, the stuck guard's, which fires at once and ends an alarm of
    # another cause)


def model_hop(info: dict) -> int:
    """The hop the model's training windows were cut with (their dataset's meta), else the window."""
    window = int(info.get("window") or info["input_shape"][0])
    try:
        with np.load(info["dataset"], allow_pickle=False) as z:
            return int(json.loads(str(z["meta"]))["options"]["hop"])
    except Exception:  # noqa: BLE001 - no dataset, synthetic data or no hop recorded: windows do not overlap
        return window


@dataclass(frozen=True)
class Scored:
    """Every window of a series as the device scores it: its samples, model inputs, anomaly score (``errors``: the
    reconstruction error alone, before the guards; ``guarded``: with the input and stuck guards, before the slope guard),
    whether the stuck guard flags it (``faults``: the device labels it a sensor fault), end
    time and recording (``alarm_events`` turns them into alarms), with the summary ``detect`` reports. Times are on the
    data's clock, which only ``--on-backwards continue`` makes differ from the log's: it re-times the data past a clock
    set back (the summary's ``clock_shifts``); events are written (``events_csv``) and scored (``score_alarms``)
    back on the log's clock."""
    windows: np.ndarray
    inputs: np.ndarray
    scores: np.ndarray
    errors: np.ndarray
    guarded: np.ndarray
    faults: np.ndarray
    ends: np.ndarray
    which: np.ndarray
    summary: dict


def detect(model: Path, series_csv: Path, o: DetectOptions = DetectOptions()) -> tuple[list[Event], dict]:
    """The alarm events over ``series_csv`` and a summary (windows, span, recordings, hop, rule)."""
    s = score_series(model, series_csv, o)
    return alarm_events(s.scores, s.summary["threshold"], s.ends, s.which, o, faults=s.faults), s.summary


def score_series(model: Path, series_csv: Path, o: DetectOptions = DetectOptions()) -> Scored:
    """The windows of ``series_csv`` with the model's hop, scored with its preprocessing and runtime."""
    run = rundir.open_model(Path(model), bare=False)  # a run dir (its model.keras) or a .keras/.tflite in one
    run_dir = run.run_dir
    info = rundir.read_model_info(run_dir)
    if info["task"] != "anomaly":
        raise InputError(f"{run_dir} is a {info['task']}, detect needs an anomaly model",
                         "train an autoencoder on normal data (`tinyml train --model autoencoder`)")
    if not 0 < o.k <= o.n or not 0 <= o.clear_k < o.k:
        raise InputError(f"--k {o.k} --n {o.n} --clear-k {o.clear_k} is no rule", "need 0 <= clear-k < k <= n")
    if o.escalate is not None and not o.escalate > 1:
        raise InputError(f"--escalate {o.escalate:g} would re-fire on scores no higher than the alarm's own",
                         "give a factor above 1 (default 3), or --no-escalate")
    window, fs = int(info["window"]), float(info["fs"])
    hop = o.hop or model_hop(info)
    slope = SlopeGuard.from_info(info)
    if slope is not None and hop != slope.hop:
        raise InputError(f"--hop {hop}: this run's slope guard judges windows of hop {slope.hop} by their time of day",
                         "leave --hop out for this run")
    recs = read_csv(Path(series_csv), o.columns, o.time_column, None, None, None,
                    timing=series.TimeOptions(time_format=o.time_format, on_backwards=o.on_backwards,
                                              max_gap=o.max_gap))
    channels = int(info["input_shape"][-1]) if info.get("preprocess") == "raw" else len(info["channels"])
    if len(recs[0].channels) != channels:
        raise InputError(f"{series_csv}: {len(recs[0].channels)} signal column(s) ({', '.join(recs[0].channels)}), "
                         f"the model reads {channels} ({', '.join(info['channels'])})", "pick them with --columns")
    xs, ends, which = [], [], []
    for k, r in enumerate(recs):
        sig = resample(r.signal, r.fs or fs, fs)
        mine = [r.t0 + (s + window) / fs for s in range(0, sig.shape[0] - window + 1, hop)]
        xs += [sig[s:s + window] for s in range(0, sig.shape[0] - window + 1, hop)]
        ends += mine
        which += [k] * len(mine)
    if not xs:
        raise InputError(f"{series_csv}: no recording is as long as the model's window ({window} samples)",
                         "detect needs longer stretches without gaps")
    x = np.stack(xs).astype(np.float32)
    pre = run.preprocess()
    stream = None
    if pre.stateful:  # one device: state carried across gaps in file order, the slot of the day from the time
        if hop != model_hop(info):
            raise InputError(f"--hop {hop}: this run's daily_cycle feature counts windows of hop {model_hop(info)}",
                             "leave --hop out for this run")
        stream = Stream(np.array(ends) - window / fs, None, np.arange(len(xs)))
    inputs = pre.apply(x, stream=stream)
    int8 = (lambda scale, zp: pre.int8_inputs(x, scale, zp, stream=stream)) if pre.integer else None
    errors = output_scores("anomaly", inputs, model_outputs(run, inputs, o.runtime, int8_inputs=int8))
    guarded = guarded_scores(run, info, inputs, errors, int8, windows=x)
    stuck = StuckGuard.from_info(info)
    threshold = run.threshold  # a .tflite's own (``rundir.Model.int8_labels``), as the device decides with it
    faults = np.zeros(len(x), bool) if stuck is None or threshold is None else stuck.window_excess(pre, x) > 0
    ends_a, which_a = np.array(ends), np.array(which)
    tables = run_tables(info, pre)
    if tables is not None:  # one device: the CUSUM restarts at the first window and where the slots jump
        level = tables.run(samples(pre, x), stream_slots(ends_a - window / fs, tables.slots), np.zeros(len(x), bool))
    scores = guarded if tables is None else fold(guarded, tables.excess(level), threshold)
    span = sum(r.signal.shape[0] / (r.fs or fs) for r in recs)
    bounds = np.concatenate([series.logged(np.array([r.t0, r.t0 + r.signal.shape[0] / (r.fs or fs)]), r.clock_shifts)
                             for r in recs])
    first, last = float(bounds[0::2].min()), float(bounds[1::2].max())
    shifts = max((r.clock_shifts for r in recs), key=len)  # each recording's are the ones up to its end
    return Scored(x, inputs, scores, errors, guarded, faults, ends_a, which_a, {
        "windows": len(xs), "hop": hop, "window": window, "window_s": window / fs, "recordings": len(recs), "span_seconds": span,
        "start": iso(bounds[0]), "first": first, "last": last, "threshold": threshold, "clock_shifts": shifts,
        "covered": covered_spans(ends_a, window / fs),
        "rule": f"{o.k} of the last {o.n} windows anomalous, clears at {o.clear_k} or fewer"
                + (f", escalates above {o.escalate:g}x its lowest anomalous score since it fired" if o.escalate else ""),
        "anomalous_windows": int(np.count_nonzero(scores > threshold)),
        "guard_windows": int(np.count_nonzero((guarded > threshold) & (errors <= threshold))),
        "slope_guard": slope is not None, "stuck_guard": stuck is not None,
        "sensor_fault_windows": int(np.count_nonzero(faults)),
        "slope_guard_windows": int(np.count_nonzero((scores > threshold) & (guarded <= threshold)))})


def covered_spans(ends: np.ndarray, window_s: float) -> list[tuple[float, float]]:
    """The stretches of time some window holds samples of: the union of every window's (end - window, end)."""
    spans: list[tuple[float, float]] = []
    for end in np.sort(ends).tolist():
        if spans and end - window_s <= spans[-1][1]:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((end - window_s, end))
    return spans


def alarm_events(scores: np.ndarray, threshold: float, ends: np.ndarray, which: np.ndarray,
                 o: DetectOptions, *, faults: np.ndarray | None = None) -> list[Event]:
    """The rule's fire..clear events over scores in file order, afresh in each recording; an escalation ends
    the open event and opens the next; a window in ``faults`` (the stuck guard's) fires the rule at once, and the
    first of a run of them ends an open event of another cause and opens its own."""
    out: list[Event] = []
    rule, opened, peak, count, opened_by = None, None, 0.0, 0, ""
    for i, score in enumerate(scores):
        if i == 0 or which[i] != which[i - 1]:
            if opened is not None:
                out.append(Event(opened, float(ends[i - 1]), peak, count, opened_by))
            rule, opened = AnomalyKofN(o.k, o.n, o.clear_k, escalate=o.escalate), None
        fault = faults is not None and bool(faults[i])
        anomalous = bool(score > threshold) or fault
        change = rule.observe(anomalous, float(ends[i]), float(score), fault=fault)
        if change is not None and change.firing:
            if opened is not None:  # an escalation or a sensor fault: the open event ends where the next begins
                out.append(Event(opened, float(ends[i]), peak, count, opened_by))
            opened, peak, count, opened_by = float(ends[i]), float(score), int(anomalous), str(rule.opened_by)
        elif opened is not None:
            peak, count = max(peak, float(score)), count + anomalous
            if change is not None:
                out.append(Event(opened, float(ends[i]), peak, count, opened_by))
                opened = None
    if opened is not None:
        out.append(Event(opened, float(ends[-1]), peak, count, opened_by))
    return out


def events_csv(events: list[Event], shifts: tuple[tuple[float, float], ...] = ()) -> bytes:
    """The events with their times on the log's clock (``shifts``: the summary's ``clock_shifts``), their duration
    as elapsed."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["event", "start", "end", "duration_s", "peak_score", "anomalous_windows", "opened_by"])
    for i, e in enumerate(events):
        start, end = series.logged(np.array([e.start, e.end]), shifts)
        w.writerow([i, iso(start), iso(end), f"{e.end - e.start:g}", f"{e.peak_score:.6g}", e.anomalous_windows,
                    e.opened_by])
    return buf.getvalue().encode()


def score_alarms(events: list[Event], intervals: list[tuple[float, float]], summary: dict) -> dict:
    """``score_events`` for ``detect``'s events against labelled intervals on the log's clock, judged on the data's
    (``series.on_data_clock``: across a clock set back, an interval is read as the widest it can mean), so that an
    alarm and an event on either side of the reset are not confused; the result's times are on the log's clock."""
    shifts = summary["clock_shifts"]
    moved = {series.on_data_clock(s, e, shifts): (s, e) for s, e in intervals}
    result = score_events([e.start for e in events], list(moved), span_seconds=summary["span_seconds"],
                          late_s=summary["window_s"], covered=summary["covered"])
    for key in ("detected", "missed", "unobserved"):
        for d in result[key]:
            d["start"], d["end"] = moved[(d["start"], d["end"])]
            if "alarm" in d:
                d["alarm"] = float(series.logged(np.array([d["alarm"]]), shifts)[0])
    return result


def labelled_events(labels: Path, series_csv: Path, *, time_format: str | None,
                    normal_class: str) -> list[tuple[float, float]]:
    """The (start, end) of every labelled interval of this series that is not normal."""
    from tinyml.data.intervals import applies_to, read_intervals
    return [(iv.start, iv.end) for iv in read_intervals(labels, time_format=time_format)
            if iv.label != normal_class and applies_to(iv, str(series_csv))]


def check_within(intervals: list[tuple[float, float]], summary: dict, labels: Path) -> None:
    """Refuse labelled intervals that miss the series altogether (a wrong file, day or time zone)."""
    for start, end in intervals:
        if end <= summary["first"] or start >= summary["last"]:
            raise InputError(f"{labels}: the interval {iso(start)} to {iso(end)} lies outside the series "
                             f"({iso(summary['first'])} to {iso(summary['last'])})",
                             "check the interval times and their time zone against the series' time column")
