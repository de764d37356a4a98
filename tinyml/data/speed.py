"""The machine behind imported recordings: its shaft speed and its bearing.

The speed comes one way: ``--rpm VALUE`` (every recording), ``--rpm GROUP=RPM,...`` (per
recording, keyed by its group: the --group-column value, the file name or its stem),
``--rpm estimate`` (each recording's 1x peak, ``bearings.estimate_shaft_hz``, searched in
``--rpm-range``) or ``--rpm-column`` (a CSV column, resampled with the signal and averaged per
window). ``--rpm-range`` also records the machine's operating range, which the ``bearing``
feature's on-device speed estimate searches; ``--bearing`` records the bearing's geometry.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tinyml.data.bearings import estimate_shaft_hz, load_bearing
from tinyml.data.io import Recording
from tinyml.errors import InputError

ESTIMATE = "estimate"


def _positive(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def check_options(o) -> None:  # noqa: ANN001 - an ImportOptions (importer.py imports this module)
    """Reject contradictory or bad speed options before any file is read."""
    if o.rpm is not None and o.rpm_column:
        raise InputError("the shaft speed is given twice (--rpm and --rpm-column)", "give one of them")
    if isinstance(o.rpm, str) and o.rpm != ESTIMATE:
        raise InputError(f"--rpm {o.rpm!r} is not a speed", "give rpm like 1797, per recording like a=1797,b=1772, "
                         "or `estimate` with --rpm-range")
    if isinstance(o.rpm, dict) and (not o.rpm or not all(_positive(v) for v in o.rpm.values())):
        raise InputError("--rpm per recording needs a positive rpm for each", "e.g. --rpm run1=1797,run2=1772")
    if o.rpm is not None and not isinstance(o.rpm, (str, dict)) and not _positive(o.rpm):
        raise InputError(f"--rpm must be a positive number, got {o.rpm!r}", "e.g. --rpm 1797")
    if o.rpm_range is not None and not (len(o.rpm_range) == 2 and all(_positive(v) for v in o.rpm_range)
                                        and o.rpm_range[0] < o.rpm_range[1]):
        raise InputError(f"--rpm-range must be LOW:HIGH with 0 < LOW < HIGH, got {o.rpm_range}", "e.g. --rpm-range 600:1800")
    if o.rpm == ESTIMATE and o.rpm_range is None:
        raise InputError("--rpm estimate needs the range to search", "give the machine's speeds, e.g. --rpm-range 600:1800")
    if o.bearing:
        load_bearing(o.bearing)


def _given(r: Recording, table: dict[str, float]) -> float:
    group = str(r.group)
    for key in (group, Path(group).name, Path(group).stem):
        if key in table:
            return float(table[key])
    raise InputError(f"--rpm gives no speed for recording {Path(group).name!r}",
                     f"add {Path(group).stem}=RPM (given for: {', '.join(sorted(table))})")


def recording_speeds(recs: list[Recording], o, fs: float) -> bool:  # noqa: ANN001 - ImportOptions
    """Set each recording's ``speed`` (rpm per sample); False when no speed was asked for.
    A --rpm-column leaves the recording's channels here (after resampling, so it was resampled too)."""
    for r in recs:
        if o.rpm_column:
            if o.rpm_column not in r.channels:
                raise InputError(f"{r.source}: no column {o.rpm_column!r} for --rpm-column",
                                 f"columns read: {', '.join(r.channels)}")
            i = r.channels.index(o.rpm_column)
            r.speed = r.signal[:, i].copy()
            r.signal = np.delete(r.signal, i, axis=1)
            r.channels = [c for c in r.channels if c != o.rpm_column]
            if not r.channels:
                raise InputError(f"{r.source}: only the speed column is left as a signal", "name the signals with --columns")
            if not np.all(r.speed > 0):
                raise InputError(f"{r.source}: --rpm-column {o.rpm_column!r} holds speeds that are not positive",
                                 "a stopped machine has no shaft speed: cut those rows out")
        elif o.rpm == ESTIMATE:
            lo, hi = o.rpm_range
            r.speed = np.full(r.signal.shape[0], 60.0 * estimate_shaft_hz(r.signal, fs, lo / 60.0, hi / 60.0))
        elif isinstance(o.rpm, dict):
            r.speed = np.full(r.signal.shape[0], _given(r, o.rpm))
        elif o.rpm is not None:
            r.speed = np.full(r.signal.shape[0], float(o.rpm))
    return bool(o.rpm_column or o.rpm is not None)


def machine_meta(o, recs: list[Recording]) -> dict:  # noqa: ANN001 - ImportOptions
    """What the dataset records about the machine: bearing, operating speed range, estimated speeds."""
    out: dict = {}
    if o.bearing:
        out["bearing"] = load_bearing(o.bearing).to_json()
    if o.rpm_range:
        out["rpm_range"] = [float(v) for v in o.rpm_range]
    if o.rpm == ESTIMATE:
        out["rpm_estimated"] = {str(r.group): round(float(r.speed[0]), 2) for r in recs if r.speed is not None}
    return out
