"""Latency of the on-device preprocessing beside the model on every emulated board.

    .venv/bin/python benchmarks/preprocess_boards.py [--markdown]

Trains two small models on the synthetic vibration set (256x3 windows): an ``mlp`` on the
default vibration features and a ``cnn1d`` on ``per_window`` inputs, both with integer
preprocessing (the default), quantizes them, and for each emulated board renders, builds and
runs ``tinyml validate`` on 6 test windows sent raw: the device computes the preprocessing,
reports its latency (ACK to INFER) and the model's (RESULT). Prints mismatching output bytes,
instructions per inference for the model alone and with the preprocessing (exact under
``-icount``), and the firmware's flash and RAM.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinyml.data.synth import VibrationOptions, synth_vibration  # noqa: E402
from tinyml.firmware.boards import load_board  # noqa: E402
from tinyml.firmware.build import ELF_NAME, build_project  # noqa: E402
from tinyml.firmware.render import render_project  # noqa: E402
from tinyml.hil import prepare_inputs, validate  # noqa: E402
from tinyml.quantize import quantize_run  # noqa: E402
from tinyml.rundir import int8_model  # noqa: E402
from tinyml.train.fit import TrainOptions, train  # noqa: E402

BOARDS = ["qemu-mps2-an386", "qemu-mps3-an547", "qemu-riscv32", "qemu-xtensa-lx106"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ds = synth_vibration(VibrationOptions(per_class=20, seed=1))
        data = ds.save(tmp / "vibration.npz")
        for model_name in ("mlp", "cnn1d"):
            run = tmp / model_name
            train(ds, model_name, run, TrainOptions(epochs=3, quiet=True), dataset_path=data)
            quantize_run(run, tolerance=100.0)
            model = int8_model(run)
            tests = prepare_inputs(model, data, "test", 6)
            for board_name in BOARDS:
                board = load_board(board_name)
                fw = tmp / f"fw-{model_name}-{board_name}"
                render_project(board, model, fw)
                size = build_project(fw)
                r = validate(board, model, tests, elf=fw / ELF_NAME, sizes=(size.flash_bytes, size.ram_bytes))
                rows.append((model_name, board_name, r))
                print(f"{model_name} on {board_name}: {r.mismatches} mismatches, model "
                      f"{r.instructions_per_inference:,.0f}, with preprocessing {r.instructions_with_preprocessing:,.0f}",
                      file=sys.stderr, flush=True)
    head = ("| model (preprocessing) | board | device computes it | mismatching bytes | model instructions | "
            "preprocessing + model | flash | RAM |")
    if a.markdown:
        print(head + "\n|---|---|---|---:|---:|---:|---:|---:|")
    for model_name, board_name, r in rows:
        what = "mlp (vibration features)" if model_name == "mlp" else "cnn1d (per_window)"
        cells = [what, board_name, "yes" if r.device_computes_features else "no", f"{r.mismatches}",
                 f"{r.instructions_per_inference:,.0f}", f"{r.instructions_with_preprocessing:,.0f}",
                 f"{r.flash_bytes:,} B", f"{r.ram_bytes:,} B"]
        print("| " + " | ".join(cells) + " |" if a.markdown else "  ".join(cells))


if __name__ == "__main__":
    main()
