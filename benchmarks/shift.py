"""Accuracy under shift: synthetic fault-severity and shaft-speed levels held out of training.

    .venv/bin/python benchmarks/shift.py [--configs mlp,cnn1d,...] [--seeds 0] [--markdown] [--no-fan]

Synthetic shifts (`tinyml data synth vibration`, six classes, 2560 Hz, seed 1), each a
dataset with some levels held out as the test split (`tinyml.train.shift.fold`):
- severity-medium: --severities low,medium,high, trained on low and high, tested on medium
  (the issue's split); severity-high: trained on low and medium, tested on high (a fault
  that grew); 256-sample windows, 144 per class;
- speed-slower: --speeds 900,1200,1500,1800,2100, trained on 1500-2100, tested on 900 and
  1200 rpm; speed-inside (not run by default): tested on 1200 and 1800. 1024-sample windows
  (0.4 s: six revolutions at 900 rpm; 256 samples resolve 10 Hz, less than the 15 Hz shaft),
  160 per class.
Every configuration is trained on the same data with the same seed and quantized to full
int8; the figure is the TFLM int8 accuracy on the held-out windows. Today's defaults (`mlp` on
the default vibration features, `cnn1d` on per-window standardised raw windows) are the
reference; the others add augmentation (tinyml/train/augment.py) and the `bearing` feature
preset. Unless --no-fan, the fan accelerometer set with whole speeds held out
(benchmarks/fan_accuracy.py's split, 150 epochs) for `mlp` and `mlp+aug`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinyml.data.dataset import group_column  # noqa: E402
from tinyml.data.synth import VibrationOptions, synth_vibration  # noqa: E402
from tinyml.quantize import quantize_run  # noqa: E402
from tinyml.train.fit import TrainOptions, train  # noqa: E402
from tinyml.train.shift import fold  # noqa: E402
from tinyml.train.specs import PRESETS, feature_spec_option  # noqa: E402

SPEEDS = [900, 1200, 1500, 1800, 2100]
SCENARIOS = {  # key: (what is held out, synth options, group column, held-out groups)
    "severity-medium": ("severity medium (trained on low, high)",
                        dict(severities=["low", "medium", "high"], per_class=144), "severity", ["medium"]),
    "severity-high": ("severity high (trained on low, medium)",
                      dict(severities=["low", "medium", "high"], per_class=144), "severity", ["high"]),
    "speed-inside": ("speeds 1200, 1800 rpm (trained on 900, 1500, 2100)",
                     dict(speeds=SPEEDS, per_class=160, window=1024), "speed", ["1200", "1800"]),
    "speed-slower": ("speeds 900, 1200 rpm (trained on 1500-2100)",
                     dict(speeds=SPEEDS, per_class=160, window=1024), "speed", ["900", "1200"]),
}
AUGMENT = dict(augment_gain=3.0, augment_speed=0.7, augment_snr=20.0, augment_resonance=12.0, augment_copies=2)
CONFIGS = {  # name: (model, feature preset or None, training options beyond the defaults)
    "mlp": ("mlp", None, {}),
    "cnn1d": ("cnn1d", None, {}),
    "mlp+aug": ("mlp", None, AUGMENT),
    "cnn1d+aug": ("cnn1d", None, AUGMENT),
    "mlp bearing": ("mlp", "bearing", {}),
    "mlp bearing+aug": ("mlp", "bearing", AUGMENT),
}


def run_config(ds, name: str, tmp: Path, seed: int, epochs: int) -> tuple[float, float, float]:  # noqa: ANN001
    """Train and quantize one configuration; float and TFLM int8 accuracy on the test split, seconds."""
    model, preset, extra = CONFIGS[name]
    data = ds.save(tmp / "data.npz")
    run = tmp / f"{name.replace(' ', '_').replace('+', '_')}-{seed}"
    t0 = time.perf_counter()
    train(ds, model, run, TrainOptions(epochs=epochs, seed=seed, quiet=True, **extra),
          feature_spec_option(preset), dataset_path=data, force=True)
    q = quantize_run(run, data, tolerance=100.0).report
    return q["float"]["accuracy"], q["int8_tflm"]["accuracy"], time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(c for c in CONFIGS if CONFIGS[c][1] in (None, *PRESETS)))
    ap.add_argument("--scenarios", default="severity-medium,severity-high,speed-slower")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--window", type=int, default=None, help="samples per synthetic window for every scenario "
                    "(default: each scenario's own; the bearing preset's on-device speed estimate wants about 8 "
                    "shaft turns per window: 1024 at 2560 Hz)")
    ap.add_argument("--no-fan", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    configs = a.configs.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in a.scenarios.split(","):
            title, synth, by, held = SCENARIOS[scenario]
            full = synth_vibration(VibrationOptions(seed=1, **{**synth, **({"window": a.window} if a.window else {})}))
            ds = fold(full, group_column(full, by), held)
            for name in configs:
                for seed in (int(s) for s in a.seeds.split(",")):
                    f, i8, t = run_config(ds, name, Path(tmp), seed, a.epochs)
                    rows.append((title, name, seed, f, i8, int((ds.split == 2).sum()), t))
                    print(f"{title} | {name} seed {seed}: float {f:.4f}, int8 {i8:.4f} ({t:.0f} s)",
                          file=sys.stderr, flush=True)
        if not a.no_fan:
            from benchmarks.fan_accuracy import fan_dataset
            from tinyml.data.dataset import load

            fan = load(fan_dataset(Path(tmp) / "fan.npz"))
            for name in ("mlp", "mlp+aug"):
                for seed in (int(s) for s in a.seeds.split(",")):
                    f, i8, t = run_config(fan, name, Path(tmp), seed, 150)
                    rows.append(("fan set: speeds 25/45/65/85 % (real data)", name, seed, f, i8, int((fan.split == 2).sum()), t))
                    print(f"fan | {name} seed {seed}: float {f:.4f}, int8 {i8:.4f} ({t:.0f} s)",
                          file=sys.stderr, flush=True)
    if a.markdown:
        print("| shift | configuration | seed | float | int8 (TFLM) | test windows | train+quantize |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for sc, name, seed, f, i8, n, t in rows:
            print(f"| {sc} | {name} | {seed} | {f:.4f} | {i8:.4f} | {n} | {t:.0f} s |")
    else:
        for sc, name, seed, f, i8, n, t in rows:
            print(f"{sc:52s} {name:16s} seed {seed}: float {f:.4f}  int8 {i8:.4f}  ({n} windows, {t:.0f} s)")


if __name__ == "__main__":
    main()
