"""A 1,000,000-row timestamped CSV: `tinyml data import`'s reader against pandas read_csv + to_datetime.

Each contender runs in its own child process (so peak RSS is its own), several times, in alternation;
the script prints median seconds and peak RSS. pandas is needed only here (the ``bench`` extra).

    python benchmarks/series_import.py [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TINYML = """
import resource, sys, time
from pathlib import Path
from tinyml.data.io import read_csv
t = time.perf_counter()
recs = read_csv(Path(sys.argv[1]), ["value"], "timestamp", None, None, None)
dt = time.perf_counter() - t
assert sum(r.signal.shape[0] for r in recs) == int(sys.argv[2])
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

PANDAS = """
import resource, sys, time
import pandas as pd
t = time.perf_counter()
df = pd.read_csv(sys.argv[1])
ts = pd.to_datetime(df["timestamp"], format="ISO8601")
dt = time.perf_counter() - t
assert len(ts) == int(sys.argv[2])
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_log(path: Path, rows: int) -> None:
    """5-minute temperature samples from 2013-12-02 21:15, written as loggers do: `YYYY-MM-DD HH:MM:SS,value`."""
    times = np.datetime64("2013-12-02T21:15:00") + np.arange(rows) * np.timedelta64(300, "s")
    text = np.char.replace(times.astype(str), "T", " ")
    values = np.char.mod("%.2f", 70 + 5 * np.sin(np.arange(rows) / 288 * 2 * np.pi))
    with open(path, "w") as fh:
        fh.write("timestamp,value\n")
        fh.write("\n".join(np.char.add(np.char.add(text, ","), values).tolist()) + "\n")


def run(code: str, path: Path, rows: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", code, str(path), str(rows)], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), float(out[1]) / 1024  # seconds, MiB (ru_maxrss is KiB on Linux)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        write_log(path, a.rows)
        results: dict[str, list[tuple[float, float]]] = {"tinyml": [], "pandas": []}
        for _ in range(a.repeats):
            results["tinyml"].append(run(TINYML, path, a.rows))
            results["pandas"].append(run(PANDAS, path, a.rows))
    med = {k: (statistics.median(s for s, _ in v), max(m for _, m in v)) for k, v in results.items()}
    print(f"{a.rows} rows, {a.repeats} runs each (median seconds, peak RSS)")
    for k, (s, m) in med.items():
        print(f"  {k:<7} {s:7.2f} s  {m:7.0f} MiB")
    print(f"  ratio tinyml/pandas: {med['tinyml'][0] / med['pandas'][0]:.2f}")


if __name__ == "__main__":
    main()
