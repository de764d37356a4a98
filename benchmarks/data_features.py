"""Data stage figures: generator and import speed, feature cost on the host and on a Cortex-M4F.

Prints one table (``--markdown`` for docs/benchmarks.md):
- wall time of the default synthetic generators and of importing the real fan CSV;
- Python feature extraction per window (default vibration and temperature specs);
- the C features per window with host gcc -O2;
- the C features on a Cortex-M4F (QEMU mps2-an386, -icount: SysTick ticks x 40 =
  instructions), with flash/RAM of tinyml_features.o, after checking that the M4 output is
  bit-identical (float32) to the Python features for the same windows;
- the whole preprocessing into the model's int8 input on the Cortex-M4F, double against
  integer in the same run (default vibration spec, temperature spec, per_window on 256x3
  windows), with flash/RAM of the objects, after checking the int8 inputs against Python bit
  for bit (``m4_preprocess_figures``).

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


def c_float(v: float) -> str:
    """A float32 value as an exact C constant (infinities and NaN through GCC builtins)."""
    v = float(v)
    if v != v:
        return "__builtin_nanf(\"\")"
    if v in (float("inf"), float("-inf")):
        return ("-" if v < 0 else "") + "__builtin_inff()"
    return v.hex() + "f" if v else "0.0f"


def m4_preprocess_figures(x: np.ndarray, expected: np.ndarray, sources: list[Path], headers: dict[str, str],
                          include: str, call: str, tmp: Path) -> dict:
    """Build ``sources`` (with the generated ``headers``) into the preprocessing harness, run it on
    the M4F and check its int8 inputs against ``expected`` [N, bytes]; instructions for one window."""
    for name, text in headers.items():
        (tmp / name).write_text(text)
    rows = ",\n".join("{" + ", ".join(map(c_float, w.ravel())) + "}" for w in x)
    (tmp / "bench_windows.h").write_text(
        f'#include "{include}"\n#define BENCH_PREPROCESS {call}\n#define BENCH_INPUT_BYTES {expected.shape[1]}u\n'
        f"#define BENCH_N_WINDOWS {len(x)}u\n"
        f"static const float bench_windows[{len(x)}][{x.shape[1] * x.shape[2]}] = {{\n{rows}\n}};\n")
    common = ["arm-none-eabi-gcc", *M4F, "-std=gnu11", "-O2", "-ffp-contract=off", f"-I{tmp}", f"-I{SRC}"]
    objs = []
    for src in sources:
        objs.append(tmp / (src.stem + ".o"))
        _run([*common, "-c", str(src), "-o", str(objs[-1])])
    elf = tmp / "bench.elf"
    _run([*common, *PICOLIBC, str(HARNESS / "preprocess_main.c"), *map(str, objs), "-lm", "-o", str(elf)])
    flash = ram = 0
    for obj in objs:
        size = _run(["arm-none-eabi-size", "-A", str(obj)])
        sections = {ln.split()[0]: int(ln.split()[1]) for ln in size.splitlines() if ln.startswith(".")}
        flash += sum(v for k, v in sections.items() if k.startswith((".text", ".rodata")))
        ram += sum(v for k, v in sections.items() if k.startswith((".bss", ".data")))
    text = _run([*QEMU, "-kernel", str(elf)], timeout=600)
    got = np.array([np.frombuffer(bytes.fromhex(ln.split()[1]), np.int8) for ln in text.splitlines()
                    if ln.startswith("input")])
    ticks = int(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("ticks")))
    return {"instructions": ticks * INSTRUCTIONS_PER_TICK, "flash": flash, "ram": ram,
            "bit_identical": got.shape == expected.shape and np.array_equal(got, expected)}


def _input_quantization(values: np.ndarray) -> tuple[float, int]:
    """An int8 scale and zero point covering ``values`` as a converter would pick them."""
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = (hi - lo) / 255.0
    return scale, int(round(-128 - lo / scale))


def preprocess_cases(vib, temp, tmp: Path) -> list[tuple[str, str, dict]]:
    """(case, arithmetic, figures) for the feature specs and per_window, double and integer."""
    import jinja2

    from tinyml.data import features_int as fi
    from tinyml.data.features import quantize_features, validate_spec
    from tinyml.data.features_int_c import int_config_header
    from tinyml.preprocess import MIN_STD, Preprocess

    out = []
    n = 3
    for name, ds, spec in (("vibration", vib, DEFAULT_VIBRATION_SPEC), ("temperature", temp, DEFAULT_TEMPERATURE_SPEC)):
        spec = validate_spec(spec)
        # double: the float64 C features, then the float standardisation and quantization
        f64 = compute_features(ds.x, ds.fs, spec)
        mean, std = f64.mean(0), np.maximum(f64.std(0), 1e-6)
        scale, zp = _input_quantization((f64 - mean) / std)
        d = tmp / f"{name}-double"
        d.mkdir()
        (d / "glue.c").write_text(
            '#include "tinyml_features.h"\n#include "tinyml_features_config.h"\n#include "bench_consts.h"\n'
            "void bench_double(const float *w, int8_t *in)\n{\n    static float f[TINYML_FEATURES_COUNT];\n"
            "    tinyml_features_compute(w, f);\n"
            "    tinyml_features_quantize(f, bench_mean, bench_std, TINYML_FEATURES_COUNT, BENCH_SCALE, BENCH_ZP, in);\n}\n")
        consts = (f"static const float bench_mean[] = {{ {', '.join(float(v).hex() for v in mean)} }};\n"
                  f"static const float bench_std[] = {{ {', '.join(float(v).hex() for v in std)} }};\n"
                  f"#define BENCH_SCALE {float(np.float32(scale)).hex()}f\n#define BENCH_ZP {zp}\n")
        want = quantize_features(f64[:n], mean, std, scale, zp)
        out.append((name, "double", m4_preprocess_figures(
            ds.x[:n], want, [SRC / "tinyml_features.c", d / "glue.c"],
            {"tinyml_features_config.h": features_c_config(spec, ds.channels, ds.fs, ds.x.shape[1]),
             "bench_consts.h": consts, "bench_glue.h": "#include <stdint.h>\n"
             "void bench_double(const float *w, int8_t *in);\n"}, "bench_glue.h", "bench_double", d)))
        # integer: the same spec in fixed point, straight into the int8 input
        shifts = fi.sample_shifts(ds.x)
        real = fi.real_features(fi.to_samples(ds.x, shifts), ds.fs, spec, shifts)
        mean, std = real.mean(0), np.maximum(real.std(0), 1e-6)
        scale, zp = _input_quantization((real - mean) / std)
        want = fi.features_int8(ds.x[:n], ds.fs, spec, shifts, mean, std, scale, zp)
        header = int_config_header(mode="features", window=ds.x.shape[1], channels=ds.channels, fs=ds.fs,
                                   sample_shift=shifts, mean=mean, std=std, in_scale=scale, zero_point=zp, spec=spec)
        d = tmp / f"{name}-integer"
        d.mkdir()
        out.append((name, "integer", m4_preprocess_figures(
            ds.x[:n], want, [SRC / "tinyml_features_int.c"], {"tinyml_features_int_config.h": header},
            "tinyml_features_int.h", "tinyml_ifeat_preprocess", d)))
    # per_window on the vibration windows (cnn1d): the run template's double C, then the integer C
    x = vib.x
    pre = Preprocess.fit(x, "per_window", vib.channels, vib.fs, arithmetic="float64")
    scale, zp = 8.0 / 255.0, 0
    width = x.shape[1] * 2 * x.shape[2]
    want = quantize_features(pre.apply(x[:n]).reshape(n, -1), np.zeros(width), np.ones(width), scale, zp)
    ctx = {"mode": "per_window", "integer": False, "window": x.shape[1], "channels": vib.channels,
           "min_std": repr(MIN_STD), "mean": [repr(float(v)) for v in pre.mean], "std": [repr(float(v)) for v in pre.std]}
    template = (template_dir("common") / "tinyml_run.c.j2").read_text()
    d = tmp / "per_window-double"
    d.mkdir()
    (d / "tinyml_run.c").write_text(jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(template).render(
        pre=ctx, standalone=True, model={"in_scale_c": float(np.float32(scale)).hex() + "f", "in_zp": zp}))
    out.append(("per_window", "double", m4_preprocess_figures(
        x[:n], want, [d / "tinyml_run.c"], {}, "tinyml_run.h", "tinyml_preprocess", d)))
    pre = Preprocess.fit(x, "per_window", vib.channels, vib.fs, arithmetic="integer")
    want = pre.int8_inputs(x[:n], scale, zp)
    header = int_config_header(mode="per_window", window=x.shape[1], channels=vib.channels, fs=vib.fs,
                               sample_shift=pre.sample_shift, mean=pre.mean, std=pre.std, in_scale=scale, zero_point=zp)
    d = tmp / "per_window-integer"
    d.mkdir()
    out.append(("per_window", "integer", m4_preprocess_figures(
        x[:n], want, [SRC / "tinyml_features_int.c"], {"tinyml_features_int_config.h": header},
        "tinyml_features_int.h", "tinyml_ifeat_preprocess", d)))
    return out


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
    with tempfile.TemporaryDirectory() as d:
        cases = preprocess_cases(vib, temp, Path(d))
    by = {(c, a): f for c, a, f in cases}
    for case, arithmetic, f in cases:
        ratio = ""
        if arithmetic == "integer" and (case, "double") in by:
            ratio = f"; {by[(case, 'double')]['instructions'] / f['instructions']:.1f}x fewer than double"
        rows.append((f"{case} preprocessing into the int8 input on Cortex-M4F, {arithmetic}",
                     f"{f['instructions']:,} instructions/window (±40){ratio}; .o flash {f['flash']:,} B, "
                     f"RAM {f['ram']:,} B; int8 inputs bit-identical to Python: {'yes' if f['bit_identical'] else 'NO'}"))
    print_rows(rows, markdown=args.markdown, width=62)


def print_rows(rows: list[tuple[str, str]], *, markdown: bool, width: int) -> None:
    """Print (measurement, result) rows as a Markdown table for docs/benchmarks.md, or as aligned text."""
    if markdown:
        print("| measurement | result |\n|---|---|")
        for k, v in rows:
            print(f"| {k} | {v} |")
    else:
        for k, v in rows:
            print(f"{k:<{width}} {v}")


if __name__ == "__main__":
    main()
