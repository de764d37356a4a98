"""`tinyml detect` on the project's own synthetic long temperature series (issue 17's target).

Per seed: one machine's log of N + 4 weeks. Its first N weeks (``--history-weeks``, default 4; gaps, no
events, no labels) are imported and an autoencoder trained on them with the threshold picked for a target
false-alarm rate per day on the validation part; then the last 4 weeks, with two events of each kind (slow drift, step, runaway, stuck sensor), gaps and one clock reset is
run through `tinyml detect` (``--on-backwards continue``: the logger kept sampling while its clock was set
back, so the data's time of day goes on; ``split`` is the rule before it) and scored against its labels: events found, lead
times, false alarms per simulated week, NAB-style score. ``detect`` escalates an open alarm (``--escalate``, default 3:
a second fault during an open alarm is a new alarm) and counts an alarm raised by a window that still holds an event's
last samples as that event's late detection, not a false alarm. The same commands a user types:

    tinyml data import history.csv --time-column timestamp --label normal --normal-class normal \\
        --kind temperature --window 24 --hop 6 --split time --out history.npz
    tinyml train history.npz --model autoencoder --features temperature-series --false-alarms-per-day 0.1 \
        --guard-margin 1.5 [--stuck-guard 1.5] [--slope-guard] --out run
    tinyml detect run test.csv --labels labels.csv --on-backwards continue --out events.csv

    .venv/bin/python benchmarks/series_detect.py [--seeds 0,1,2] [--markdown] [--guard-margin 1.5] [--int8] \
        [--history-weeks 4] [--slope-cusum] [--stuck-guard 1.5] [--on-backwards continue|split]

With a guard, each seed is scored both ways in the same run: the autoencoder's reconstruction error alone
(what a run trained without ``--guard-margin`` reports) and the guarded score `tinyml detect` reports.
``--slope-cusum`` trains with ``--slope-guard`` (tinyml/train/slope_guard.py: the thermal lag's drive slope per
slot of the day, accumulated; it changes nothing else in the run) and adds a third score, what `detect` then
reports: the guarded score with the slope guard folded in. ``--stuck-guard`` trains with it
(tinyml/train/stuck_guard.py); it is folded into the second score with the input guard.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinyml.data.importer import ImportOptions, import_data  # noqa: E402
from tinyml.data.synth_series import (  # noqa: E402
    EVENT_KINDS,
    SeriesOptions,
    synth_series,
    write_intervals,
    write_series,
)
from tinyml.quantize import quantize_run  # noqa: E402
from tinyml.train.detect import DetectOptions, alarm_events, labelled_events, score_alarms, score_series  # noqa: E402
from tinyml.train.fit import TrainOptions, train  # noqa: E402
from tinyml.train.specs import feature_spec_option  # noqa: E402

WEEK = 7 * 86400.0


def one_seed(seed: int, tmp: Path, *, history_weeks: list[float], **kw) -> list[dict]:
    """One log with the longest history asked for; each history length trains on its last N weeks, so every
    length is scored on the same 4 test weeks."""
    quiet = 7 * max(history_weeks)
    times, values, events = synth_series(SeriesOptions(days=quiet + 28.0, quiet_days=quiet, seed=seed,
                                                       clock_reset_s=3600.0))
    cut = int(np.searchsorted(times, times[0] + quiet * 86400.0))  # the file is in time order up to the reset
    test = write_series(tmp / f"test-{seed}.csv", times[cut:], values[cut:])
    labels = write_intervals(tmp / f"labels-{seed}.csv", events)
    rows = []
    for weeks in history_weeks:
        first = int(np.searchsorted(times, times[0] + (quiet - 7 * weeks) * 86400.0))
        history = write_series(tmp / f"history-{seed}-{weeks:g}.csv", times[first:cut], values[first:cut])
        rows += one_history(seed, tmp, history, test, labels, events, weeks=weeks, **kw)
    return rows


def one_history(seed: int, tmp: Path, history: Path, test: Path, labels: Path, events: list, *, weeks: float,
                rate: float, epochs: int, features: list[dict] | None, hop: int = 6,
                guard_margin: float | None = None, int8: bool = False, slope_cusum: bool = False,
                stuck_guard: float | None = None, val: float = 0.15, on_backwards: str = "continue",
                escalate: float | None = DetectOptions.escalate) -> list[dict]:
    t0 = time.perf_counter()
    ds = import_data([history], ImportOptions(time_column="timestamp", label="normal", normal_class="normal",
                                              kind="temperature", window=24, hop=hop, split="time",
                                              val=val, test=round(0.3 - val, 9)))
    data = ds.save(tmp / f"history-{seed}-{weeks:g}.npz")
    run = tmp / f"run-{seed}-{weeks:g}"
    train(ds, "autoencoder", run, TrainOptions(seed=seed, epochs=epochs, quiet=True, false_alarms_per_day=rate,
                                                  guard_margin=guard_margin, slope_guard=slope_cusum,
                                                  stuck_guard=stuck_guard),
          features, dataset_path=data)
    o = DetectOptions(on_backwards=on_backwards, escalate=escalate)
    model = run
    if int8:  # the device's model: quantized, scored by LiteRT on the int8 inputs the device computes
        model = quantize_run(run, tolerance=100.0).tflite_path
    scored = score_series(model, test, o)
    intervals = labelled_events(labels, test, time_format=None, normal_class="normal")
    kind_of = {(e.start, e.end): e.kind for e in events}
    rule = json.loads((run / "model.json").read_text())["threshold_rule"]
    threshold = scored.summary["threshold"]
    variants = [("autoencoder", scored.errors)]
    if guard_margin is not None or stuck_guard is not None:
        variants.append(("+ " + ", ".join(([] if guard_margin is None else [f"guard {guard_margin:g} SD"])
                                          + ([] if stuck_guard is None else [f"stuck {stuck_guard:g}x"])),
                         scored.guarded))
    if slope_cusum:
        variants.append(("+ slope CUSUM", scored.scores))
    rows = []
    for name, score in variants:
        alarms = alarm_events(score, threshold, scored.ends, scored.which, o,
                              faults=scored.faults if name != "autoencoder" else None)
        s = score_alarms(alarms, intervals, scored.summary)
        found = {k: [d["lead_s"] / 3600 for d in s["detected"] if kind_of[(d["start"], d["end"])] == k]
                 for k in EVENT_KINDS}
        rows.append({"seed": seed, "history_weeks": weeks, "score": name, "found": found, "rule": rule, "events": s["events"],
                     "detected": len(s["detected"]), "late": s["late"], "in_gaps": len(s["unobserved"]), "false_alarms": s["false_alarms"],
                     "weeks": scored.summary["span_seconds"] / WEEK, "nab": s["nab_score"],
                     "seconds": time.perf_counter() - t0})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rate", type=float, default=0.1, help="--false-alarms-per-day for training")
    ap.add_argument("--epochs", type=int, default=TrainOptions.epochs)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--features", default="temperature-series", help="a --features preset or JSON spec file")
    ap.add_argument("--hop", type=int, default=6, help="samples between windows (6: 30 minutes)")
    ap.add_argument("--guard-margin", type=float, default=None, help="train with this --guard-margin")
    ap.add_argument("--int8", action="store_true", help="detect with the quantized model (as the device runs it)")
    ap.add_argument("--slope-cusum", action="store_true", help="train with --slope-guard and also score it")
    ap.add_argument("--stuck-guard", type=float, default=None, help="train with this --stuck-guard")
    ap.add_argument("--val", type=float, default=0.15, help="the history's validation share (import --val; its "
                    "test share is what is left after 70 %% for training)")
    ap.add_argument("--on-backwards", default="continue", choices=["continue", "split"],
                    help="detect's rule for the log's clock reset")
    ap.add_argument("--escalate", type=float, default=DetectOptions.escalate,
                    help="detect's --escalate factor (0: --no-escalate)")
    ap.add_argument("--history-weeks", default="4", help="weeks of normal history (no events) the model is "
                    "trained on, before the 4 test weeks; several (4,8,12): each trains on the last N weeks of "
                    "the longest, scored on the same test weeks")
    a = ap.parse_args()
    spec = feature_spec_option(a.features)
    weeks = [float(w) for w in a.history_weeks.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in a.seeds.split(",")):
            for r in one_seed(seed, Path(tmp), rate=a.rate, epochs=a.epochs, features=spec, hop=a.hop,
                              guard_margin=a.guard_margin, int8=a.int8, history_weeks=weeks,
                              slope_cusum=a.slope_cusum, stuck_guard=a.stuck_guard, val=a.val, on_backwards=a.on_backwards,
                              escalate=a.escalate or None):
                rows.append(r)
                t = r["rule"]
                if r["score"] == "autoencoder":
                    print(f"seed {seed}, {r['history_weeks']:g} weeks of history: threshold counted "
                          f"{t['counted_threshold']:.3g}, tail {t['tail_threshold']:.3g} on {t['validation_days']:.1f} "
                          f"validation days; alarms allowed {t['alarms_allowed']}, raised {t['alarms_on_validation']}",
                          file=sys.stderr, flush=True)
                print(f"  {r['score']}: events {r['detected']}/{r['events']} ({r['late']} late, {r['in_gaps']} in gaps), false alarms "
                      f"{r['false_alarms']} ({r['false_alarms'] / r['weeks']:.2f} per week), NAB {r['nab']:.1f}; "
                      "lead times (h) "
                      + ", ".join(f"{k} {' '.join(f'{v:.1f}' for v in r['found'][k]) or '-'}" for k in EVENT_KINDS)
                      + f" ({r['seconds']:.0f} s)", file=sys.stderr, flush=True)
    if a.markdown:
        print("| seed | history (weeks) | score | events found | " + " | ".join(f"{k} lead (h)" for k in EVENT_KINDS)
              + " | false alarms | per week | NAB score |")
        print("|---:|---:|---|---:|" + "---:|" * len(EVENT_KINDS) + "---:|---:|---:|")
        for r in rows:
            print(f"| {r['seed']} | {r['history_weeks']:g} | {r['score']} | {r['detected']}/{r['events']} | "
                  + " | ".join(", ".join(f"{v:.1f}" for v in r["found"][k]) or "missed" for k in EVENT_KINDS)
                  + f" | {r['false_alarms']} | {r['false_alarms'] / r['weeks']:.2f} | {r['nab']:.1f} |")
    for key in dict.fromkeys((r["history_weeks"], r["score"]) for r in rows):
        mine = [r for r in rows if (r["history_weeks"], r["score"]) == key]
        found_all = all(r["detected"] == r["events"] for r in mine)
        worst = max(r["false_alarms"] / r["weeks"] for r in mine)
        both = sum(r["detected"] == r["events"] and r["false_alarms"] <= r["weeks"] for r in mine)
        print(f"{key[0]:g} weeks of history, {key[1]}: events found {sum(r['detected'] for r in mine)}/"
              f"{sum(r['events'] for r in mine)} ({sum(r['late'] for r in mine)} late; "
              f"{sum(r['in_gaps'] for r in mine)} more in gaps, not scored), false alarms "
              f"{sum(r['false_alarms'] for r in mine)}, seeds meeting the whole target {both}/{len(mine)}, "
              f"every event on every seed: {'yes' if found_all else 'no'}; worst "
              f"false alarms per week {worst:.2f} (target <= 1); median NAB score "
              f"{statistics.median(r['nab'] for r in mine):.1f}")


if __name__ == "__main__":
    main()
