"""Start-up time of `tinyml --help` and every command's --help, and proof that none of
them imports TensorFlow, Keras or matplotlib.

    .venv/bin/python benchmarks/cli_startup.py [--runs 7] [--markdown]

Each command runs in a fresh interpreter (like a user's shell); the figures are the median
wall time and the median CPU time (user + system of the child, which moves less with the
machine's load) of --runs runs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "matplotlib")
sys.path.insert(0, str(ROOT))
from tinyml.cli import COMMANDS as CLI_COMMANDS  # noqa: E402 - light: the command map only

COMMANDS = [[]] + [[name] for name in sorted(CLI_COMMANDS)] + [["export", "c-array"], ["data", "synth"]]
PROBE = ("import sys\nsys.argv = ['tinyml', *sys.argv[1:], '--help']\nfrom tinyml.cli import main\n"
         "try:\n    main()\nexcept SystemExit:\n    pass\n"
         f"print('HEAVY:', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n")


def heavy_modules(args: list[str]) -> list[str]:
    """Heavy packages imported while printing `tinyml ARGS --help`."""
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("HEAVY:"))
    return eval(line.partition(":")[2])  # noqa: S307 - our own printed list literal


def timings(args: list[str], runs: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `tinyml ARGS --help`."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tinyml", *args, "--help"], cwd=ROOT, capture_output=True, check=True)
        wall.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    rows = [(" ".join(["tinyml", *args, "--help"]), *timings(args, a.runs), heavy_modules(args)) for args in COMMANDS]
    if a.markdown:
        print("| command | median wall time | median CPU time | heavy modules imported |\n|---|---:|---:|---|")
        for cmd, wall, cpu, heavy in rows:
            print(f"| `{cmd}` | {wall * 1000:.0f} ms | {cpu * 1000:.0f} ms | {', '.join(heavy) or 'none'} |")
    else:
        for cmd, wall, cpu, heavy in rows:
            print(f"{cmd:40s} wall {wall * 1000:5.0f} ms  cpu {cpu * 1000:5.0f} ms  heavy: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
