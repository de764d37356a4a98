"""`tinyml run`: the stages in order, each skipped when its fingerprint and outputs are unchanged."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tinyml import progress
from tinyml.errors import InputError
from tinyml.project.config import Project
from tinyml.project.stages import STAGES, Stage, enabled
from tinyml.project.state import exclusive, fingerprint, load_state, save_state

# statuses: ran, skip (unchanged), run (dry run: would run), failed, - (outside --from/--until)


@dataclass
class StageResult:
    name: str
    status: str
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    figure: str = ""


def select(stages: list[Stage], start: str | None, until: str | None) -> list[str]:
    """The names of the stages between --from and --until (inclusive)."""
    names = [s.name for s in stages]
    for option, name in (("--from", start), ("--until", until)):
        if name is None or name in names:
            continue
        if name in STAGES:
            raise InputError(f"{option} {name}: stage {name!r} is not configured in this project",
                             f"add a [{name}] section (configured stages: {', '.join(names)})")
        raise InputError(f"{option} {name}: no such stage", f"stages are: {', '.join(STAGES)}")
    first = names.index(start) if start else 0
    last = names.index(until) if until else len(names) - 1
    if first > last:
        raise InputError(f"--from {start} comes after --until {until}", f"stages run in order: {', '.join(names)}")
    return names[first:last + 1]


def run_project(p: Project, start: str | None = None, until: str | None = None, force: bool = False,
                dry_run: bool = False, report: Callable[[StageResult], None] = lambda r: None,
                note: Callable[[str], None] = lambda s: None) -> list[StageResult]:
    """Run (or with ``dry_run`` only plan) the project's stages; ``report`` sees each result as it lands.

    A stage runs when ``force`` is set, when it never succeeded, when its fingerprint changed
    or when an output is missing. Its record is removed before it starts and written after it
    succeeds, so a failing stage runs again next time. Errors propagate as they are.
    """
    stages = enabled(p)
    chosen = select(stages, start, until)
    if dry_run:
        return _run_stages(p, stages, chosen, force, True, report, note)
    with exclusive(p.out):
        return _run_stages(p, stages, chosen, force, False, report, note)


def _run_stages(p: Project, stages: list[Stage], chosen: list[str], force: bool, dry_run: bool,
                report: Callable[[StageResult], None], note: Callable[[str], None]) -> list[StageResult]:
    records, problem = load_state(p.out)
    if problem:
        note(problem)
    results: list[StageResult] = []
    upstream_will_run = False
    for stage in stages:
        if stage.name not in chosen:
            result = StageResult(stage.name, "-")
        elif dry_run and upstream_will_run:
            result = StageResult(stage.name, "run")
        else:
            try:
                result = _one(p, stage, records, force, dry_run)
            except BaseException:
                report(StageResult(stage.name, "failed"))
                raise
            upstream_will_run = upstream_will_run or result.status == "run"
        results.append(result)
        report(result)
    return results


def _one(p: Project, stage: Stage, records: dict[str, Any], force: bool, dry_run: bool) -> StageResult:
    try:
        fp = fingerprint(stage.settings(p), stage.inputs(p), p.base)
    except InputError:
        if dry_run:  # an input an earlier stage has not made yet
            return StageResult(stage.name, "run")
        raise
    previous = records.get(stage.name)
    if (not force and isinstance(previous, dict) and previous.get("fingerprint") == fp
            and all(path.exists() for path in stage.outputs(p))):
        figures = previous.get("figures", {})
        return StageResult(stage.name, "skip", 0.0, figures, _figure(stage, figures))
    if dry_run:
        return StageResult(stage.name, "run")
    records.pop(stage.name, None)
    save_state(p.out, records)
    progress.stage(f"{stage.name}: starting")  # on stderr; the stage's own progress follows
    start = time.monotonic()
    figures = stage.run(p)
    seconds = time.monotonic() - start
    records[stage.name] = {"fingerprint": fp, "figures": figures, "seconds": round(seconds, 3)}
    save_state(p.out, records)
    return StageResult(stage.name, "ran", seconds, figures, _figure(stage, figures))


def _figure(stage: Stage, figures: dict[str, Any]) -> str:
    try:
        return stage.figure(figures)
    except (KeyError, TypeError, ValueError):  # a record from another tinyml version
        return ""
