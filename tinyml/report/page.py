"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

Each section is a function of the facts returning HTML. Numbers that tests compare with the
JSON artifacts carry a ``data-key`` attribute naming where they come from.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from tinyml.quantize import SCORERS, int8_key, scored_by
from tinyml.report import svg
from tinyml.report.facts import Facts, precision_recall
from tinyml.report.svg import esc

CSS = """
body{font-family:sans-serif;margin:24px auto;max-width:1280px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
h3{font-size:14px;margin:8px 0}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}
.card td.l{max-width:160px;overflow-wrap:anywhere}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px}
.legend span{margin-right:12px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.note{color:#8a5a00;font-size:13px}.muted{color:#777;font-size:12px}
"""


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def num(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def count(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _cell(text: str, key: str | None = None, left: bool = False) -> str:
    attrs = (f' data-key="{esc(key)}"' if key else "") + (' class="l"' if left else "")
    return f"<td{attrs}>{text}</td>"


def _table(head: Sequence[str], rows: Sequence[str], table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    return (f"<table{ident}><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
            + "".join(f"<tr>{r}</tr>" for r in rows) + "</table>")


def labels(facts: Facts) -> list[str]:
    """What the rows of a confusion matrix are: classes, or normal/anomaly."""
    from tinyml.train.fit import ANOMALY_LABELS

    return list(facts.model["classes"]) if facts.model["task"] == "classifier" else list(ANOMALY_LABELS)


# ---- sections --------------------------------------------------------------------------------

def summary(facts: Facts) -> str:
    m = facts.model
    metric = "AUC" if m["task"] == "anomaly" else "accuracy"
    headline = facts.metrics.get("auc") if m["task"] == "anomaly" else facts.metrics.get("accuracy")
    rows = [("model", esc(m["model"]), "model"), ("task", esc(m["task"]), "task"),
            ("classes", esc(", ".join(m["classes"])), "classes"),
            ("parameters", count(m.get("parameters")), "model.parameters"),
            (f"float {metric} ({esc(facts.metrics.get('evaluated_on', 'test'))} split)", num(headline), "float.metric")]
    if m["task"] == "anomaly":
        rows.append(("threshold", num(m.get("threshold"), 6), "model.threshold"))
    body = "".join(f'<tr><th class="l">{k}</th>{_cell(v, key, left=True)}</tr>' for k, v, key in rows)
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in facts.notes)
    return f'<section id="summary"><table>{body}</table>{notes}</section>'


def dataset(facts: Facts) -> str:
    d = facts.dataset
    if d is None:
        return '<section id="dataset"><h2>Dataset</h2><p class="note">dataset not available</p></section>'
    head = ["class", "train", "val", "test"]
    rows = [_cell(esc(c), left=True) + "".join(_cell(str(d["per_split"][s][c]), f"dataset.{s}.{c}")
                                               for s in ("train", "val", "test")) for c in d["classes"]]
    totals = _cell("<b>all</b>", left=True) + "".join(
        _cell(str(sum(d["per_split"][s].values())), f"dataset.{s}") for s in ("train", "val", "test"))
    info = (f'<p>{d["windows"]:,} windows of {d["window"]} samples at <span data-key="dataset.fs">{d["fs"]:g}</span> Hz '
            f'({d["window"] / d["fs"]:.3g} s), channels {esc(", ".join(d["channels"]))}, kind {esc(d["kind"])}; '
            f'<span class="muted">{esc(d["path"])}</span></p>')
    examples = []
    for name, chans in d["examples"].items():
        series = [(ch, [k * d["example_step_s"] for k in range(len(vals))], vals)
                  for ch, vals in zip(d["channels"], chans, strict=True)]
        examples.append(f'<div class="card"><h3>{esc(name)}</h3>'
                        + svg.line_chart(series, title=f"example window: {name}", x_label="seconds", y_label="value",
                                         width=300, height=170) + svg.legend(d["channels"]) + "</div>")
    spectra = [(name, d["spectrum_hz"], vals) for name, vals in d["spectra"].items()]
    spectrum = svg.line_chart(spectra, title="mean spectrum per class", x_label="Hz", y_label="power (dB)",
                              width=620, height=280)
    return (f'<section id="dataset"><h2>Dataset</h2>{info}{_table(head, [*rows, totals], "splits")}'
            f'<h3>An example window per class (training split)</h3><div class="row">{"".join(examples)}</div>'
            f'<h3>Mean power spectrum per class (all windows, channels averaged)</h3>'
            f'{spectrum}{svg.legend([s[0] for s in spectra])}</section>')


def training(facts: Facts) -> str:
    h = facts.history
    if h is None:
        return '<section id="training"><h2>Training</h2><p class="note">no training history recorded</p></section>'
    epochs, kept = h["epochs"], h["kept_epoch"]
    charts = []
    for metric in ("loss", "accuracy"):
        if metric not in epochs:
            continue
        xs = list(range(1, len(epochs[metric]) + 1))
        series = [("train", xs, epochs[metric])]
        if f"val_{metric}" in epochs:
            series.append(("validation", xs, epochs[f"val_{metric}"]))
        charts.append('<div class="card">' + svg.line_chart(series, title=metric, x_label="epoch", y_label=metric,
                                                            marker=(kept, f"kept: epoch {kept}"))
                      + svg.legend([s[0] for s in series]) + "</div>")
    return (f'<section id="training"><h2>Training</h2><p>{len(epochs["loss"])} epochs run; the weights of epoch '
            f'<b data-key="history.kept_epoch">{kept}</b> were kept (early stopping on {esc(h["monitor"])}).</p>'
            f'<div class="row">{"".join(charts)}</div></section>')


def _confusion_card(title: str, key: str, matrix: list[list[int]], names: list[str],
                    per_class: dict[str, dict[str, float]] | None) -> str:
    pr = precision_recall(matrix)
    rows = []
    for i, name in enumerate(names):
        if per_class is not None and name in per_class:
            p, r = per_class[name]["precision"], per_class[name]["recall"]
        else:
            p, r = pr[i]
        rows.append(_cell(esc(name), left=True) + _cell(pct(p), f"{key}.precision.{name}")
                    + _cell(pct(r), f"{key}.recall.{name}"))
    return (f'<div class="card" data-matrix="{esc(key)}"><h3>{esc(title)}</h3>'
            + svg.confusion(matrix, names, title=title) + _table(["class", "precision", "recall"], rows) + "</div>")


def confusions(facts: Facts) -> str:
    names = labels(facts)
    cards = [_confusion_card(f"float ({facts.metrics.get('evaluated_on', 'test')} split)", "float",
                             facts.metrics["confusion_matrix"], names, facts.metrics.get("per_class"))]
    q = facts.quantization
    if q is not None:
        device = q[int8_key(q)]
        cards.append(_confusion_card(f"int8, {SCORERS[scored_by(q)]}", "int8", device["confusion_matrix"],
                                     names, device.get("per_class")))
    for i, v in enumerate(facts.validations):
        if v.get("confusion_matrix"):
            cards.append(_confusion_card(f"device: {v['board']} ({v['inputs']} inputs)", f"device{i}",
                                         v["confusion_matrix"], names, None))
        else:
            cards.append(f'<div class="card"><h3>device: {esc(v["board"])}</h3><p class="note">no confusion '
                         "matrix in this validation report (no labels, or made by an older tinyml)</p></div>")
    return f'<section id="confusion"><h2>Confusion matrices</h2><div class="row">{"".join(cards)}</div></section>'


def anomaly(facts: Facts) -> str:
    if facts.model["task"] != "anomaly":
        return ""
    cards = []
    sources = [("float", facts.metrics)]
    if facts.quantization is not None:
        q = facts.quantization
        sources.append((f"int8 ({SCORERS[scored_by(q)]})", q[int8_key(q)]))
    for name, m in sources:
        hist = m.get("score_histogram")
        key = "float" if name == "float" else "int8"
        auc = f'AUC <b data-key="{key}.auc">{num(m.get("auc"))}</b>, threshold {num(m.get("threshold"), 6)}'
        if hist is None:
            cards.append(f'<div class="card"><h3>{name}</h3><p>{auc}</p><p class="note">no score histogram '
                         "recorded (trained by an older tinyml)</p></div>")
            continue
        chart = svg.histogram(hist["edges"], hist["counts"], title=f"{name} scores per class",
                              threshold=m.get("threshold"))
        cards.append(f'<div class="card"><h3>{name} anomaly scores per class</h3><p>{auc}</p>{chart}'
                     f'{svg.legend(list(hist["counts"]))}</div>')
    return (f'<section id="anomaly"><h2>Anomaly scores</h2><p>Reconstruction error per window of the '
            f'{esc(facts.metrics.get("evaluated_on", "test"))} split; a window above the threshold is an anomaly. '
            f'The last bin holds every larger score.</p><div class="row">{"".join(cards)}</div></section>')


def _latency(v: dict[str, Any]) -> str:
    for key, unit in (("instructions_per_inference", "instructions"), ("cycles_per_inference", "cycles"),
                      ("latency_us_per_inference", "µs"), ("ticks_per_inference", "ticks")):
        if v.get(key) is not None:
            return f'<span data-key="latency">{v[key]:,.0f}</span> {unit}'
    return "-"


def _sized(used: int | None, limit: int | None, key: str) -> str:
    text = f'<span data-key="{key}">{count(used)}</span>'
    if limit:
        text += f' <span class="muted">of {limit:,}</span><br>' + svg.usage_bar(used, limit)
    return text


def comparison(facts: Facts) -> str:
    q, plan = facts.quantization, facts.plan
    anomaly_task = facts.model["task"] == "anomaly"
    head = ["", "accuracy", *(["AUC"] if anomaly_task else []), "mismatching bytes", "per inference", "flash (B)",
            "RAM (B)", "arena (B)"]

    def row(name: str, key: str, m: dict[str, Any], flash: int | None = None, arena: int | None = None) -> str:
        cells = [_cell(esc(name), left=True), _cell(pct(m.get("accuracy")), f"{key}.accuracy")]
        if anomaly_task:
            cells.append(_cell(num(m.get("auc")), f"{key}.auc"))
        cells += [_cell("reference" if key == "float" else "-"), _cell("-"),
                  _cell(count(flash), f"{key}.flash"), _cell("-"), _cell(count(arena), f"{key}.arena")]
        return "".join(cells)

    rows = [row("float (Keras)", "float", facts.metrics)]
    if q is not None:
        rows.append(row("int8 (LiteRT)", "int8_litert", q["int8_litert"], q.get("tflite_bytes")))
        rows.append(row(f"int8 ({SCORERS[scored_by(q)]})", int8_key(q), q[int8_key(q)], q.get("tflite_bytes"),
                        plan["arena_bytes"] if plan else None))
    for i, v in enumerate(facts.validations):
        limits = v.get("limits") or {}
        cells = [_cell(f'{esc(v["board"])} <span class="muted">{esc(v["runtime"])}, {v["inputs"]} inputs</span>',
                       left=True), _cell(pct(v.get("accuracy")), f"device{i}.accuracy")]
        if anomaly_task:
            cells.append(_cell("-"))
        cells += [_cell(f'<span data-key="device{i}.mismatches">{v["mismatches"]:,}</span> of '
                        f'{v["output_bytes_compared"]:,}'),
                  _cell(_latency(v)),
                  _cell(_sized(v.get("flash_bytes"), limits.get("flash_bytes"), f"device{i}.flash")),
                  _cell(_sized(v.get("ram_bytes"), limits.get("ram_bytes"), f"device{i}.ram")),
                  _cell(_sized(v.get("arena_bytes"), limits.get("ram_bytes"), f"device{i}.arena"))]
        rows.append("".join(cells))
    note = ("Flash of the int8 rows is the .tflite size; arena is the generated C's planned arena. Board rows "
            "are measured on the device: output bytes compared with the TFLM host reference, flash and static "
            "RAM of the firmware, bars against the board's limits.")
    if not facts.validations:
        note += " No board validated yet: `tinyml validate --report` writes the report this table reads."
    return (f'<section id="compare"><h2>Float, int8 and the boards</h2>{_table(head, rows, "comparison")}'
            f'<p class="muted">{esc(note)}</p></section>')


def model_ops(facts: Facts) -> str:
    if facts.ops is None:
        return ""
    rows = [_cell(str(o["index"])) + _cell(esc(o["op"]), left=True) + _cell(esc("x".join(map(str, o["output_shape"]))))
            + _cell(f'{o["macs"]:,}', f'op{o["index"]}.macs') + _cell(f'{o["parameters"]:,}', f'op{o["index"]}.params')
            for o in facts.ops]
    total = (_cell("") + _cell("<b>total</b>", left=True) + _cell("")
             + _cell(f'{sum(o["macs"] for o in facts.ops):,}', "ops.macs")
             + _cell(f'{sum(o["parameters"] for o in facts.ops):,}', "ops.params"))
    plan = facts.plan
    if plan is None:
        plan_html = '<p class="note">no memory plan (see the notes above)</p>'
    else:
        plan_html = (f'<p>The generated C ({esc(plan["target"])} kernels) needs an arena of '
                     f'<b data-key="plan.arena">{plan["arena_bytes"]:,}</b> bytes and '
                     f'<span data-key="plan.weights">{plan["weight_bytes"]:,}</span> bytes of weights. Each box is '
                     "a tensor in the arena: its width is the kernel calls it lives through, its height its "
                     "bytes; boxes never overlap.</p>"
                     + svg.memory_plan(plan["tensors"], plan["arena_bytes"], len(plan["calls"]))
                     + '<p class="muted">calls: ' + esc(", ".join(f"{i}: {op}" for i, op in enumerate(plan["calls"])))
                     + "</p>")
    return (f'<section id="ops"><h2>Operators and memory</h2>'
            f'{_table(["#", "op", "output", "MACs", "parameters"], [*rows, total], "ops-table")}{plan_html}</section>')


def _feature_words(spec: dict[str, Any]) -> str:
    name = spec["name"]
    extra = {k: v for k, v in spec.items() if k != "name"}
    words = {"rms": "root mean square", "peak": "peak absolute value", "crest": "crest factor (peak / RMS)",
             "kurtosis": "kurtosis", "skewness": "skewness", "mean": "mean", "std": "standard deviation",
             "min": "minimum", "max": "maximum", "rate_of_change": "rate of change",
             "diff_max": "largest step between samples", "flat_fraction": "share of flat steps",
             "flat_run": "longest flat streak",
             "curvature": "curvature",
             "fft_bands": "energy in {bands} equal FFT bands" + (" (log)" if extra.get("log") else ""),
             "envelope_bands": "energy of the envelope spectrum in {bands} bands" + (" (log)" if extra.get("log") else ""),
             "rolling_mean": "rolling mean of width {width} at {points} points"}
    if name == "bearing":
        return _bearing_words(extra)
    text = words.get(name, name)
    try:
        return text.format(**extra)
    except (KeyError, IndexError, ValueError):
        return f"{name} {extra}"


def _bearing_words(p: dict[str, Any]) -> str:
    band, rng = p.get("band") or [0, 0], p.get("rpm_range") or [0, 0]
    speed = (f"a fixed {p['rpm']:.0f} rpm" if p.get("rpm") else
             f"estimated on the device from the 1x peak in {rng[0]:.0f}-{rng[1]:.0f} rpm")
    return (f"bearing {p.get('bearing') or ''}: envelope lines at the shaft 1x, BPFO, BPFI and BSF "
            f"({p.get('harmonics')} harmonics) and the BPFI sidebands over their noise floor, the envelope's "
            f"kurtosis in {band[0]:.0f}-{band[1]:.0f} Hz, the shaft's 1x-3x shares and the unbalance; speed {speed}")


def preprocessing(facts: Facts) -> str:
    p = facts.preprocess
    if p is None:
        return ""
    chans = ", ".join(p.get("channels", []))
    mode = p.get("mode")
    if mode == "per_window":
        text = (f"Each window of {p['window']} samples per channel ({esc(chans)}) is standardised by its own mean "
                "and standard deviation, so the model sees the waveform's shape; the log of each channel's level "
                "(standard deviation), standardised with constants from the training split, is added as extra "
                "channels constant in time.")
    elif mode == "raw":
        text = (f"Each channel ({esc(chans)}) is standardised with the mean and standard deviation of the training "
                f"split; the model sees the {p['window']}-sample window.")
    elif mode == "features":
        items = "".join(f"<li>{esc(_feature_words(s))}</li>" for s in p.get("feature_spec") or [])
        text = (f"Per window of {p['window']} samples at {p['fs']:g} Hz, per channel ({esc(chans)}), these features "
                f"are computed (the same C runs on the device), then each is standardised with training-split "
                f"constants:<ul>{items}</ul>")
    else:
        text = f"mode {esc(mode)}"
    return f'<section id="preprocess"><h2>Preprocessing</h2><p>{text}</p></section>'


def render(facts: Facts, title: str) -> str:
    made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(f(facts) for f in (summary, dataset, training, confusions, anomaly, comparison, model_ops,
                                      preprocessing))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
            f'img-src data:">'
            f'<title>{esc(title)}</title><style>{CSS}</style></head><body><h1>{esc(title)}</h1>'
            f'<p class="muted">tinyml report of {esc(facts.run_dir)}, made {made}</p>{body}</body></html>\n')
