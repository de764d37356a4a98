"""What is in a dataset file: classes, shapes, rate, splits and per-channel statistics."""

from __future__ import annotations

import numpy as np

from tinyml.data.dataset import SPLITS, Dataset


def summarize(ds: Dataset) -> dict:
    """A JSON-ready description of ``ds`` (what `tinyml data info --json` prints)."""
    counts = {c: int(np.count_nonzero(ds.y == i)) for i, c in enumerate(ds.classes)}
    if np.any(ds.y == -1):
        counts["(unlabeled)"] = int(np.count_nonzero(ds.y == -1))
    splits = {}
    for name, code in SPLITS.items():
        mask = ds.split == code
        splits[name] = {"windows": int(mask.sum()), "groups": int(len(np.unique(ds.groups[mask]))),
                        "per_class": {c: int(np.count_nonzero(mask & (ds.y == i))) for i, c in enumerate(ds.classes)}}
    x = ds.x.astype(np.float64)
    stats = {ch: {"mean": float(x[..., i].mean()), "std": float(x[..., i].std()),
                  "min": float(x[..., i].min()), "max": float(x[..., i].max())}
             for i, ch in enumerate(ds.channels)}
    return {"kind": ds.kind, "normal_class": ds.normal_class, "windows": ds.n, "window": int(ds.x.shape[1]),
            "channels": list(ds.channels), "shape": list(ds.x.shape), "fs": ds.fs,
            "window_seconds": ds.x.shape[1] / ds.fs, "classes": counts, "groups": int(len(np.unique(ds.groups))),
            "splits": splits, "channel_stats": stats, "meta": ds.meta,
            "group_columns": {name: dict(zip(*[a.tolist() for a in np.unique(v, return_counts=True)], strict=True))
                              for name, v in ds.columns.items()},
            "machine": _machine(ds)}


def _machine(ds: Dataset) -> dict:
    """Shaft speed and bearing, when the dataset records them (``tinyml/data/speed.py``)."""
    out: dict = {}
    if ds.rpm is not None:
        known = ds.rpm[np.isfinite(ds.rpm)]
        out["rpm"] = {"windows": int(known.size), "min": float(known.min()) if known.size else None,
                      "max": float(known.max()) if known.size else None}
    if isinstance(ds.meta.get("bearing"), dict):
        b = ds.meta["bearing"]
        out["bearing"] = {"name": b.get("name"), "orders": b.get("orders")}
    if ds.meta.get("rpm_range"):
        out["rpm_range"] = ds.meta["rpm_range"]
    return out


def format_summary(info: dict) -> str:
    """The human-readable form of ``summarize``."""
    lines = [f"kind: {info['kind']}" + (f" (normal class: {info['normal_class']})" if info["normal_class"] else ""),
             f"windows: {info['windows']} x {info['window']} samples x {len(info['channels'])} channels "
             f"(shape {tuple(info['shape'])}), {info['window_seconds']:g} s each",
             f"sampling rate: {info['fs']:g} Hz", f"groups (recordings): {info['groups']}", "classes:"]
    lines += [f"  {name}: {n}" for name, n in info["classes"].items()]
    lines.append("splits:")
    for name, s in info["splits"].items():
        per = ", ".join(f"{c} {n}" for c, n in s["per_class"].items())
        lines.append(f"  {name}: {s['windows']} windows, {s['groups']} groups ({per})")
    for name, levels in info["group_columns"].items():
        lines.append(f"group column {name}: " + ", ".join(f"{k} ({n} windows)" for k, n in levels.items()))
    lines.append("channels:      mean        std        min        max")
    for ch, s in info["channel_stats"].items():
        lines.append(f"  {ch:<8} {s['mean']:>10.4g} {s['std']:>10.4g} {s['min']:>10.4g} {s['max']:>10.4g}")
    m = info.get("machine", {})
    if m.get("rpm"):
        r = m["rpm"]
        lines.append(f"shaft speed: {r['windows']} windows known" + (
            f", {r['min']:.0f}..{r['max']:.0f} rpm" if r["windows"] else ""))
    if m.get("rpm_range"):
        lines.append(f"operating range: {m['rpm_range'][0]:.0f}..{m['rpm_range'][1]:.0f} rpm")
    if m.get("bearing"):
        orders = ", ".join(f"{k.upper()} {v:.4g}" for k, v in (m["bearing"]["orders"] or {}).items())
        lines.append(f"bearing: {m['bearing']['name']} ({orders} x shaft speed)")
    return "\n".join(lines + _recordings(info["meta"].get("recordings", [])))


def _recordings(recs: list[dict]) -> list[str]:
    """Each timestamped recording's span, the gap before it and the clock faults found in its rows."""
    if not recs:
        return []
    gaps = sum(r["gap_before_s"] is not None for r in recs)
    faults = sum(len(r["clock_faults"]) for r in recs)
    lines = [f"recordings (time column): {len(recs)}, {gaps} split at gaps, {faults} clock fault(s)"]
    for r in recs:
        where = f"{r['source']} lines {r['first_line']}-{r['last_line']}"
        text = f"  {r['start']} to {r['end']}: {r['samples']} samples ({where}"
        text += f", label {r['label']})" if r.get("label") is not None else ")"
        if r["gap_before_s"] is not None:
            text += f", after a gap of {r['gap_before_s']:g} s"
        if r["resampled"]:
            text += ", resampled onto the grid"
        if r.get("retimed_s"):
            text += f", times after its clock faults moved {r['retimed_s']:g} s later (--on-backwards continue)"
        lines.append(text)
        lines += [f"    clock fault: {f['kind']} at line {f['line']}"
                  + (f" ({f['seconds']:g} s back)" if f["kind"] == "backwards" else "") for f in r["clock_faults"]]
    return lines
