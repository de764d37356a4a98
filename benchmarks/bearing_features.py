"""The `bearing` feature preset: its cost on a Cortex-M4F and how well the device finds the shaft speed.

Prints one table (``--markdown`` for docs/benchmarks.md), all on synthetic vibration
(`tinyml data synth vibration`, 3 axes at 2560 Hz, speeds 1200-1800 rpm, and the speed levels
900-2100 rpm of benchmarks/shift.py for the estimate):
- the whole preprocessing into the model's int8 input on the Cortex-M4F (QEMU mps2-an386,
  -icount: SysTick ticks x 40 = instructions) for the `bearing` preset and, in the same run on
  the same windows, the default `vibration` features (the reference), at 256x3 and 1024x3, with
  flash/RAM of the object, after checking the int8 inputs against Python bit for bit;
- the on-device shaft speed estimate (the 1x peak, Rife's two-bin interpolation) against the
  synthesizer's true speed, per window and channel: median, 90th percentile and share within 2 %;
- Python's integer bearing features per window (training and host prediction cost).

    .venv/bin/python benchmarks/bearing_features.py [--markdown]
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

from benchmarks.data_features import SRC, _input_quantization, m4_preprocess_figures, print_rows  # noqa: E402
from tinyml.data import features_bearing as fb  # noqa: E402
from tinyml.data import features_int as fi  # noqa: E402
from tinyml.data.features import BEARING_SPEC, DEFAULT_VIBRATION_SPEC, validate_spec  # noqa: E402
from tinyml.data.features_int_c import int_config_header  # noqa: E402
from tinyml.data.synth import VibrationOptions, synth_vibration  # noqa: E402


def resolved_spec(ds) -> list[dict]:
    train = ds.split == 0
    return validate_spec(fb.resolve(validate_spec(BEARING_SPEC), ds.x[train], ds.fs, rpm=ds.rpm[train],
                                    bearing=ds.meta["bearing"], rpm_range=ds.meta.get("rpm_range")))


def m4_cost(ds, spec: list[dict], tmp: Path, n: int = 3) -> dict:
    """Instructions per window of the integer preprocessing of ``spec`` on the M4F, checked bit for bit."""
    shifts = fi.sample_shifts(ds.x)
    real = fi.real_features(fi.to_samples(ds.x[:64], shifts), ds.fs, spec, shifts)
    mean, std = real.mean(0), np.maximum(real.std(0), 1e-6)
    scale, zp = _input_quantization((real - mean) / std)
    want = fi.features_int8(ds.x[:n], ds.fs, spec, shifts, mean, std, scale, zp)
    header = int_config_header(mode="features", window=ds.x.shape[1], channels=ds.channels, fs=ds.fs,
                               sample_shift=shifts, mean=mean, std=std, in_scale=scale, zero_point=zp, spec=spec)
    tmp.mkdir()
    return m4_preprocess_figures(ds.x[:n], want, [SRC / "tinyml_features_int.c"],
                                 {"tinyml_features_int_config.h": header}, "tinyml_features_int.h",
                                 "tinyml_ifeat_preprocess", tmp)


def speed_errors(ds, spec: list[dict]) -> np.ndarray:
    """|estimate - true| / true per window and channel, as the device computes the estimate."""
    q = fi.to_samples(ds.x, fi.sample_shifts(ds.x))
    r = fi._Rows(q.transpose(0, 2, 1).reshape(-1, q.shape[1]))
    sr, si = r.spectrum
    lay = fi.layout(spec[0], ds.x.shape[1], ds.fs)
    rpm = fb.shaft_q16(sr * sr + si * si, lay.weights) / 65536.0 * ds.fs / ds.x.shape[1] * 60
    true = np.repeat(ds.rpm, ds.x.shape[2])
    return np.abs(rpm - true) / true


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    rows: list[tuple[str, str]] = []
    for window in (256, 1024):
        ds = synth_vibration(VibrationOptions(per_class=48, window=window, seed=11))
        spec = resolved_spec(ds)
        vib = validate_spec(DEFAULT_VIBRATION_SPEC)
        with tempfile.TemporaryDirectory() as d:
            ref = m4_cost(ds, vib, Path(d) / "vibration")
            got = m4_cost(ds, spec, Path(d) / "bearing")
        for name, f, extra in (("vibration (reference)", ref, ""),
                               ("bearing", got, f"; {got['instructions'] / ref['instructions']:.2f}x the vibration "
                                                "features")):
            rows.append((f"{name} preprocessing into the int8 input, {window}x3, Cortex-M4F",
                         f"{f['instructions']:,} instructions/window (±40){extra}; .o flash {f['flash']:,} B, "
                         f"RAM {f['ram']:,} B; bit-identical to Python: {'yes' if f['bit_identical'] else 'NO'}"))
        levels = synth_vibration(VibrationOptions(per_class=40, window=window, seed=12,
                                                  speeds=[900, 1200, 1500, 1800, 2100]))
        for data in (ds, levels):
            s = resolved_spec(data)
            err = speed_errors(data, s)
            lo, hi = s[0]["rpm_range"]
            rows.append((f"on-device shaft speed from the 1x peak, {window}x3 ({ds.fs / window:g} Hz bins, "
                         f"search {lo:.0f}-{hi:.0f} rpm)",
                         f"median error {np.median(err) * 100:.2f} %, 90th percentile "
                         f"{np.percentile(err, 90) * 100:.1f} %, {np.mean(err < 0.02) * 100:.0f} % of {err.size} "
                         "window-channels within 2 %"))
        q = fi.to_samples(ds.x, fi.sample_shifts(ds.x))
        t0 = time.perf_counter()
        fi.feature_values(q, ds.fs, spec)
        per = (time.perf_counter() - t0) / ds.n
        rows.append((f"Python integer bearing features, {window}x3", f"{per * 1e6:.0f} µs/window "
                     f"({len(fb.names(spec[0])) * 3} values; band {spec[0]['band'][0]:.0f}-{spec[0]['band'][1]:.0f} Hz "
                     "from the kurtogram)"))
    print_rows(rows, markdown=args.markdown, width=90)


if __name__ == "__main__":
    main()
