"""Validation throughput on the emulated Cortex-M4F (qemu-mps2-an386): N inputs through the
device protocol, compared with the TFLM host reference. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/validate_throughput.py [--inputs 500] [--model PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tinyml.firmware.boards import load_board
from tinyml.firmware.build import ELF_NAME, build_project
from tinyml.firmware.render import render_project, resolve_model
from tinyml.hil import host_reference, prepare_inputs, validate
from tinyml.paths import shared_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=500)
    parser.add_argument("--board", default="qemu-mps2-an386")
    parser.add_argument("--model", type=Path, action="append",
                        help="int8 .tflite (repeatable; default: the shared feat_ae and vib_cnn)")
    args = parser.parse_args()
    models = args.model or [shared_dir() / "models" / "feat_ae_int8.tflite",
                            shared_dir() / "models" / "vib_cnn_int8.tflite"]
    board = load_board(args.board)
    print(f"board {board.name}, {args.inputs} inputs per model")
    print(f"{'model':<22} {'build s':>8} {'reference s':>12} {'validate s':>11} {'inputs/s':>9} "
          f"{'ms/input':>9} {'instr/inference':>16} {'mismatches':>11}")
    for path in models:
        model = resolve_model(path)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            render_project(board, model, Path(tmp) / "fw")
            size = build_project(Path(tmp) / "fw")
            t1 = time.perf_counter()
            tests = prepare_inputs(model, None, None, args.inputs)
            host_reference(model, tests.x)
            t2 = time.perf_counter()
            report = validate(board, model, tests, elf=Path(tmp) / "fw" / ELF_NAME,
                              sizes=(size.flash_bytes, size.ram_bytes))
            t3 = time.perf_counter()
        # validate() recomputes the reference; the device part is the rest
        device_s = (t3 - t2) - (t2 - t1)
        print(f"{path.name:<22} {t1 - t0:>8.2f} {t2 - t1:>12.2f} {t3 - t2:>11.2f} {args.inputs / device_s:>9.1f} "
              f"{1000 * device_s / args.inputs:>9.2f} {report.instructions_per_inference or 0:>16,.0f} "
              f"{report.mismatches:>11}")


if __name__ == "__main__":
    main()
