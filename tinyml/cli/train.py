"""`tinyml train`, `tinyml quantize` and `tinyml predict`: parse, call the library, print."""

from __future__ import annotations

from pathlib import Path

import click

from tinyml.cli.outpath import OUT_DIR, OUT_FILE


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--model", "model_name", default="cnn1d", show_default=True,
              help="cnn1d (raw windows), mlp (features) or autoencoder (features, anomaly).")
@click.option("--out", "out_dir", type=OUT_DIR, required=True, help="Run directory to write.")
@click.option("--epochs", default=40, show_default=True, help="Maximum epochs (early stopping may end sooner).")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--seed", default=0, show_default=True, help="Random seed for a reproducible run.")
@click.option("--features", "features", default=None,
              help="Feature spec for mlp/autoencoder: a preset (vibration, temperature, bearing) or a JSON file.")
@click.option("--patience", default=8, show_default=True, help="Early-stopping patience in epochs.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--arithmetic", type=click.Choice(["integer", "float64"]), default="integer", show_default=True,
              help="Preprocessing arithmetic: integer (fixed point, bit-identical on every board) or float64.")
@click.option("--false-alarms-per-day", type=float, default=None,
              help="Anomaly models on timestamped data: pick the threshold so the alarm rule (2 of 3 windows) "
                   "fires at most this often per day on the validation data (default: best balanced accuracy).")
@click.option("--guard-margin", type=float, default=None,
              help="Anomaly models: also flag a window when any model input lies more than this many training "
                   "standard deviations beyond its training range (e.g. 1; default: no guard).")
@click.option("--slope-guard", is_flag=True,
              help="Anomaly models on one timestamped temperature channel: also flag a slope that keeps departing "
                   "from its usual value at that time of day (a CUSUM, docs/series.md); `detect` and the firmware "
                   "apply it.")
@click.option("--stuck-guard", type=float, default=None,
              help="Anomaly models with integer features: also flag a window whose sample repeats more times in a "
                   "row than this many times the most any normal training or validation window holds (a frozen sensor; "
                   "e.g. 1.5; "
                   "default: no stuck guard).")
@click.option("--slope-k", type=float, default=None,
              help="--slope-guard: the z per window the CUSUM forgets (default 0.75, docs/series.md).")
@click.option("--slope-h", type=float, default=None,
              help="--slope-guard: the CUSUM level above which a window is anomalous (default 8).")
@click.option("--slope-f-min", type=float, default=None,
              help="--slope-guard: the F statistic a load-switch fit needs to replace the plain fit (default 100).")
@click.option("--slope-slack", type=float, default=None,
              help="--slope-guard: hours either way the logger's clock may be off; each slope is judged against the "
                   "lowest usual slope within them (default 1; 0: its own slot only).")
@click.option("--force", is_flag=True, help="Replace the run in a non-empty --out directory.")
@click.option("--augment-gain", type=float, default=1.0, show_default=True,
              help="Augment: scale the vibration by up to this factor either way (1: off).")
@click.option("--augment-speed", type=float, default=0.0, show_default=True,
              help="Augment: resample windows by up to this fraction faster or slower (0: off).")
@click.option("--augment-snr", type=float, default=None, help="Augment: add white noise at this SNR in dB.")
@click.option("--augment-resonance", type=float, default=0.0, show_default=True,
              help="Augment: a random resonance raising one band by up to this many dB (0: off).")
@click.option("--augment-copies", type=int, default=1, show_default=True,
              help="Augmented copies of each training window (when any --augment-* is on).")
@click.option("--by", default=None, help="Group column: also retrain leaving out each of its groups in turn and add "
                                         "the per-group float/int8 accuracy table to metrics.json (slower).")
def train(data: Path, model_name: str, out_dir: Path, epochs: int, batch_size: int, seed: int,
          features: str | None, patience: int, quiet: bool, arithmetic: str, false_alarms_per_day: float | None,
          guard_margin: float | None, slope_guard: bool, stuck_guard: float | None, slope_k: float | None,
          slope_h: float | None,
          slope_f_min: float | None, slope_slack: float | None,
          force: bool, augment_gain: float, augment_speed: float, augment_snr: float | None, augment_resonance: float,
          augment_copies: int, by: str | None) -> None:
    """Train a model on DATA (.npz) and write RUN_DIR (model, metrics, plots, preprocessing)."""
    from tinyml.data.dataset import load
    from tinyml.rundir import check_folder_for_training
    from tinyml.train.fit import TrainOptions
    from tinyml.train.fit import train as train_model
    from tinyml.train.specs import feature_spec_option
    from tinyml.train.zoo import model_kind

    model_kind(model_name)  # reject a bad name before loading anything
    check_folder_for_training(out_dir, force)
    options = TrainOptions(epochs=epochs, batch_size=batch_size, seed=seed, patience=patience, quiet=quiet,
                           arithmetic=arithmetic, false_alarms_per_day=false_alarms_per_day, guard_margin=guard_margin,
                           slope_guard=slope_guard, stuck_guard=stuck_guard,
                           **slope_settings(slope_guard, k=slope_k, h=slope_h, f_min=slope_f_min, slack=slope_slack),
                           augment_gain=augment_gain, augment_speed=augment_speed, augment_snr=augment_snr,
                           augment_resonance=augment_resonance, augment_copies=augment_copies, by=by)
    options.check()  # a bad option stops here, before the data is loaded
    ds = load(data)
    spec = feature_spec_option(features)
    result = train_model(ds, model_name, out_dir, options, spec, dataset_path=data, force=force)
    line = f"{model_name}: accuracy {result['accuracy']:.4f}, macro F1 {result['macro_f1']:.4f}"
    if result.get("auc") is not None:
        line += f", AUC {result['auc']:.4f}, threshold {result['threshold']:.4g}"
    click.echo(f"{line} on the {result['evaluated_on']} split ({result['n']} windows) -> {out_dir}")
    if slope_guard:
        from tinyml.rundir import read_model_info

        g = read_model_info(out_dir)["slope_guard"]
        click.echo(f"slope guard: thermal lag {g['tau_h'] * 60:.0f} min, {len(g['median'])} slots a day "
                   "(`tinyml detect` and the device's firmware apply it; these metrics are without it)")
    if stuck_guard is not None:
        from tinyml.rundir import read_model_info

        g = read_model_info(out_dir)["stuck_guard"]
        click.echo(f"stuck guard: training windows repeat a sample up to {g['seen']} times in a row; more than "
                   f"{g['bound']} is anomalous")
    if "leave_one_group_out" in result:
        from tinyml.train.shift import format_table

        click.echo(format_table(result["leave_one_group_out"]))


def slope_settings(on: bool, **given: float | None) -> dict[str, float]:
    """The --slope-* options given, as TrainOptions fields; refused without --slope-guard (they would do nothing)."""
    from tinyml.errors import InputError

    given = {k: v for k, v in given.items() if v is not None}
    if given and not on:
        raise InputError(f"--slope-{next(iter(given)).replace('_', '-')} tunes the slope guard, which is off",
                         "add --slope-guard")
    return {f"slope_{k}": v for k, v in given.items()}


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--by", required=True, help="Group column to hold out, one group at a time (severity, speed, load, "
                                          "..., or group: the recording groups).")
@click.option("--no-retrain", is_flag=True, help="Score RUN as trained on each group of --split instead of "
                                                 "retraining with each group held out.")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="test", show_default=True,
              help="With --no-retrain: the split of DATA to score.")
@click.option("--epochs", type=int, default=None, help="Epochs per fold (default: the run's own setting).")
@click.option("--out", "out_path", type=OUT_FILE, default=None, help="Also write the table as JSON.")
def evaluate(run_dir: Path, data: Path, by: str, no_retrain: bool, split: str, epochs: int | None,
             out_path: Path | None) -> None:
    """Accuracy per held-out group of DATA: for each value of --by, retrain RUN's configuration
    (model, features, options, augmentation) without it and score float and int8 on it."""
    from tinyml.data.dataset import load
    from tinyml.errors import InputError
    from tinyml.outputs import write_json
    from tinyml.rundir import open_model
    from tinyml.train import shift

    open_model(run_dir, bare=False)  # a bad run fails before the data is read
    if epochs is not None and epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}", "use 1 or more")
    ds = load(data)
    if no_retrain:
        table = shift.per_group(run_dir, ds, by, split)
    else:
        shift.levels(ds, by)
        table = shift.retrain_like(run_dir, ds, by, epochs=epochs)
    click.echo(shift.format_table(table))
    if out_path is not None:
        write_json(out_path, table)


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset (.npz); defaults to the one the run was trained on.")
@click.option("--tolerance", type=float, default=None,
              help="Allowed int8 loss: points of accuracy (default: 1 point or 2 evaluated windows, whichever "
                   "is larger) or AUC for anomaly models (default 0.01).")
def quantize(run_dir: Path, data: Path | None, tolerance: float | None) -> None:
    """Full-int8 quantization of RUN_DIR/model.keras with a float-vs-int8 report."""
    from tinyml.quantize import SCORERS, int8_key, quantize_run

    res = quantize_run(run_dir, data, tolerance)
    r = res.report
    m = r["metric"]
    click.echo(f"{m}: float {r['float'][m]:.4f}, int8 LiteRT {r['int8_litert'][m]:.4f}, "
               f"int8 {SCORERS[r['int8_scored_by']]} {r[int8_key(r)][m]:.4f} ({r['tflite_bytes']} bytes) "
               f"-> {res.tflite_path}")
    if r.get("int8_threshold") is not None:
        click.echo(f"threshold: float {r['float']['threshold']:.4g}, int8 {r['int8_threshold']:.4g} (chosen on the "
                   "int8 model's own validation scores; the device decides with it)")


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "out_path", type=OUT_FILE, required=True, help="CSV file to write.")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="all", show_default=True)
@click.option("--runtime", type=click.Choice(["litert", "tflm"]), default="litert", show_default=True,
              help="Interpreter for an int8 .tflite MODEL.")
def predict(model: Path, data: Path, out_path: Path, split: str, runtime: str) -> None:
    """Score every window of DATA with MODEL (run dir, model.keras or model_int8.tflite)."""
    from tinyml.train.predict import departure_warning, format_summary, predict_file

    summary = predict_file(model, data, out_path, split, runtime)
    click.echo(format_summary(summary, out_path))
    if (warning := departure_warning(summary)) is not None:
        click.echo(warning, err=True)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("series", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "out_path", type=OUT_FILE, required=True, help="Events CSV to write.")
@click.option("--labels", type=click.Path(path_type=Path, dir_okay=False),
              help="Labelled intervals (start,end,label CSV/JSON or NAB combined_windows.json) to score against.")
@click.option("--time-column", default="timestamp", show_default=True, help="CSV column of timestamps.")
@click.option("--columns", help="Signal columns, comma-separated (default: every numeric column).")
@click.option("--time-format", help="s, ms or a strptime pattern (default: numbers or ISO 8601).")
@click.option("--on-backwards", type=click.Choice(["refuse", "drop", "sort", "split", "continue"]), default="refuse",
              show_default=True, help="Duplicated or backwards times (docs/series.md).")
@click.option("--max-gap", type=float, help="Seconds between samples that split the series.")
@click.option("--hop", type=int, help="Samples between windows (default: the hop of the model's training data).")
@click.option("--k", "k", type=int, default=2, show_default=True, help="Alarm when K of the last N windows are anomalous.")
@click.option("--n", "n", type=int, default=3, show_default=True)
@click.option("--clear-k", type=int, default=0, show_default=True, help="Clear when this many or fewer are.")
@click.option("--escalate", type=float, help="An open alarm fires anew (a new event) on a window scoring this many "
              "times its lowest anomalous score since it fired (default 3).")
@click.option("--no-escalate", is_flag=True, help="Never re-fire an open alarm.")
@click.option("--runtime", type=click.Choice(["litert", "tflm"]), default="litert", show_default=True,
              help="Interpreter for an int8 .tflite MODEL.")
def detect(model: Path, series: Path, out_path: Path, labels: Path | None, time_column: str, columns: str | None,
           time_format: str | None, on_backwards: str, max_gap: float | None, hop: int | None, k: int, n: int,
           clear_k: int, escalate: float | None, no_escalate: bool, runtime: str) -> None:
    """Run an anomaly MODEL over a timestamped SERIES as the device would; write alarm events (and scores)."""
    from tinyml.data.timestamps import iso
    from tinyml.errors import InputError
    from tinyml.outputs import write_atomic
    from tinyml.train.detect import DetectOptions, check_within, events_csv, labelled_events, score_alarms
    from tinyml.train.detect import detect as run_detect

    if no_escalate and escalate is not None:
        raise InputError("--escalate and --no-escalate contradict each other", "give one of them")
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    opts = DetectOptions(time_column=time_column, columns=cols, time_format=time_format, on_backwards=on_backwards,
                         max_gap=max_gap, hop=hop, k=k, n=n, clear_k=clear_k,
                         escalate=None if no_escalate else DetectOptions.escalate if escalate is None else escalate,
                         runtime=runtime)
    intervals = labelled_events(labels, series, time_format=time_format, normal_class="normal") if labels else None
    events, summary = run_detect(model, series, opts)
    if intervals is not None:
        check_within(intervals, summary, labels)
    write_atomic(out_path, events_csv(events, summary["clock_shifts"]))
    days = summary["span_seconds"] / 86400
    click.echo(f"{len(events)} alarm event(s) in {summary['windows']} windows (hop {summary['hop']}) over "
               f"{days:.3g} days of data, rule: {summary['rule']}; {summary['anomalous_windows']} window(s) above "
               f"the threshold, {summary['guard_windows']} of them by the input"
               + (" or stuck" if summary["stuck_guard"] else "") + " guard alone"
               + (f", {summary['slope_guard_windows']} by the slope guard alone"
                  if summary["slope_guard"] else "")
               + (f", {summary['sensor_fault_windows']} sensor fault(s) (frozen readings, alarmed at once)"
                  if summary["stuck_guard"] else "") + f" -> {out_path}")
    if intervals is not None:
        s = score_alarms(events, intervals, summary)
        for d in s["detected"]:
            click.echo(f"  detected {iso(d['start'])}..{iso(d['end'])}: alarm {iso(d['alarm'])}, "
                       f"lead time {d['lead_s'] / 3600:.3g} h" + (" (late: its window holds the event's end)"
                                                                 if d["late"] else ""))
        for m in s["missed"]:
            click.echo(f"  missed   {iso(m['start'])}..{iso(m['end'])}" + (
                f" (the data holds {m['held_s'] / 3600:.2g} h of its {m['length_s'] / 3600:.2g} h)"
                if m["held_s"] < m["length_s"] else ""))
        for m in s["unobserved"]:
            click.echo(f"  in a gap {iso(m['start'])}..{iso(m['end'])}: no window holds a sample of it, not scored")
        gaps = f"; {len(s['unobserved'])} labelled event(s) in gaps of the data, not scored" if s["unobserved"] else ""
        fa = f"false alarms {s['false_alarms']} ({s['false_alarms_per_day']:.3g} per day)"
        click.echo(f"events detected {len(s['detected'])}/{s['events']} ({s['late']} late), missed {len(s['missed'])}, "
                   f"{fa}, NAB score {s['nab_score']:.1f} (standard profile){gaps}" if s["events"] else
                   f"no labelled events to score{gaps}; {fa}")
