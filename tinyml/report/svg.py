"""Inline SVG charts for the report: line charts, confusion matrices, histograms, usage bars and
the code generator's memory plan.

Plain strings built by pure functions, so the page needs no script or library at view time and
opens from a file or an e-mail attachment. Every label passes through ``esc``: class and board
names come from user data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
FONT = 'font-family="sans-serif" font-size="11"'


def esc(value: object) -> str:
    """Text for HTML or SVG, quotes included."""
    return escape(str(value), quote=True)


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _fmt(v: float) -> str:
    """A tick label: few digits, no trailing noise."""
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.1e}"
    return f"{v:.4g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= m * step)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


class Frame:
    """A plot area with linear scales, axes and tick labels."""

    def __init__(self, x: tuple[float, float], y: tuple[float, float], *, width: int = 420, height: int = 240,
                 left: int = 52, bottom: int = 34, top: int = 12, right: int = 12):
        self.x0, self.x1 = x if x[1] > x[0] else (x[0], x[0] + 1)
        self.y0, self.y1 = y if y[1] > y[0] else (y[0], y[0] + 1)
        self.width, self.height = width, height
        self.left, self.bottom, self.top, self.right = left, bottom, top, right

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * (self.width - self.left - self.right)

    def py(self, y: float) -> float:
        return self.height - self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.height - self.top - self.bottom)

    def axes(self, x_label: str, y_label: str) -> str:
        b, l_ = self.height - self.bottom, self.left
        parts = [f'<line x1="{l_}" y1="{b}" x2="{self.width - self.right}" y2="{b}" stroke="#444"/>',
                 f'<line x1="{l_}" y1="{self.top}" x2="{l_}" y2="{b}" stroke="#444"/>']
        for t in _ticks(self.x0, self.x1):
            x = self.px(t)
            parts.append(f'<line x1="{x:.1f}" y1="{b}" x2="{x:.1f}" y2="{b + 4}" stroke="#444"/>'
                         f'<text x="{x:.1f}" y="{b + 15}" text-anchor="middle">{esc(_fmt(t))}</text>')
        for t in _ticks(self.y0, self.y1):
            y = self.py(t)
            parts.append(f'<line x1="{l_ - 4}" y1="{y:.1f}" x2="{self.width - self.right}" y2="{y:.1f}" '
                         f'stroke="#ddd"/><text x="{l_ - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(_fmt(t))}</text>')
        parts.append(f'<text x="{(l_ + self.width - self.right) / 2:.0f}" y="{self.height - 4}" '
                     f'text-anchor="middle">{esc(x_label)}</text>')
        parts.append(f'<text transform="translate(12,{(self.top + b) / 2:.0f}) rotate(-90)" '
                     f'text-anchor="middle">{esc(y_label)}</text>')
        return "".join(parts)

    def svg(self, body: str, title: str) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" {FONT} role="img"><title>{esc(title)}</title>'
                f'{body}</svg>')


def _bounds(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    return (min(finite), max(finite)) if finite else (0.0, 1.0)


def legend(names: Sequence[str]) -> str:
    """An HTML legend whose colours match the series order."""
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{color(i)}"></i>{esc(n)}</span>' for i, n in enumerate(names)) + "</div>"


def line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, title: str, x_label: str,
               y_label: str, marker: tuple[float, str] | None = None, width: int = 420, height: int = 240,
               y_from_zero: bool = False) -> str:
    """Named (xs, ys) polylines; ``marker`` draws a labelled vertical line at an x."""
    xs = [x for _, sx, _ in series for x in sx]
    ys = [y for _, _, sy in series for y in sy]
    y0, y1 = _bounds(ys)
    frame = Frame(_bounds(xs), (min(0.0, y0) if y_from_zero else y0, y1), width=width, height=height)
    body = [frame.axes(x_label, y_label)]
    for i, (name, sx, sy) in enumerate(series):
        pts = " ".join(f"{frame.px(x):.1f},{frame.py(y):.1f}" for x, y in zip(sx, sy, strict=True)
                       if math.isfinite(y))
        body.append(f'<polyline fill="none" stroke="{color(i)}" stroke-width="1.5" points="{pts}">'
                    f'<title>{esc(name)}</title></polyline>')
    if marker is not None:
        x = frame.px(marker[0])
        right_half = x > (frame.left + width - frame.right) / 2  # label on the side with room
        body.append(f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.height - frame.bottom}" '
                    f'stroke="#000" stroke-dasharray="4 3"/><text x="{x - 4 if right_half else x + 4:.1f}" '
                    f'y="{frame.top + 10}" text-anchor="{"end" if right_half else "start"}">{esc(marker[1])}</text>')
    return frame.svg("".join(body), title)


def short(text: str, limit: int = 16) -> str:
    """A label cut to ``limit`` characters (the full text stays in the tooltip)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], *, title: str) -> str:
    """Counts in cells shaded by their share of the row (the true class); long class names are
    cut on the axes and shown whole in each cell's tooltip and in the table beside it."""
    full, labels = list(labels), [short(str(s)) for s in labels]
    n = len(matrix)
    cell = max(20, min(34, 240 // max(n, 1)))
    label_w = 8 + 7 * max((len(str(s)) for s in labels), default=4)
    left, top = label_w + 16, int(label_w * 0.87) + 20  # column labels rise at 60 degrees
    width, height = max(left + n * cell + int(label_w * 0.5) + 6, left + 80), top + n * cell + 6
    parts = [f'<text transform="translate(10,{top + n * cell / 2:.0f}) rotate(-90)" text-anchor="middle">true</text>',
             f'<text x="{left}" y="11">predicted</text>']
    for i, row in enumerate(matrix):
        total = max(sum(row), 1)
        y = top + i * cell
        parts.append(f'<text x="{left - 4}" y="{y + cell / 2 + 4:.0f}" text-anchor="end">{esc(labels[i])}</text>')
        for j, v in enumerate(row):
            share = v / total
            shade = f"rgba(31,119,180,{0.08 + 0.85 * share:.2f})" if v else "#fafafa"
            ink = "#fff" if share > 0.55 else "#000"
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{shade}">'
                         f'<title>{esc(full[i])} as {esc(full[j])}: {v}</title></rect>'
                         f'<text x="{left + j * cell + cell / 2:.0f}" y="{y + cell / 2 + 4:.0f}" '
                         f'text-anchor="middle" fill="{ink}" class="cm-cell">{v}</text>')
    for j, name in enumerate(labels):
        x = left + j * cell + cell / 2 + 4
        parts.append(f'<text transform="translate({x:.0f},{top - 4}) rotate(-60)">{esc(name)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" {FONT} role="img">'
            f'<title>{esc(title)}</title>{"".join(parts)}</svg>')


def histogram(edges: Sequence[float], counts: dict[str, Sequence[int]], *, title: str,
              threshold: float | None = None, width: int = 460, height: int = 240) -> str:
    """Per-class counts over shared bins as outlined steps, with the threshold as a red line."""
    top = max((c for cs in counts.values() for c in cs), default=1)
    frame = Frame((edges[0], edges[-1]), (0, top * 1.08), width=width, height=height)
    body = [frame.axes("score", "windows")]
    for i, (name, cs) in enumerate(counts.items()):
        pts = [f"{frame.px(edges[0]):.1f},{frame.py(0):.1f}"]
        for k, c in enumerate(cs):
            pts += [f"{frame.px(edges[k]):.1f},{frame.py(c):.1f}", f"{frame.px(edges[k + 1]):.1f},{frame.py(c):.1f}"]
        pts.append(f"{frame.px(edges[-1]):.1f},{frame.py(0):.1f}")
        body.append(f'<polyline fill="{color(i)}" fill-opacity="0.18" stroke="{color(i)}" stroke-width="1.4" '
                    f'points="{" ".join(pts)}"><title>{esc(name)}</title></polyline>')
    if threshold is not None and edges[0] <= threshold <= edges[-1]:
        x = frame.px(threshold)
        body.append(f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.height - frame.bottom}" '
                    f'stroke="#d62728" stroke-width="2"/><text x="{x + 4:.1f}" y="{frame.top + 10}" '
                    f'fill="#d62728">threshold {esc(_fmt(threshold))}</text>')
    return frame.svg("".join(body), title)


def usage_bar(used: float | None, limit: float | None, *, width: int = 140) -> str:
    """A bar of ``used`` against ``limit`` (red past it); empty when either is unknown."""
    if used is None or not limit:
        return ""
    share = used / limit
    fill = "#d62728" if share > 1 else "#2ca02c" if share < 0.8 else "#ff7f0e"
    w = max(1.0, min(share, 1.0) * (width - 2))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="12" role="img">'
            f'<title>{used:,.0f} of {limit:,.0f} ({share:.1%})</title>'
            f'<rect x="0.5" y="0.5" width="{width - 1}" height="11" fill="#f3f3f3" stroke="#999"/>'
            f'<rect x="1" y="1" width="{w:.1f}" height="10" fill="{fill}"/></svg>')


def memory_plan(tensors: Sequence[dict], arena_bytes: int, steps: int, *, width: int = 520, height: int = 240) -> str:
    """Each arena tensor as a box: when it lives (kernel calls ``first_call``..``last_call``) by where
    it lives (byte offset); ``steps`` is the number of calls."""
    arena = [t for t in tensors if t.get("place") == "arena"]
    frame = Frame((-0.5, max(steps, 1) - 0.5), (0, max(arena_bytes, 1)), width=width, height=height, left=60)
    body = [frame.axes("kernel call", "arena offset (bytes)")]
    for i, t in enumerate(arena):
        first, last = t["first_call"], t["last_call"]
        x0, x1 = frame.px(first - 0.45), frame.px(last + 0.45)
        y0, y1 = frame.py(t["offset"] + t["bytes"]), frame.py(t["offset"])
        body.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{max(x1 - x0, 1):.1f}" height="{max(y1 - y0, 1):.1f}" '
                    f'fill="{color(i)}" fill-opacity="0.55" stroke="{color(i)}"><title>tensor {t["index"]} '
                    f'{esc(t.get("name", ""))}: {t["bytes"]:,} B at offset {t["offset"]:,}, steps {first}-{last}'
                    f'</title></rect>')
    return frame.svg("".join(body), "memory plan")
