"""What the slope guard costs on a device: flash, RAM and instructions per window on the emulated boards.

    .venv/bin/python benchmarks/slope_device_cost.py [--markdown] [--boards qemu-mps2-an386,...]

Imports a synthetic 8-day machine log (tinyml/data/synth_series.py; 24-sample windows every 30 minutes), trains
one temperature-series autoencoder on it and copies the run with the slope guard taken out (the same model and
preprocessing: ``--slope-guard`` changes nothing else), quantizes it, and for each board renders, builds and runs
``tinyml validate`` on the first 96 windows in data order, sent raw: the device computes the preprocessing (the
daily_cycle state and, in the guarded run, the slope guard's 22 fits and CUSUM), reports its latency (ACK to
INFER, instructions under ``-icount``) and the model's (RESULT). Prints both builds' flash, RAM and the
preprocessing's instructions per window, and their differences.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinyml.data.importer import ImportOptions, import_data  # noqa: E402
from tinyml.data.synth_series import SeriesOptions, synth_series, write_series  # noqa: E402
from tinyml.firmware.boards import load_board  # noqa: E402
from tinyml.firmware.build import ELF_NAME, build_project  # noqa: E402
from tinyml.firmware.render import render_project  # noqa: E402
from tinyml.hil import prepare_inputs, validate  # noqa: E402
from tinyml.quantize import quantize_run  # noqa: E402
from tinyml.rundir import int8_model  # noqa: E402
from tinyml.train.fit import TrainOptions, train  # noqa: E402
from tinyml.train.specs import feature_spec_option  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--boards", default="qemu-mps2-an386")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        times, values, _ = synth_series(SeriesOptions(days=8.0, events_per_kind=0, gaps=0, seed=1))
        csv = write_series(tmp / "log.csv", times, values)
        ds = import_data([csv], ImportOptions(time_column="timestamp", label="normal", normal_class="normal",
                                              kind="temperature", window=24, hop=6, split="time"))
        data = ds.save(tmp / "log.npz")
        guarded, plain = tmp / "guarded", tmp / "plain"
        train(ds, "autoencoder", guarded, TrainOptions(epochs=3, quiet=True, slope_guard=True),
              feature_spec_option("temperature-series"), dataset_path=data)
        shutil.copytree(guarded, plain)
        info = json.loads((plain / "model.json").read_text())
        info.pop("slope_guard")
        (plain / "model.json").write_text(json.dumps(info))
        for run in (guarded, plain):
            quantize_run(run, tolerance=100.0)
        for board_name in a.boards.split(","):
            board = load_board(board_name)
            for name, run in (("without", plain), ("with slope guard", guarded)):
                model = int8_model(run)
                tests = prepare_inputs(model, data, None, 96)
                fw = tmp / f"fw-{name.replace(' ', '-')}-{board_name}"
                render_project(board, model, fw)
                size = build_project(fw)
                r = validate(board, model, tests, elf=fw / ELF_NAME, sizes=(size.flash_bytes, size.ram_bytes))
                pre = r.instructions_with_preprocessing - r.instructions_per_inference
                rows.append((board_name, name, r.mismatches, r.device_labels_agree, r.flash_bytes, r.ram_bytes, pre))
                print(f"{name} on {board_name}: {r.mismatches} mismatches, preprocessing {pre:,.0f} instructions",
                      file=sys.stderr, flush=True)
    if a.markdown:
        print("| board | build | mismatching bytes | labels agree | flash | RAM | preprocessing instructions per window |")
        print("|---|---|---:|---:|---:|---:|---:|")
    for i, (board_name, name, bad, agree, flash, ram, pre) in enumerate(rows):
        cells = [board_name, name, f"{bad}", f"{agree:.3f}", f"{flash:,} B", f"{ram:,} B", f"{pre:,.0f}"]
        if i % 2:
            _, _, _, _, flash0, ram0, pre0 = rows[i - 1]
            cells[4:] = [f"{flash:,} B (+{flash - flash0:,})", f"{ram:,} B (+{ram - ram0:,})",
                         f"{pre:,.0f} (+{pre - pre0:,.0f})"]
        print("| " + " | ".join(cells) + " |" if a.markdown else "  ".join(cells))


if __name__ == "__main__":
    main()
