"""`tinyml report`: one self-contained HTML page of a run's facts (data, training, float vs
int8 vs boards, ops and memory, preprocessing), drawn as inline SVG by this package."""

from __future__ import annotations

from pathlib import Path

from tinyml.outputs import check_out, write_atomic
from tinyml.report.facts import gather
from tinyml.report.page import render

REPORT_NAME = "report.html"


def write_report(run: Path, out: Path, *, validations: list[Path] | None = None) -> Path:
    """Gather the facts of ``run`` (a training run or a project's OUT) and write the page atomically."""
    out = check_out(out)
    facts = gather(Path(run), list(validations or []))
    title = f"tinyml report: {facts.model['model']} {facts.model['task']}"
    return write_atomic(out, render(facts, title))
