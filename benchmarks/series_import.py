"""A 1,000,000-row timestamped CSV: `tinyml data import` against pandas read_csv + to_datetime.

Each contender runs in its own child process (so peak RSS is its own), several times, in alternation:
the `tinyml data import` command as a user runs it (windows cut, split, .npz written), the same import in
process with a timer around the work, and pandas' read_csv + to_datetime with a timer around it. The script
prints median seconds (of the whole process and of the timed work) and peak RSS. pandas is needed only
here (the ``bench`` extra).

    python benchmarks/series_import.py [--rows 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LIBRARY = """
import sys, time
from tinyml.data.importer import ImportOptions, import_data
t = time.perf_counter()
ds = import_data([sys.argv[1]], ImportOptions(time_column="timestamp", label="normal", normal_class="normal",
                                              kind="temperature", window=24))
ds.save(sys.argv[1] + ".lib.npz")
print(time.perf_counter() - t)
assert ds.n == int(sys.argv[2]) // 24
"""

PANDAS = """
import sys, time
import pandas as pd
t = time.perf_counter()
df = pd.read_csv(sys.argv[1])
ts = pd.to_datetime(df["timestamp"], format="ISO8601")
print(time.perf_counter() - t)
assert len(ts) == int(sys.argv[2])
"""


def write_log(path: Path, rows: int) -> None:
    """5-minute temperature samples from 2013-12-02 21:15, written as loggers do: `YYYY-MM-DD HH:MM:SS,value`
    (values of 1 to 3 integer digits, so the lines are not all one length)."""
    times = np.datetime64("2013-12-02T21:15:00") + np.arange(rows) * np.timedelta64(300, "s")
    text = np.char.replace(times.astype(str), "T", " ")
    values = np.char.mod("%.2f", 55 + 50 * np.sin(np.arange(rows) / 288 * 2 * np.pi)
                         + np.random.default_rng(0).normal(0, 1, rows))
    with open(path, "w") as fh:
        fh.write("timestamp,value\n")
        fh.write("\n".join(np.char.add(np.char.add(text, ","), values).tolist()) + "\n")


def command(path: Path, rows: int) -> list[str]:
    """`tinyml data import` as a user runs it (a fresh interpreter: start-up, the import, the .npz written)."""
    out = path.with_suffix(".cli.npz")
    out.unlink(missing_ok=True)
    return [sys.executable, "-m", "tinyml", "data", "import", str(path), "--time-column", "timestamp",
            "--label", "normal", "--normal-class", "normal", "--kind", "temperature", "--window", "24",
            "--out", str(out)]


def run(argv: list[str]) -> tuple[float, float, float | None]:
    """Wall seconds of the whole process, its peak RSS in MiB, and the seconds it timed itself (if it prints them)."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv[:4]} failed with {proc.returncode}")
    inner = out.split()[0] if out.split() else ""
    return wall, usage.ru_maxrss / 1024, float(inner) if inner.replace(".", "", 1).isdigit() else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write-log", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.write_log:
        return write_log(a.write_log, a.rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        # in a child: this process stays small, and a child's peak RSS counts its parent's pages until exec
        subprocess.run([sys.executable, __file__, "--rows", str(a.rows), "--write-log", str(path)], check=True)
        contenders = {"tinyml data import (command)": lambda: command(path, a.rows),
                      "tinyml import_data + save (in process)": lambda: [sys.executable, "-c", LIBRARY, str(path),
                                                                         str(a.rows)],
                      "pandas read_csv + to_datetime": lambda: [sys.executable, "-c", PANDAS, str(path),
                                                                str(a.rows)]}
        results: dict[str, list[tuple[float, float, float | None]]] = {k: [] for k in contenders}
        for _ in range(a.repeats):  # alternating, so load changes hit every contender alike
            for name, argv in contenders.items():
                results[name].append(run(argv()))
    print(f"{a.rows} rows, {a.repeats} alternating runs each: median wall time of the process, median time "
          "the process measured itself around the work (imports excluded), peak RSS")
    med = {}
    for name, rs in results.items():
        wall = statistics.median(r[0] for r in rs)
        inner = statistics.median(r[2] for r in rs) if rs[0][2] is not None else None
        med[name] = (wall, inner)
        print(f"  {name:<40} process {wall:6.2f} s   work {'' if inner is None else f'{inner:6.2f} s':>8}   "
              f"peak RSS {max(r[1] for r in rs):5.0f} MiB")
    cli, lib, pd_ = (med[k] for k in contenders)
    print(f"  ratio command (whole process) / pandas (whole process): {cli[0] / pd_[0]:.2f}")
    print(f"  ratio import_data + save / pandas read_csv + to_datetime (work only): {lib[1] / pd_[1]:.2f}")


if __name__ == "__main__":
    main()
