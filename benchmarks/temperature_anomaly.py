"""Temperature anomaly detector: float and int8 AUC per seed and recall of each anomaly kind.

    .venv/bin/python benchmarks/temperature_anomaly.py [--seeds 0,1,2] [--epochs 40] [--markdown]

Per seed: the default synthetic temperature set (`tinyml data synth temperature --seed S`),
the default autoencoder (`tinyml train --model autoencoder --seed S`), full-int8 quantization
(`tinyml quantize`), then per-kind recall of the TFLM int8 model on the test split at its own
threshold (quantization.json's ``int8_threshold``: what the device and the gateway use).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinyml.data.synth import TEMPERATURE_CLASSES, TemperatureOptions, synth_temperature  # noqa: E402
from tinyml.model import interpreters  # noqa: E402
from tinyml.quantize import quantize_run  # noqa: E402
from tinyml.rundir import int8_model, open_model  # noqa: E402
from tinyml.train.fit import TrainOptions, output_scores, train  # noqa: E402

KINDS = TEMPERATURE_CLASSES[1:]


def kind_recall(run: Path, ds_x: np.ndarray, ds_y: np.ndarray) -> dict[str, float]:
    """Share of each class flagged as anomalous by the TFLM int8 model at its own threshold."""
    model = int8_model(run)
    tflite, q = model.data, model.quant
    inputs = open_model(run).preprocess().apply(ds_x)
    out = interpreters.dequantize(interpreters.tflm_run(tflite, interpreters.quantize_input(inputs, q.in_scale,
                                                                                              q.in_zp)),
                                  q.out_scale, q.out_zp)
    flagged = output_scores("anomaly", inputs, out) > model.threshold
    return {c: float(flagged[ds_y == i].mean()) for i, c in enumerate(TEMPERATURE_CLASSES)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=TrainOptions.epochs)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in a.seeds.split(",")):
            t0 = time.perf_counter()
            ds = synth_temperature(TemperatureOptions(seed=seed))
            data = ds.save(Path(tmp) / f"temp-{seed}.npz")
            run = Path(tmp) / f"run-{seed}"
            train(ds, "autoencoder", run, TrainOptions(epochs=a.epochs, seed=seed, quiet=True), dataset_path=data)
            q = quantize_run(run, tolerance=1.0).report
            test = ds.split == 2
            rec = kind_recall(run, ds.x[test], ds.y[test])
            rows.append((seed, q["float"]["auc"], q["int8_litert"]["auc"], q["int8_tflm"]["auc"], rec,
                         int(test.sum()), time.perf_counter() - t0))
            print(f"seed {seed}: AUC float {rows[-1][1]:.4f}, int8 LiteRT {rows[-1][2]:.4f}, "
                  f"int8 TFLM {rows[-1][3]:.4f}; flagged " + ", ".join(f"{k} {v:.2f}" for k, v in rec.items()),
                  file=sys.stderr, flush=True)
    if a.markdown:
        print("| seed | AUC float | AUC int8 LiteRT | AUC int8 TFLM | " + " | ".join(f"recall {k}" for k in KINDS)
              + " | false alarms (normal) | test windows | synth+train+quantize |")
        print("|---:|---:|---:|---:|" + "---:|" * len(KINDS) + "---:|---:|---:|")
        for seed, fa, la, ta, rec, n, dt in rows:
            print(f"| {seed} | {fa:.4f} | {la:.4f} | {ta:.4f} | " + " | ".join(f"{rec[k]:.2f}" for k in KINDS)
                  + f" | {rec['normal']:.2f} | {n} | {dt:.1f} s |")


if __name__ == "__main__":
    main()
