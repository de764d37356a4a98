"""Validation throughput on an emulated board (default qemu-mps2-an386): N inputs through the
device protocol, compared with the TFLM host reference. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/validate_throughput.py [--inputs 500] [--repeat 3] [--model PATH]
        [--board NAME_OR_TOML] [--target portable|cortex-m4-dsp]

The machine is shared: each model is validated ``--repeat`` times on one build, and the
median is printed with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from tinyml.firmware.boards import load_board
from tinyml.firmware.build import ELF_NAME, build_project
from tinyml.firmware.render import read_manifest, render_project
from tinyml.hil import prepare_inputs, validate
from tinyml.paths import shared_dir
from tinyml.rundir import int8_model


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--board", default="qemu-mps2-an386")
    parser.add_argument("--target", default=None, help="codegen target (default: the board's)")
    parser.add_argument("--model", type=Path, action="append",
                        help="int8 .tflite (repeatable; default: the shared feat_ae and vib_cnn)")
    args = parser.parse_args()
    models = args.model or [shared_dir() / "models" / "feat_ae_int8.tflite",
                            shared_dir() / "models" / "vib_cnn_int8.tflite"]
    board = load_board(args.board)
    print(f"board {board.name} ({args.board}), {args.inputs} inputs per model, median of {args.repeat} runs")
    print(f"{'model':<22} {'kernels':<14} {'build s':>8} {'validate s':>11} {'runs s':<22} {'inputs/s':>9} "
          f"{'ms/input':>9} {'instr/inference':>16} {'mismatches':>11} {'load before':>15} {'load after':>15}")
    for path in models:
        model = int8_model(path)
        tests = prepare_inputs(model, None, None, args.inputs)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            render_project(board, model, Path(tmp) / "fw", target=args.target)
            size = build_project(Path(tmp) / "fw")
            build_s = time.perf_counter() - t0
            kernels = read_manifest(Path(tmp) / "fw")["codegen_target"]
            load_before, runs = _load(), []
            for _ in range(args.repeat):
                t1 = time.perf_counter()
                report = validate(board, model, tests, elf=Path(tmp) / "fw" / ELF_NAME,
                                  sizes=(size.flash_bytes, size.ram_bytes))
                runs.append(time.perf_counter() - t1)  # includes the TFLM host reference (~0.1 s)
            load_after = _load()
        median = statistics.median(runs)
        print(f"{path.name:<22} {kernels:<14} {build_s:>8.2f} {median:>11.2f} "
              f"{' '.join(f'{r:.1f}' for r in runs):<22} {args.inputs / median:>9.1f} "
              f"{1000 * median / args.inputs:>9.2f} {report.instructions_per_inference or 0:>16,.0f} "
              f"{report.mismatches:>11} {load_before:>15} {load_after:>15}")


if __name__ == "__main__":
    main()
