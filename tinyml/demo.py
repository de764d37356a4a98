"""`make demo`'s last part: what happens once the models run on devices.

The Makefile first runs `tinyml run` on two example projects, so data, training, int8,
generated C, firmware and on-device validation are the pipeline's own stages:
``examples/vibration`` (a cnn1d validated on the emulated Cortex-M4F) and ``examples/tmp105``
(a temperature autoencoder built into run-mode firmware that reads a TMP105). Each step here
is then one library call on what those projects made:

- gateway: the vibration model on emulated devices, streamed through a gateway to Mosquitto;
- sensor: the run-mode firmware on QEMU reading QEMU's TMP105 until the gateway's anomaly alert;
- evidence: the raw windows the firmware sent with the alert, exported as a dataset.

Usage: ``python -m tinyml.demo [VIBRATION_PROJECT TMP105_PROJECT [OUT]]`` (defaults:
examples/vibration, examples/tmp105, demo-out).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinyml.errors import InputError, TinymlError
from tinyml.project.config import Project, read_project
from tinyml.project.stages import firmware_dir, run_dir

DEFAULT_ARGS = ("examples/vibration", "examples/tmp105", "demo-out")


@dataclass(frozen=True)
class Demo:
    vibration: Project
    sensor: Project
    out: Path


def step_gateway(d: Demo) -> str:
    from tinyml.gateway.demo import stream_through_gateway
    from tinyml.rundir import int8_model

    model = int8_model(run_dir(d.vibration))  # refuses a missing or stale int8 model
    summary = stream_through_gateway(model.tflite, d.out / "gateway", devices=3, seconds=8.0)
    head, status = summary.split("\n", 1)
    _indent(status.splitlines())
    return f"{head}; database {d.out / 'gateway' / 'gateway.db'}"


def step_sensor(d: Demo) -> str:
    """The TMP105 project's run-mode firmware on the emulated Cortex-M4F, reading QEMU's TMP105
    through its own I2C driver, until the gateway raises the anomaly alert."""
    from tinyml.gateway.sensor_demo import temperature_alert

    _indent(temperature_alert(run_dir(d.sensor), run_mode_elf(d.sensor), d.out / "sensor"))
    return f"emulated {d.sensor.sensor} -> run-mode firmware (I2C driver, on-device model) -> gateway alert"


def step_evidence(d: Demo) -> str:
    """The raw windows the firmware sent when the alert fired, as a dataset (what a person
    relabels and retrains on: docs/gateway.md)."""
    from tinyml.gateway.evidence import export

    out = d.out / "sensor" / "evidence.npz"
    ds, n = export(d.out / "sensor" / "gateway.db", out)
    decided = ", ".join(f"{c} {int((ds.y == i).sum())}" for i, c in enumerate(ds.classes))
    return (f"{n} evidence window(s) of {ds.x.shape[1]} samples at {ds.fs:g} Hz exported to {out} "
            f"(the model said: {decided or 'nothing stored'}); relabel with `tinyml gateway export --label`")


STEPS: list[tuple[str, Callable[[Demo], str]]] = [
    ("gateway", step_gateway), ("sensor", step_sensor), ("evidence", step_evidence),
]


def run_mode_elf(p: Project) -> Path:
    """The project's run-mode sensor firmware, refused before any step starts when it has none."""
    from tinyml.firmware.build import ELF_NAME

    elf = firmware_dir(p) / ELF_NAME
    if p.mode != "run" or p.sensor is None or not elf.is_file():
        raise InputError(f"{p.path} has no run-mode sensor firmware at {elf}",
                         f'give it [firmware] mode = "run" and a [sensor], then `tinyml run --project {p.path}`')
    return elf


def _indent(lines: list[str]) -> None:
    print("\n".join("            " + line for line in lines), flush=True)


def run(vibration: Path, sensor: Path, out: Path) -> None:
    demo = Demo(read_project(vibration), read_project(sensor), out)
    run_mode_elf(demo.sensor)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    for name, fn in STEPS:
        t0 = time.monotonic()
        line = fn(demo)
        print(f"[{name:>9}] {line} ({time.monotonic() - t0:.1f} s)", flush=True)
    print(f"demo finished in {time.monotonic() - start:.1f} s; the projects' artifacts in "
          f"{demo.vibration.out}/ and {demo.sensor.out}/, the gateways' in {out}/")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (0, 2, 3):
        print("error: expected VIBRATION_PROJECT TMP105_PROJECT [OUT] (hint: run `make demo`)", file=sys.stderr)
        sys.exit(2)
    args = [*argv, *DEFAULT_ARGS[len(argv):]]
    try:
        run(Path(args[0]), Path(args[1]), Path(args[2]))
    except TinymlError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
