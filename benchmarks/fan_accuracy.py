"""Accuracy on the real fan accelerometer data with whole speed levels held out.

    .venv/bin/python benchmarks/fan_accuracy.py [--models mlp,cnn1d] [--seeds 0,1,2] [--markdown]

Imports shared/datasets/fan-imbalance/accelerometer.csv (128-sample windows at 50 Hz, hop
32, speeds 25/45/65/85 % as the test split), trains each model per seed, quantizes it to
full int8 and prints float, LiteRT int8 and TFLM int8 accuracy on the held-out speeds, then
float and TFLM int8 accuracy per held-out speed, parameters and epochs run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinyml.data.importer import ImportOptions, import_data  # noqa: E402
from tinyml.paths import shared_dir  # noqa: E402
from tinyml.quantize import quantize_run  # noqa: E402
from tinyml.train.fit import TrainOptions, train  # noqa: E402

FAN_CSV = "datasets/fan-imbalance/accelerometer.csv"


def fan_dataset(out: Path) -> Path:
    opts = ImportOptions(columns=["x", "y", "z"], label_column="Sensor Configuration",
                         group_column="Rotation Speed Percentage", fs=50.0, window=128, hop=32,
                         test_groups=["25", "45", "65", "85"], kind="vibration")
    return import_data([str(shared_dir() / FAN_CSV)], opts).save(out)


def per_speed(run: Path, ds) -> dict[str, tuple[float, float]]:  # noqa: ANN001 - a tinyml Dataset
    """Float and TFLM int8 accuracy of a quantized run on each held-out speed."""
    from tinyml.model import interpreters
    from tinyml.rundir import open_model
    from tinyml.train.quiet import import_keras

    test = ds.split == 2
    model = open_model(run)
    pre = model.preprocess()
    x = pre.apply(ds.x[test])
    float_pred = import_keras().models.load_model(model.keras()).predict(x, verbose=0).argmax(1)
    tflite = model.int8().data
    q = interpreters.io_quantization(tflite)
    x_q = (pre.int8_inputs(ds.x[test], q.in_scale, q.in_zp).reshape(-1, *q.in_shape) if pre.integer
           else interpreters.quantize_input(x, q.in_scale, q.in_zp))  # integer runs: the device's own inputs
    int8_pred = interpreters.tflm_run(tflite, x_q).argmax(1)
    y, groups = ds.y[test], ds.groups[test]
    return {g: (float((float_pred == y)[groups == g].mean()), float((int8_pred == y)[groups == g].mean()))
            for g in sorted(set(groups), key=float)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mlp,cnn1d")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    rows, speeds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data = fan_dataset(Path(tmp) / "fan.npz")
        from tinyml.data.dataset import load

        ds = load(data)
        for model in a.models.split(","):
            for seed in (int(s) for s in a.seeds.split(",")):
                run = Path(tmp) / f"{model}-{seed}"
                t0 = time.perf_counter()
                train(ds, model, run, TrainOptions(epochs=150, seed=seed, quiet=True), dataset_path=data)
                q = quantize_run(run, tolerance=100.0).report
                rows.append((model, seed, q["float"]["accuracy"], q["int8_litert"]["accuracy"],
                             q["int8_tflm"]["accuracy"], q["float"]["n"], time.perf_counter() - t0))
                info = json.loads((run / "model.json").read_text())
                speeds.append((model, seed, info["parameters"], info["epochs_run"], per_speed(run, ds)))
                print(f"{model} seed {seed}: float {rows[-1][2]:.4f}, int8 LiteRT {rows[-1][3]:.4f}, "
                      f"int8 TFLM {rows[-1][4]:.4f}", file=sys.stderr, flush=True)
    if a.markdown:
        print("| model | seed | float | int8 LiteRT | int8 TFLM | test windows | train+quantize |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for m, s, f, li, tf, n, t in rows:
            print(f"| {m} | {s} | {f:.4f} | {li:.4f} | {tf:.4f} | {n} | {t:.0f} s |")
        names = list(speeds[0][4]) if speeds else []
        print("\n| model | seed | parameters | epochs run | " + " | ".join(f"{g} % float / int8" for g in names) + " |")
        print("|---|---:|---:|---:|" + "---:|" * len(names))
        for m, s, par, ep, acc in speeds:
            cells = " | ".join(f"{acc[g][0]:.3f} / {acc[g][1]:.3f}" for g in names)
            print(f"| {m} | {s} | {par:,} | {ep} | {cells} |")
    else:
        for m, s, f, li, tf, n, t in rows:
            print(f"{m:8s} seed {s}: float {f:.4f}  int8 LiteRT {li:.4f}  int8 TFLM {tf:.4f}  ({n} windows, {t:.0f} s)")
        for m, s, par, ep, acc in speeds:
            cells = "  ".join(f"{g}%: {f:.3f}/{i:.3f}" for g, (f, i) in acc.items())
            print(f"{m:8s} seed {s}: {par} parameters, {ep} epochs; float/int8 per speed {cells}")


if __name__ == "__main__":
    main()
