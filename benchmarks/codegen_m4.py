"""The native code generator against TFLM on a Cortex-M4F (QEMU mps2-an386).

For each reference model in the shared models folder, generate C with `tinyml codegen`,
build it into a bare-metal firmware (benchmarks/m4: own start-up, no libc start-up code,
picolibc only for memcpy/memset), run it under QEMU with an exact instruction-counting TCG
plugin, check its output against TFLM's for the fixed input, and print instructions per
inference, flash and RAM beside TFLM's figures from the models' README, as a markdown table
(the one in docs/benchmarks.md).

Instructions per inference are counted the way the README describes for TFLM: the plugin
snapshots its counter at each `bench_mark()`; the harness runs loops of N and M inferences
(each refilling the input) and the same loops without the inference, so
per inference = ((loop N - loop M) - (empty N - empty M)) / (N - M), exactly.

    .venv/bin/python benchmarks/codegen_m4.py [--models DIR] [--variants TARGET:OPT,...] [--keep DIR]

The functions are importable (tests/test_codegen_m4*.py use them).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "m4"
ROOT = HERE.parent
M4F_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
QEMU_BASE = ("qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
             "-semihosting-config", "enable=on,target=native",
             "-icount", "shift=0,align=off,sleep=off")
LOOP_LONG, LOOP_SHORT = 5, 2

# model stem -> TFLM figures from ../shared/models/README.md (beside the checkout) (flash B, RAM B, arena min B,
# stack B, instructions / inference), for the builds this benchmark compares with.
TFLM = {
    "vib_cnn_int8": {"ref": (54_600, 5_588, 4_736, 912, 1_083_631),
                     "cmsis_o2": (89_656, 5_832, 4_980, 1_492, 350_205)},
    "feat_ae_int8": {"ref": (28_912, 2_848, 2_308, 624, 21_607),
                     "cmsis_o2": (43_484, 2_968, 2_428, 984, 12_121)},
    "toycar_ad_int8": {"ref": (297_928, 3_240, 2_700, 648, 1_952_096),
                       "cmsis_o2": (312_500, 3_552, 3_012, 996, 582_903)},
}


TFLM_BUILDS = {"ref": "reference kernels, default flags", "cmsis_o2": "CMSIS-NN, -O2"}


class BenchError(RuntimeError):
    """A build, run or check of the benchmark failed; the message says which and why."""


@dataclass(frozen=True)
class Variant:
    """One way to build the generated code: codegen target and compiler optimisation."""

    target: str
    opt: str

    @property
    def label(self) -> str:
        return f"{self.target} {self.opt}"


@dataclass(frozen=True)
class RunResult:
    """What one boot printed: an output per compiled-in input, the stack high-water mark, and
    (with the plugin) the instruction count at each bench_mark()."""

    outputs: list[bytes]
    stack_bytes: int
    marks: list[int]

    @property
    def instructions_per_inference(self) -> int:
        if len(self.marks) < 5:
            raise BenchError(f"expected 5 instruction-count marks, got {len(self.marks)}")
        a, b, c, d = (self.marks[i + 1] - self.marks[i] for i in range(4))
        work = (a - b) - (c - d)
        if work % (LOOP_LONG - LOOP_SHORT):
            raise BenchError(f"inference loop counts {a}, {b}, {c}, {d} are not a whole number per inference")
        return work // (LOOP_LONG - LOOP_SHORT)


def _run(cmd: Sequence[str], what: str, cwd: Path | None = None, timeout: float = 300,
         both: bool = False) -> str:
    """Run a tool; its stdout (with both: stdout then stderr), or a BenchError saying what failed."""
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise BenchError(f"{what}: {cmd[0]} not found (install it: see APT_PACKAGES in the Makefile)") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise BenchError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc.stdout + proc.stderr if both else proc.stdout


def build_plugin(workdir: Path) -> Path:
    """Compile the instruction-counting QEMU plugin (its source is benchmarks/m4)."""
    lib = workdir / "libinsn_count.so"
    _run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(HARNESS / "insn_count_plugin.c")],
         "building the QEMU plugin")
    return lib


def generate(model: Path, out_dir: Path, prefix: str, target: str) -> None:
    """Run `tinyml codegen` as a user would."""
    cmd = [sys.executable, "-m", "tinyml", "codegen", str(model), "--out", str(out_dir),
           "--prefix", prefix, "--target", target]
    _run(cmd, f"tinyml codegen {model.name} --target {target}", cwd=ROOT)


def _c_array(rows: np.ndarray) -> str:
    lines = ["{" + ",".join(str(int(v)) for v in row) + "}" for row in rows]
    return "{\n" + ",\n".join(lines) + "\n}"


def write_glue(where: Path, prefix: str, inputs: np.ndarray, output_size: int) -> None:
    """bench_glue.h: what benchmarks/m4/main.c needs to know about the generated model."""
    rows = np.asarray(inputs, np.int8).reshape(len(inputs), -1)
    (where / "bench_glue.h").write_text(
        f'#include "{prefix}.h"\n'
        f"#define BENCH_INVOKE {prefix}_invoke\n"
        f"#define BENCH_INPUT_SIZE {rows.shape[1]}u\n"
        f"#define BENCH_OUTPUT_SIZE {output_size}u\n"
        f"#define BENCH_N_INPUTS {rows.shape[0]}u\n"
        f"static const int8_t bench_inputs[{rows.shape[0]}][{rows.shape[1]}] = {_c_array(rows)};\n")


def weights_and_biases_bytes(elf: Path, prefix: str) -> int:
    """Flash bytes of the generated weight and bias arrays (`PREFIX_weightsN`, `PREFIX_biasN`),
    as laid out for the target (the DSP target stores weights widened to int16)."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(weights|bias)\d+$")
    total = 0
    for line in _run(["arm-none-eabi-nm", "-S", str(elf)], "arm-none-eabi-nm").splitlines():
        parts = line.split()
        if len(parts) == 4 and pattern.match(parts[3]):
            total += int(parts[1], 16)
    return total


def build_firmware(gen_dir: Path, opt: str, timing: bool, elf: Path) -> None:
    """Compile the harness with every generated C file for the M4F."""
    sources = sorted(str(p) for p in gen_dir.glob("*.c"))
    if not sources:
        raise BenchError(f"tinyml codegen wrote no .c files into {gen_dir}")
    cmd = ["arm-none-eabi-gcc", *M4F_FLAGS, opt, "-std=c99", "-ffunction-sections", "-fdata-sections",
           "-Wall", "-Wextra", "--specs=picolibc.specs", "-nostartfiles", "-T", str(HARNESS / "link.ld"),
           "-Wl,--gc-sections", f"-I{gen_dir}", f"-I{HARNESS}",
           *(["-DBENCH_TIMING", f"-DBENCH_LOOP_LONG={LOOP_LONG}u", f"-DBENCH_LOOP_SHORT={LOOP_SHORT}u"]
             if timing else []),
           str(HARNESS / "main.c"), str(HARNESS / "startup.c"), *sources, "-o", str(elf)]
    _run(cmd, f"building {elf.name} ({opt})")


def section_sizes(elf: Path) -> dict[str, int]:
    out = _run(["arm-none-eabi-size", "-A", str(elf)], "arm-none-eabi-size")
    sizes: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def symbol_address(elf: Path, name: str) -> int:
    for line in _run(["arm-none-eabi-nm", str(elf)], "arm-none-eabi-nm").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16) & ~1
    raise BenchError(f"symbol {name} not found in {elf}")


def run_firmware(elf: Path, plugin: Path | None, timeout: float = 120) -> RunResult:
    """Boot the firmware on QEMU; parse its outputs, stack high-water and (with the plugin) marks."""
    cmd = list(QEMU_BASE)
    counts = elf.with_suffix(".counts")
    if plugin is not None:
        mark = symbol_address(elf, "bench_mark")
        cmd += ["-plugin", f"{plugin},mark={mark:#x},out={counts}"]
    # QEMU prints the guest's semihosting console on stderr
    text = _run([*cmd, "-kernel", str(elf)], f"running {elf.name} on QEMU mps2-an386", timeout=timeout,
                both=True)
    outputs, stack = [], -1
    for line in text.splitlines():
        if line.startswith("out "):
            outputs.append(bytes.fromhex(line[4:].strip()))
        elif line.startswith("stack "):
            stack = int(line.split()[1])
    if stack < 0:
        raise BenchError(f"{elf.name} did not finish: {text.strip()[-500:]}")
    marks = []
    if plugin is not None:
        marks = [int(x) for x in counts.read_text().split() if x.isdigit()]
    return RunResult(outputs, stack, marks)


@dataclass(frozen=True)
class Measurement:
    """One row of the table: a model built one way, measured on QEMU."""

    model: str
    variant: Variant
    instructions: int
    flash: int
    weights: int
    static_ram: int
    stack: int
    arena: int
    output_ok: bool


def arena_bytes(gen_dir: Path, prefix: str) -> int:
    """The planned arena, from the NAME.codegen.json report that `tinyml codegen` writes."""
    report = gen_dir / f"{prefix}.codegen.json"
    try:
        return int(json.loads(report.read_text())["arena_bytes"])
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"cannot read the arena size from {report}: {exc}") from exc


def measure(model: Path, variant: Variant, plugin: Path, workdir: Path) -> Measurement:
    prefix = model.stem.replace("_int8", "")
    gen_dir = workdir / f"{prefix}-{variant.target}-{variant.opt.strip('-')}"
    gen_dir.mkdir(parents=True, exist_ok=True)
    generate(model, gen_dir, prefix, variant.target)
    fixed_input = np.frombuffer(model.with_suffix(".input.bin").read_bytes(), np.int8)
    expected = model.with_suffix(".tflm_output.bin").read_bytes()
    write_glue(gen_dir, prefix, fixed_input[None, :], len(expected))
    elf = gen_dir / "bench.elf"
    build_firmware(gen_dir, variant.opt, True, elf)
    result = run_firmware(elf, plugin)
    sizes = section_sizes(elf)
    return Measurement(
        model=model.stem.replace("_int8", ""), variant=variant,
        instructions=result.instructions_per_inference,
        flash=sizes.get(".text", 0) + sizes.get(".rodata", 0) + sizes.get(".data", 0),
        weights=weights_and_biases_bytes(elf, prefix),
        static_ram=sizes.get(".data", 0) + sizes.get(".bss", 0),
        stack=result.stack_bytes, arena=arena_bytes(gen_dir, prefix),
        output_ok=result.outputs == [expected])


def _ratio(ours: int, theirs: int) -> str:
    return f"{ours / theirs:.2f}"


def table(rows: list[Measurement], models_dir: Path) -> str:
    """A markdown table: each figure beside TFLM's (reference kernels for the portable build,
    CMSIS-NN -O2 for the DSP build) and the ratio. RAM is static data (.data + .bss, arena
    included) plus the stack high-water mark, for both."""
    head = ("| model | build | output = TFLM | TFLM build | instructions / inf | TFLM | ratio | flash B "
            "| weights+biases B | flash − weights B | TFLM flash − model B | ratio | RAM B (static + stack) "
            "| TFLM RAM B (static + stack) | ratio | arena B | TFLM arena min B |\n|"
            + "---|" * 2 + ":-:|---|" + "---:|" * 13)
    lines = [head]
    for m in rows:
        key = "cmsis_o2" if "dsp" in m.variant.target else "ref"
        t_flash, t_ram, t_arena, t_stack, t_insn = TFLM[f"{m.model}_int8"][key]
        model_size = (models_dir / f"{m.model}_int8.tflite").stat().st_size
        ram, t_ram_total = m.static_ram + m.stack, t_ram + t_stack
        lines.append(
            f"| {m.model} | {m.variant.label} | {'yes' if m.output_ok else '**NO**'} | {TFLM_BUILDS[key]} "
            f"| {m.instructions:,} | {t_insn:,} | {_ratio(m.instructions, t_insn)} "
            f"| {m.flash:,} | {m.weights:,} | {m.flash - m.weights:,} | {t_flash - model_size:,} "
            f"| {_ratio(m.flash - m.weights, t_flash - model_size)} "
            f"| {ram:,} ({m.static_ram:,} + {m.stack:,}) | {t_ram_total:,} ({t_ram:,} + {t_stack:,}) "
            f"| {_ratio(ram, t_ram_total)} | {m.arena:,} | {t_arena:,} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models")
    parser.add_argument("--variants", default="portable:-Os,cortex-m4-dsp:-O2",
                        help="comma-separated TARGET:OPT pairs")
    parser.add_argument("--keep", type=Path, help="keep the generated code and firmware here")
    args = parser.parse_args(argv)
    variants = [Variant(*v.split(":", 1)) for v in args.variants.split(",")]
    models = sorted(p for p in args.models.glob("*_int8.tflite") if f"{p.stem}" in TFLM)
    if not models:
        print(f"no reference models in {args.models}", file=sys.stderr)
        return 2
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="codegen_m4-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        plugin = build_plugin(workdir)
        rows = [measure(model, variant, plugin, workdir) for model in models for variant in variants]
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(rows, args.models))
    return 0 if all(r.output_ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
