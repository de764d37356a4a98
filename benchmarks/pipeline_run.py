"""Wall time of `tinyml run` on an example project: every stage the first time, then the
no-change run that skips them all (the cost of fingerprinting).

    .venv/bin/python benchmarks/pipeline_run.py [examples/fan/tinyml.toml ...] [--markdown]

The run directory is a temporary folder, so the examples' own folders stay untouched.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = [ROOT / "examples" / "vibration" / "tinyml.toml", ROOT / "examples" / "fan" / "tinyml.toml"]


def timed_runs(path: Path) -> tuple[list, float, float]:
    """The first run's stage results, its wall time and the second (all-skip) run's wall time."""
    from tinyml.project.config import read_project
    from tinyml.project.runner import run_project

    with tempfile.TemporaryDirectory(prefix="tinyml-bench-") as tmp:
        project = dataclasses.replace(read_project(path), out=Path(tmp))
        start = time.monotonic()
        results = run_project(project)
        first = time.monotonic() - start
        start = time.monotonic()
        again = run_project(project)
        second = time.monotonic() - start
    if any(r.status != "skip" for r in again):
        raise SystemExit(f"{path}: the unchanged re-run ran {[r.name for r in again if r.status != 'skip']}")
    return results, first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", nargs="*", type=Path, default=DEFAULT)
    parser.add_argument("--markdown", action="store_true", help="Print one markdown table row per stage.")
    args = parser.parse_args()
    for path in args.projects:
        results, first, second = timed_runs(path)
        name = path.parent.name
        for r in results:
            if args.markdown:
                print(f"| {name} | {r.name} | {r.seconds:.1f} | {r.figure} |")
            else:
                print(f"{name:<10} {r.name:<9} {r.seconds:7.1f} s  {r.figure}")
        total = f"all stages {first:.1f} s; unchanged re-run (all skipped) {second:.2f} s"
        print(f"| {name} | total | {first:.1f} | unchanged re-run: {second:.2f} s |" if args.markdown
              else f"{name:<10} {total}")


if __name__ == "__main__":
    main()
