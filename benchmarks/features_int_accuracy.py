"""Accuracy of integer against float64 preprocessing, trained and quantized in the same run.

    .venv/bin/python benchmarks/features_int_accuracy.py [--seeds 0] [--cases fan-mlp,...] [--markdown]

Cases: the real fan set with whole speeds held out (25/45/65/85 % as test, as
benchmarks/fan_accuracy.py) with the mlp (default vibration features) and the cnn1d
(per_window); the synthetic vibration set with the mlp; the synthetic temperature set with the
autoencoder (AUC). Each case is trained per seed with ``arithmetic`` float64 and integer, same
data, same seed; the table gives the float model's and the TFLM int8 model's test metric (the
int8 inputs of an integer run are the device's own, ``Preprocess.int8_inputs``) and the
integer-minus-float64 difference of the int8 metric in points.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fan_accuracy import fan_dataset  # noqa: E402

from tinyml.data.dataset import load  # noqa: E402
from tinyml.data.synth import synth_temperature, synth_vibration  # noqa: E402
from tinyml.quantize import quantize_run  # noqa: E402
from tinyml.train.fit import TrainOptions, train  # noqa: E402

CASES = {  # name: (dataset, model, epochs)
    "fan-mlp": ("fan", "mlp", 150), "fan-cnn1d": ("fan", "cnn1d", 60),
    "vibration-mlp": ("vibration", "mlp", 40), "temperature-autoencoder": ("temperature", "autoencoder", 40),
}


def dataset(name: str, tmp: Path) -> Path:
    if name == "fan":
        return fan_dataset(tmp / "fan.npz")
    ds = synth_vibration() if name == "vibration" else synth_temperature()
    return ds.save(tmp / f"{name}.npz")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        paths: dict[str, Path] = {}
        for case in a.cases.split(","):
            data_name, model, epochs = CASES[case]
            if data_name not in paths:
                paths[data_name] = dataset(data_name, tmp)
            ds = load(paths[data_name])
            for seed in (int(s) for s in a.seeds.split(",")):
                got = {}
                for arithmetic in ("float64", "integer"):
                    run = tmp / f"{case}-{seed}-{arithmetic}"
                    t0 = time.perf_counter()
                    train(ds, model, run, TrainOptions(epochs=epochs, seed=seed, quiet=True, arithmetic=arithmetic),
                          dataset_path=paths[data_name])
                    r = quantize_run(run, tolerance=100.0).report
                    m = r["metric"]
                    got[arithmetic] = (m, r["float"][m], r["int8_tflm"][m], r["float"]["n"], time.perf_counter() - t0)
                    print(f"{case} seed {seed} {arithmetic}: {m} float {got[arithmetic][1]:.4f}, "
                          f"int8 TFLM {got[arithmetic][2]:.4f}", file=sys.stderr, flush=True)
                rows.append((case, seed, got))
    if a.markdown:
        print("| case | seed | metric | float64: float / int8 | integer: float / int8 | int8 integer − float64 "
              "(points) | test windows |")
        print("|---|---:|---|---:|---:|---:|---:|")
    for case, seed, got in rows:
        m, f64, i = got["float64"][0], got["float64"], got["integer"]
        diff = (i[2] - f64[2]) * 100
        if a.markdown:
            print(f"| {case} | {seed} | {m} | {f64[1]:.4f} / {f64[2]:.4f} | {i[1]:.4f} / {i[2]:.4f} | {diff:+.2f} | "
                  f"{f64[3]} |")
        else:
            print(f"{case:24s} seed {seed} {m}: float64 {f64[1]:.4f}/{f64[2]:.4f}  integer {i[1]:.4f}/{i[2]:.4f}  "
                  f"int8 diff {diff:+.2f} points")


if __name__ == "__main__":
    main()
