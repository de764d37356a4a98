"""`make demo`: the main job end to end on synthetic data, printing a short summary.

The demo is a list of steps; each takes the shared ``DemoContext`` and returns one summary
line. Later stages (codegen, firmware, validate, gateway) append their own step functions to
``STEPS``. Output goes to ./demo-out/ (or the folder given as the first argument).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tinyml.errors import TinymlError


@dataclass
class DemoContext:
    out: Path
    artifacts: dict[str, Path] = field(default_factory=dict)  # name -> file, for later steps

    @property
    def run_dir(self) -> Path:
        return self.out / "run"


def step_data(ctx: DemoContext) -> str:
    from tinyml.data.synth import VibrationOptions, synth_vibration

    ds = synth_vibration(VibrationOptions(per_class=200, seed=0))
    ctx.artifacts["data"] = ds.save(ctx.out / "vibration.npz")
    return f"{ds.n} windows of {ds.x.shape[1]}x{ds.x.shape[2]} at {ds.fs:g} Hz, classes: {', '.join(ds.classes)}"


def step_train(ctx: DemoContext) -> str:
    from tinyml.data.dataset import load
    from tinyml.train.fit import TrainOptions, train

    r = train(load(ctx.artifacts["data"]), "cnn1d", ctx.run_dir, TrainOptions(epochs=40, quiet=True),
              dataset_path=ctx.artifacts["data"], force=True)
    ctx.artifacts["run"] = ctx.run_dir
    return f"cnn1d float accuracy {r['accuracy']:.4f}, macro F1 {r['macro_f1']:.4f} ({r['n']} test windows)"


def step_quantize(ctx: DemoContext) -> str:
    from tinyml.quantize import quantize_run

    res = quantize_run(ctx.run_dir)  # default tolerance: fails the demo if int8 loses more than 1 point
    ctx.artifacts["tflite"] = res.tflite_path
    r = res.report
    return (f"int8 {r['tflite_bytes']} bytes: accuracy LiteRT {r['int8_litert']['accuracy']:.4f}, "
            f"TFLM {r['int8_tflm']['accuracy']:.4f} (float {r['float']['accuracy']:.4f})")


def step_inspect(ctx: DemoContext) -> str:
    from tinyml.model.inspect import describe

    rep = describe(ctx.artifacts["tflite"].read_bytes(), codegen=False)
    return (f"{rep['parameters']} parameters, {rep['macs']} MACs, TFLM arena "
            f"{rep['arena']['tflm_host_min_bytes']} bytes, ops TFLM lacks: {rep['tflm_missing_ops'] or 'none'}")


def step_export(ctx: DemoContext) -> str:
    from tinyml.export.c_array import export_c_array

    h, c = export_c_array(ctx.artifacts["tflite"], ctx.out / "c_array", "model_data")
    ctx.artifacts["c_array"] = c
    return f"{h.name} and {c.name} in {c.parent}"


def step_firmware(ctx: DemoContext) -> str:
    from tinyml.firmware.boards import load_board
    from tinyml.firmware.build import build_project
    from tinyml.firmware.render import render_project
    from tinyml.rundir import int8_model

    project = render_project(load_board("qemu-mps2-an386"), int8_model(ctx.run_dir), ctx.out / "firmware")
    size = build_project(project)
    ctx.artifacts["firmware"] = project
    return (f"qemu-mps2-an386 firmware in {project}: flash {size.flash_bytes:,} B, static RAM {size.ram_bytes:,} B "
            f"(arena {size.arena_bytes:,} B, stack {size.stack_bytes:,} B)")


def step_validate(ctx: DemoContext) -> str:
    import json

    from tinyml.firmware.boards import load_board
    from tinyml.firmware.build import ELF_NAME, measure
    from tinyml.firmware.render import read_manifest
    from tinyml.hil import prepare_inputs, validate
    from tinyml.rundir import int8_model

    board, model = load_board("qemu-mps2-an386"), int8_model(ctx.run_dir)
    elf = ctx.artifacts["firmware"] / ELF_NAME
    size = measure(elf, board, int(read_manifest(ctx.artifacts["firmware"]).get("arena_bytes", 0)))
    report = validate(board, model, prepare_inputs(model, ctx.artifacts["data"], "test", 60), elf=elf,
                      sizes=(size.flash_bytes, size.ram_bytes, size.arena_bytes))
    (ctx.out / "validation.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print("\n".join("            " + line for line in report.summary()), flush=True)
    return f"{report.inputs} test windows on emulated Cortex-M4F, {report.mismatches} mismatches; {ctx.out / 'validation.json'}"


def step_report(ctx: DemoContext) -> str:
    from tinyml.report import REPORT_NAME, write_report

    path = write_report(ctx.run_dir, ctx.out / REPORT_NAME, validations=[ctx.out / "validation.json"])
    return f"the run on one page: {path.resolve()}"


def step_gateway(ctx: DemoContext) -> str:
    from tinyml.gateway.demo import stream_through_gateway

    summary = stream_through_gateway(ctx.artifacts["tflite"], ctx.out / "gateway", devices=3, seconds=8.0)
    head, status = summary.split("\n", 1)
    print("\n".join("            " + line for line in status.splitlines()), flush=True)
    return f"{head}; database {ctx.out / 'gateway' / 'gateway.db'}"


def step_sensor(ctx: DemoContext) -> str:
    """A temperature model in run mode on the emulated Cortex-M4F, reading QEMU's TMP105 through
    the firmware's own I2C driver, until the gateway raises the anomaly alert."""
    import subprocess

    from tinyml.data.synth import TemperatureOptions, synth_temperature
    from tinyml.errors import ToolError
    from tinyml.firmware.boards import load_board
    from tinyml.firmware.render import render_project
    from tinyml.gateway.sensor_demo import temperature_alert
    from tinyml.quantize import quantize_run
    from tinyml.rundir import int8_model
    from tinyml.train.fit import TrainOptions, train

    base = ctx.out / "sensor"
    ds = synth_temperature(TemperatureOptions(window=32, seed=1))
    data = ds.save(base / "temperature.npz")
    run_dir = base / "run"
    train(ds, "autoencoder", run_dir, TrainOptions(seed=1, quiet=True), dataset_path=data, force=True)  # the demo owns it
    quantize_run(run_dir, tolerance=0.05)
    # one sample a minute in the data, replayed 180x faster: 3 samples a second from the TMP105
    project = render_project(load_board("qemu-mps2-an386"), int8_model(run_dir), base / "firmware",
                             sensor="tmp105", sensor_options={"speedup": "180"})
    build = subprocess.run(["make", "-s", "-j2", "MODE=run"], cwd=project, capture_output=True, text=True)
    if build.returncode != 0:
        raise ToolError(f"the run-mode firmware did not build: {build.stderr.strip()[-300:]}",
                        f"run `make MODE=run` in {project}")
    lines = temperature_alert(run_dir, project / "build" / "firmware.elf", base / "gateway")
    print("\n".join("            " + line for line in lines), flush=True)
    return "emulated TMP105 -> run-mode firmware (I2C driver, on-device model) -> gateway alert"


def step_evidence(ctx: DemoContext) -> str:
    """The raw TMP105 windows the firmware sent when the alert fired, exported as a dataset
    (what a person relabels and retrains on: docs/gateway.md)."""
    from tinyml.gateway.evidence import export

    out = ctx.out / "sensor" / "evidence.npz"
    ds, n = export(ctx.out / "sensor" / "gateway" / "gateway.db", out)
    decided = ", ".join(f"{c} {int((ds.y == i).sum())}" for i, c in enumerate(ds.classes))
    return (f"{n} evidence window(s) of {ds.x.shape[1]} samples at {ds.fs:g} Hz exported to {out} "
            f"(the model said: {decided or 'nothing stored'}); relabel with `tinyml gateway export --label`")


STEPS: list[tuple[str, Callable[[DemoContext], str]]] = [
    ("data", step_data), ("train", step_train), ("quantize", step_quantize),
    ("inspect", step_inspect), ("export", step_export), ("firmware", step_firmware), ("validate", step_validate),
    ("report", step_report), ("gateway", step_gateway), ("sensor", step_sensor), ("evidence", step_evidence),
]


def run(out: Path) -> DemoContext:
    ctx = DemoContext(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    for name, fn in STEPS:
        t0 = time.monotonic()
        line = fn(ctx)
        print(f"[{name:>9}] {line} ({time.monotonic() - t0:.1f} s)", flush=True)
    print(f"demo finished in {time.monotonic() - start:.1f} s; artifacts in {out}/")
    return ctx


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        run(Path(argv[0] if argv else "demo-out"))
    except TinymlError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
