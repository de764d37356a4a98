"""Data stage figures: generator and import speed, feature cost on the host and on a Cortex-M4F.

Prints one table (``--markdown`` for docs/benchmarks.md):
- wall time of the default synthetic generators and of importing the real fan CSV;
- Python feature extraction per window (default vibration and temperature specs);
- the C features per window with host gcc -O2;
- the C features on a Cortex-M4F (QEMU mps2-an386, -icount: SysTick ticks x 40 =
  instructions), with flash/RAM of tinyml_features.o, after checking that the M4 output is
  bit-identical (float32) to the Python features for the same windows.

    .venv/bin/python benchmarks/data_features.py [--markdown]

``m4_figures`` is importable (tests/test_features_c.py checks the M4 output with it).
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinyml.data.features import (  # noqa: E402
    DEFAULT_TEMPERATURE_SPEC,
    DEFAULT_VIBRATION_SPEC,
    compute_features,
    feature_names,
)
from tinyml.data.features_c import features_c_config  # noqa: E402
from tinyml.data.synth import synth_temperature, synth_vibration  # noqa: E402
from tinyml.paths import shared_dir, template_dir  # noqa: E402

SRC = template_dir("common")
HARNESS = Path(__file__).resolve().parent / "features_m4"
M4F = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
PICOLIBC = ["--specs=picolibc.specs", "--crt0=semihost", "--oslib=semihost",
            "-Wl,--defsym=__flash=0x0", "-Wl,--defsym=__flash_size=4M",
            "-Wl,--defsym=__ram=0x20000000", "-Wl,--defsym=__ram_size=4M"]
QEMU = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native", "-icount", "shift=0,align=off,sleep=off"]
INSTRUCTIONS_PER_TICK = 40  # SysTick on mps2-an386 under -icount shift=0 (see shared notes)


def timed(fn, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr  # QEMU writes the semihosting console to stderr when not on a tty


def host_c_seconds_per_window(x: np.ndarray, fs: float, spec: list[dict], channels: list[str], tmp: Path) -> float:
    (tmp / "tinyml_features_config.h").write_text(features_c_config(spec, channels, fs, x.shape[1]))
    lib = tmp / "libfeatures.so"
    _run(["gcc", "-std=c99", "-O2", "-shared", "-fPIC", f"-I{tmp}", f"-I{SRC}", str(SRC / "tinyml_features.c"),
          "-o", str(lib), "-lm"])
    c = ctypes.CDLL(str(lib))
    out = np.zeros(len(feature_names(spec, channels)), np.float32)
    wins = [np.ascontiguousarray(w, np.float32) for w in x]
    t0 = time.perf_counter()
    for w in wins:
        c.tinyml_features_compute(w.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p))
    return (time.perf_counter() - t0) / len(wins)


def m4_figures(x: np.ndarray, fs: float, spec: list[dict], channels: list[str], tmp: Path) -> dict:
    """Build and run the M4 harness; check its features against Python bit for bit."""
    (tmp / "tinyml_features_config.h").write_text(features_c_config(spec, channels, fs, x.shape[1]))
    rows = ",\n".join("{" + ", ".join(float(v).hex() + "f" if v else "0.0f" for v in w.ravel()) + "}" for w in x)
    (tmp / "bench_windows.h").write_text(
        f"#define BENCH_N_WINDOWS {len(x)}u\n"
        f"static const float bench_windows[{len(x)}][{x.shape[1] * x.shape[2]}] = {{\n{rows}\n}};\n")
    obj, elf = tmp / "features.o", tmp / "bench.elf"
    common = ["arm-none-eabi-gcc", *M4F, "-std=c99", "-O2", f"-I{tmp}", f"-I{SRC}"]
    _run([*common, "-c", str(SRC / "tinyml_features.c"), "-o", str(obj)])
    _run([*common, *PICOLIBC, str(HARNESS / "main.c"), str(obj), "-lm", "-o", str(elf)])
    size = _run(["arm-none-eabi-size", "-A", str(obj)])
    sections = {ln.split()[0]: int(ln.split()[1]) for ln in size.splitlines() if ln.startswith(".")}
    flash = sum(v for k, v in sections.items() if k.startswith((".text", ".rodata")))
    ram = sum(v for k, v in sections.items() if k.startswith((".bss", ".data")))
    text = _run([*QEMU, "-kernel", str(elf)], timeout=600)
    got = [np.array([int(h, 16) for h in ln.split()[1:]], np.uint32).view(np.float32)
           for ln in text.splitlines() if ln.startswith("features")]
    want = compute_features(x, fs, spec)
    same = len(got) == len(x) and all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    ticks = int(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("ticks")))
    return {"instructions": ticks * INSTRUCTIONS_PER_TICK, "flash": flash, "ram": ram, "bit_identical": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    rows: list[tuple[str, str]] = []
    t, vib = timed(synth_vibration)
    rows.append(("synth vibration (default: 1200 x 256 x 3)", f"{t * 1000:.0f} ms"))
    t, temp = timed(synth_temperature)
    rows.append(("synth temperature (default: 600 x 128 x 1)", f"{t * 1000:.0f} ms"))
    fan = shared_dir() / "datasets/fan-imbalance/accelerometer.csv"
    if fan.exists():
        from tinyml.data.importer import ImportOptions, import_data
        opts = ImportOptions(columns=["x", "y", "z"], label_column="Sensor Configuration",
                             group_column="Rotation Speed Percentage", test_groups=["25", "45", "65", "85"],
                             fs=50.0, hop=128)
        t, ds = timed(lambda: import_data([fan], opts), repeat=1)
        rows.append((f"import fan CSV (153,000 rows -> {ds.n} windows)", f"{t * 1000:.0f} ms"))
    cases = [("vibration", vib, DEFAULT_VIBRATION_SPEC), ("temperature", temp, DEFAULT_TEMPERATURE_SPEC)]
    for name, ds, spec in cases:
        t, _ = timed(lambda ds=ds, spec=spec: compute_features(ds.x, ds.fs, spec))
        nf = len(feature_names(spec, ds.channels))
        rows.append((f"Python features, default {name} spec ({nf} values)", f"{t / ds.n * 1e6:.1f} µs/window"))
        with tempfile.TemporaryDirectory() as d:
            per = host_c_seconds_per_window(ds.x, ds.fs, spec, ds.channels, Path(d))
        rows.append((f"C features on host (gcc -O2), {name}", f"{per * 1e6:.1f} µs/window"))
        with tempfile.TemporaryDirectory() as d:
            m4 = m4_figures(ds.x[:3], ds.fs, spec, ds.channels, Path(d))
        rows.append((f"C features on Cortex-M4F (-O2, double in software), {name}",
                     f"{m4['instructions']:,} instructions/window (±40); .o flash {m4['flash']:,} B, "
                     f"RAM {m4['ram']:,} B; bit-identical to Python: {'yes' if m4['bit_identical'] else 'NO'}"))
    if args.markdown:
        print("| measurement | result |\n|---|---|")
        for k, v in rows:
            print(f"| {k} | {v} |")
    else:
        for k, v in rows:
            print(f"{k:<62} {v}")


if __name__ == "__main__":
    main()
