"""``tinyml data``: synth, import and info. Parsing and printing only; the work is in tinyml.data."""

from __future__ import annotations

import json

import click

from tinyml.cli.outpath import OUT_FILE
from tinyml.errors import InputError


def _csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise InputError(f"empty list {value!r}", "give comma-separated names, e.g. x,y,z")
    return items


def _numbers(flag: str, value: str | None) -> list[float] | None:
    items = _csv_list(value)
    try:
        return None if items is None else [float(v) for v in items]
    except ValueError:
        raise InputError(f"{flag} {value!r} is not a list of numbers", f"e.g. {flag} 900,1500,2100") from None


def _mapping(value: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    pairs = [item.split("=", 1) for item in _csv_list(value) or []]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise InputError(f"cannot read {value!r} as OLD=NEW pairs", "e.g. --class-names 1=balanced,2=faulty")
    return {a.strip(): b.strip() for a, b in pairs}


def _report(ds, out: str) -> None:
    from tinyml.data.info import summarize
    info = summarize(ds)
    per_split = ", ".join(f"{k} {v['windows']}" for k, v in info["splits"].items())
    click.echo(f"wrote {out}: {info['windows']} windows x {info['window']} samples x {len(info['channels'])} "
               f"channels at {info['fs']:g} Hz, {len(ds.classes)} classes, {info['groups']} groups ({per_split})")


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a number", "e.g. --rpm 1797 or --rpm-range 600:1800") from None


def _rpm(value: str | None) -> float | str | dict[str, float] | None:
    if value is None or value.strip() == "estimate":
        return None if value is None else "estimate"
    if "=" in value:
        return {k: _number(v, "--rpm") for k, v in (_mapping(value) or {}).items()}
    return _number(value.strip(), "--rpm")


def _rpm_range(value: str | None) -> list[float] | None:
    if value is None:
        return None
    parts = value.split(":")
    if len(parts) != 2:
        raise InputError(f"--rpm-range {value!r} is not LOW:HIGH", "e.g. --rpm-range 600:1800")
    return [_number(p.strip(), "--rpm-range") for p in parts]


@click.group()
def data() -> None:
    """Synthesize, import and describe sensor datasets."""


@data.group()
def synth() -> None:
    """Physics-based synthetic datasets (seeded, reproducible, split by recording)."""


@synth.command("vibration")
@click.option("--out", required=True, type=OUT_FILE, help="Dataset file to write (.npz).")
@click.option("--per-class", "--windows", "per_class", type=int, default=200, show_default=True,
              help="Windows per class.")
@click.option("--window", type=int, default=256, show_default=True, help="Samples per window.")
@click.option("--fs", type=float, default=2560.0, show_default=True, help="Sampling rate in Hz.")
@click.option("--rpm", type=float, default=1500.0, show_default=True, help="Nominal shaft speed.")
@click.option("--rpm-spread", type=float, default=0.2, show_default=True,
              help="Per-recording speed variation (fraction).")
@click.option("--windows-per-recording", type=int, default=8, show_default=True)
@click.option("--val", type=float, default=0.15, show_default=True, help="Fraction of recordings for validation.")
@click.option("--test", type=float, default=0.15, show_default=True, help="Fraction of recordings for test.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--severities", help="Fault-size levels, each recording at one: low,medium,high (group column "
                                   "'severity').")
@click.option("--speeds", help="Shaft-speed levels in rpm, e.g. 900,1500,2100 (group column 'speed'; replaces "
                               "--rpm/--rpm-spread).")
@click.option("--loads", help="Load levels in percent of rated, e.g. 0,50,100 (group column 'load').")
@click.option("--resonances", help="Housing resonance levels in Hz, e.g. 700,1000 (group column 'resonance').")
@click.option("--noise", help="Sensor noise levels in g rms, e.g. 0.01,0.05 (group column 'noise').")
def synth_vibration_cmd(out: str, per_class: int, window: int, fs: float, rpm: float, rpm_spread: float,
                        windows_per_recording: int, val: float, test: float, seed: int, severities: str | None,
                        speeds: str | None, loads: str | None, resonances: str | None, noise: str | None) -> None:
    """3-axis accelerometer: healthy, imbalance, misalignment, looseness, bearing outer/inner race.

    Level options give every recording one operating point (severity fastest, then speed, load,
    resonance, noise) and record it as a group column for `tinyml evaluate --by`."""
    from tinyml.data.synth import VibrationOptions, synth_vibration
    ds = synth_vibration(VibrationOptions(per_class=per_class, window=window, fs=fs, rpm=rpm, rpm_spread=rpm_spread,
                                          windows_per_recording=windows_per_recording, val=val, test=test,
                                          seed=seed, severities=_csv_list(severities),
                                          speeds=_numbers("--speeds", speeds), loads=_numbers("--loads", loads),
                                          resonances=_numbers("--resonances", resonances),
                                          noise=_numbers("--noise", noise)))
    _report(ds, str(ds.save(out)))


@synth.command("temperature")
@click.option("--out", required=True, type=OUT_FILE, help="Dataset file to write (.npz).")
@click.option("--per-class", "--windows", "per_class", type=int, default=150, show_default=True,
              help="Windows per class.")
@click.option("--window", type=int, default=128, show_default=True, help="Samples per window.")
@click.option("--fs", type=float, default=1 / 60, show_default=True, help="Sampling rate in Hz (1/60: one a minute).")
@click.option("--windows-per-recording", type=int, default=6, show_default=True)
@click.option("--val", type=float, default=0.15, show_default=True, help="Fraction of recordings for validation.")
@click.option("--test", type=float, default=0.15, show_default=True, help="Fraction of recordings for test.")
@click.option("--seed", type=int, default=0, show_default=True)
def synth_temperature_cmd(out: str, per_class: int, window: int, fs: float, windows_per_recording: int,
                          val: float, test: float, seed: int) -> None:
    """Machine temperature: normal, step, runaway and stuck-sensor anomalies (normal class: normal)."""
    from tinyml.data.synth import TemperatureOptions, synth_temperature
    ds = synth_temperature(TemperatureOptions(per_class=per_class, window=window, fs=fs,
                                              windows_per_recording=windows_per_recording, val=val, test=test,
                                              seed=seed))
    _report(ds, str(ds.save(out)))


@data.command("import")
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", required=True, type=OUT_FILE, help="Dataset file to write (.npz).")
@click.option("--columns", help="CSV signal columns, comma-separated (default: every numeric column).")
@click.option("--time-column", help="CSV column of timestamps: numbers (s or ms) or ISO 8601 dates and times "
                                   "(gives the source rate, splits at gaps; see docs/series.md).")
@click.option("--time-format", help="How to read --time-column: s, ms, or a strptime pattern like '%d.%m.%Y %H:%M'.")
@click.option("--on-backwards", type=click.Choice(["refuse", "drop", "sort", "split", "continue"]), default="refuse",
              show_default=True, help="Duplicated or backwards times: refuse the file, drop those rows, sort the "
                                      "rows by time, start a new recording at each, or continue the clock past "
                                      "each (the row one step after the one before it).")
@click.option("--max-gap", type=float, help="Seconds between samples that split a recording "
                                            "(default: 2.5 times the median step).")
@click.option("--resample", "resample_method", type=click.Choice(["linear", "previous"]), default="linear",
              show_default=True, help="How irregular timestamps go onto the regular grid.")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False),
              help="Label windows by time interval: a start,end,label CSV/JSON, or NAB's combined_windows.json.")
@click.option("--unlabelled-as", type=click.Choice(["normal", "none"]), default="normal", show_default=True,
              help="Windows in no --labels interval: the normal class, or unlabelled.")
@click.option("--label-column", help="CSV column holding the class label.")
@click.option("--group-column", help="CSV column naming the recording/group (e.g. a speed level).")
@click.option("--label", help="Label for files that get none from a column or a PATH/<label>/ folder.")
@click.option("--variable", help=".mat/.npz array name pattern (glob or substring; default: the largest array).")
@click.option("--fs", type=float, help="Sampling rate in Hz of the dataset (sources at other rates are resampled).")
@click.option("--source-fs", type=float, help="Sampling rate of sources that carry none (default: --fs).")
@click.option("--window", type=int, default=256, show_default=True, help="Samples per window.")
@click.option("--hop", type=int, help="Samples between window starts (default: the window, no overlap).")
@click.option("--split", "split_mode", type=click.Choice(["group", "time", "random"]),
              help="group: whole recordings/groups per side (default for several files or --group-column); "
                   "time: each recording cut early/late; random: leaks, single recordings only.")
@click.option("--val", type=float, default=0.15, show_default=True,
              help="Fraction of groups (or of each recording's time, or of windows) for validation.")
@click.option("--test", type=float, default=0.15, show_default=True, help="The same for test.")
@click.option("--test-groups", "--holdout-groups", "test_groups",
              help="Groups held out as the test split, comma-separated (e.g. speed levels 25,45,65,85).")
@click.option("--val-groups", help="Groups for the validation split, comma-separated.")
@click.option("--fill", type=click.Choice(["linear", "previous", "zero"]),
              help="Fill missing/NaN/inf samples instead of rejecting the file.")
@click.option("--kind", type=click.Choice(["vibration", "temperature", "generic"]), default="generic",
              show_default=True)
@click.option("--normal-class", default="", help="Name of the normal class for anomaly-detection data.")
@click.option("--class-names", help="Rename labels, e.g. 1=balanced,2=perpendicular,3=opposite.")
@click.option("--rpm", "rpm_text", help="Shaft speed in rpm: one value, per recording (GROUP=RPM,...: group, "
                                        "file name or stem), or `estimate` (each recording's 1x peak in --rpm-range).")
@click.option("--rpm-column", help="CSV column of the shaft speed in rpm (each window gets its mean).")
@click.option("--rpm-range", "rpm_range_text", help="LOW:HIGH rpm, the machine's speed range: where --rpm estimate "
                                                   "and the bearing feature's on-device estimate search.")
@click.option("--bearing", help="The bearing: a name from bearings/ (e.g. 6205-2RS) or your own .toml file.")
@click.option("--seed", type=int, default=0, show_default=True)
def import_cmd(paths: tuple[str, ...], out: str, columns: str | None, time_column: str | None,
               label_column: str | None, group_column: str | None, label: str | None, variable: str | None,
               fs: float | None, source_fs: float | None, window: int, hop: int | None, split_mode: str | None,
               val: float, test: float, test_groups: str | None, val_groups: str | None, fill: str | None,
               kind: str, normal_class: str, class_names: str | None, seed: int, time_format: str | None,
               on_backwards: str, max_gap: float | None, resample_method: str, labels_file: str | None,
               unlabelled_as: str, rpm_text: str | None, rpm_column: str | None, rpm_range_text: str | None,
               bearing: str | None) -> None:
    """Import CSV, .mat and .npz recordings (files, or folders laid out as PATH/<label>/<files>)."""
    from tinyml.data.importer import ImportOptions, import_data
    opts = ImportOptions(columns=_csv_list(columns), time_column=time_column, label_column=label_column,
                         group_column=group_column, label=label, variable=variable, fs=fs, source_fs=source_fs,
                         window=window, hop=hop, split=split_mode, val=val, test=test,
                         test_groups=_csv_list(test_groups), val_groups=_csv_list(val_groups), fill=fill, kind=kind,
                         normal_class=normal_class, class_names=_mapping(class_names), seed=seed,
                         time_format=time_format, on_backwards=on_backwards, max_gap=max_gap,
                         resample=resample_method, labels=labels_file, unlabelled_as=unlabelled_as,
                         rpm=_rpm(rpm_text), rpm_column=rpm_column, rpm_range=_rpm_range(rpm_range_text),
                         bearing=bearing)
    ds = import_data(list(paths), opts)
    _report(ds, str(ds.save(out)))
    skipped = ds.meta.get("skipped_short_recordings", 0)
    if skipped:
        click.echo(f"note: {skipped} recording piece(s) shorter than --window {window} gave no windows", err=True)


@data.command("info")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info(file: str, as_json: bool) -> None:
    """Classes and counts, shapes, sampling rate, split sizes per class, per-channel statistics."""
    from tinyml.data.dataset import load
    from tinyml.data.info import format_summary, summarize
    summary = summarize(load(file))
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))
