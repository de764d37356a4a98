"""The pipeline's stages: what each reads, writes and is configured by, and how it runs.

Each stage calls the same library functions as its own CLI command and writes into the
project's run directory (OUT):

    OUT/dataset.npz        data       synth or import
    OUT/model/             train      model.keras, model.json, preprocess.json, metrics.json
                           quantize   model_int8.tflite, quantization.json
    OUT/codegen/           codegen    PREFIX.h, PREFIX.c, PREFIX.codegen.json
    OUT/firmware/          firmware   a firmware project and its build/firmware.elf
    OUT/validation.json    validate   device outputs against the TFLM host reference
    OUT/firmware/tinyml-manifest.json + .sig   sign
    OUT/report.html        report     the run as one self-contained HTML page
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyml import rundir, signing
from tinyml.firmware import render
from tinyml.outputs import write_json
from tinyml.project.config import Project

STAGES = ("data", "train", "quantize", "codegen", "firmware", "validate", "sign", "report")


@dataclass(frozen=True)
class Stage:
    name: str
    settings: Callable[[Project], dict[str, Any]]   # the part of tinyml.toml this stage depends on
    inputs: Callable[[Project], list[Path]]         # files it reads (their content is fingerprinted)
    outputs: Callable[[Project], list[Path]]        # files that must exist for a skip
    run: Callable[[Project], dict[str, Any]]        # does the work; returns its key figures
    figure: Callable[[dict[str, Any]], str]         # the key figures in a few words


def dataset_path(p: Project) -> Path:
    return p.out / "dataset.npz"


def run_dir(p: Project) -> Path:
    """The training run directory inside OUT (not "run": OUT itself defaults to "run")."""
    return p.out / "model"


def firmware_dir(p: Project) -> Path:
    return p.out / "firmware"


def _model_files(p: Project) -> list[Path]:
    return [run_dir(p) / n for n in (rundir.MODEL_INT8, rundir.MODEL_JSON, rundir.PREPROCESS_JSON)]


def _elf(p: Project) -> Path:
    from tinyml.firmware.build import ELF_NAME

    return firmware_dir(p) / ELF_NAME


# ---- data ------------------------------------------------------------------------------

def _data_inputs(p: Project) -> list[Path]:
    from tinyml.data.importer import find_sources

    return [path for path, _ in find_sources(list(p.import_paths))] if p.import_paths else []


def _data_run(p: Project) -> dict[str, Any]:
    if p.synth == "vibration":
        from tinyml.data.synth import synth_vibration as make
    elif p.synth == "temperature":
        from tinyml.data.synth import synth_temperature as make
    else:
        from tinyml.data.importer import import_data

        def make(options: Any) -> Any:
            return import_data(list(p.import_paths), options)
    ds = make(p.data)
    ds.save(dataset_path(p))
    return {"windows": ds.n, "classes": len(ds.classes)}


DATA = Stage(
    "data",
    settings=lambda p: {"synth": p.synth, "options": dataclasses.asdict(p.data)},
    inputs=_data_inputs,
    outputs=lambda p: [dataset_path(p)],
    run=_data_run,
    figure=lambda f: f"{f['windows']} windows, {f['classes']} classes",
)


# ---- train and quantize ------------------------------------------------------------------

def _train_run(p: Project) -> dict[str, Any]:
    from tinyml.data.dataset import load
    from tinyml.train.fit import train

    options = dataclasses.replace(p.train, quiet=False)  # progress on stderr; not part of the fingerprint
    result = train(load(dataset_path(p)), p.model, run_dir(p), options, p.features, dataset_path=dataset_path(p),
                   force=True)  # the project owns its model folder
    figures = {"accuracy": result["accuracy"], "split": result["evaluated_on"]}
    if result.get("auc") is not None:
        figures["auc"] = result["auc"]
    return figures


def _train_figure(f: dict[str, Any]) -> str:
    auc = f", AUC {f['auc']:.3f}" if "auc" in f else ""
    return f"accuracy {f['accuracy']:.3f}{auc} ({f['split']})"


TRAIN = Stage(
    "train",
    settings=lambda p: {"model": p.model, "features": p.features, "options": dataclasses.asdict(p.train)},
    inputs=lambda p: [dataset_path(p)],
    outputs=lambda p: [run_dir(p) / n for n in (rundir.MODEL_KERAS, rundir.MODEL_JSON,
                                                rundir.PREPROCESS_JSON, rundir.METRICS_JSON)],
    run=_train_run,
    figure=_train_figure,
)


def _quantize_run(p: Project) -> dict[str, Any]:
    from tinyml.quantize import SCORERS, int8_key, quantize_run

    r = quantize_run(run_dir(p), dataset_path(p), p.tolerance, tolerance_key=f"[quantize] tolerance in {p.path}").report
    m = r["metric"]
    return {"metric": m, "float": r["float"][m], "int8": r[int8_key(r)][m], "bytes": r["tflite_bytes"],
            "scored_by": SCORERS[r["int8_scored_by"]]}


QUANTIZE = Stage(
    "quantize",
    settings=lambda p: {"tolerance": p.tolerance},
    inputs=lambda p: [run_dir(p) / rundir.MODEL_KERAS, run_dir(p) / rundir.MODEL_JSON,
                      run_dir(p) / rundir.PREPROCESS_JSON, dataset_path(p)],
    outputs=lambda p: [run_dir(p) / rundir.MODEL_INT8, run_dir(p) / rundir.QUANTIZATION_JSON],
    run=_quantize_run,
    figure=lambda f: (f"int8 {f['metric']} {f['int8']:.3f} ({f.get('scored_by', 'TFLM')}; float {f['float']:.3f}), "
                      f"{f['bytes']:,} B"),
)


# ---- codegen -----------------------------------------------------------------------------

def _codegen_outputs(p: Project) -> list[Path]:
    prefix = p.codegen["prefix"]
    return [p.out / "codegen" / f"{prefix}{ext}" for ext in (".h", ".c", ".codegen.json")]


def _codegen_run(p: Project) -> dict[str, Any]:
    from tinyml.codegen import generate
    from tinyml.codegen.host import write

    model = rundir.int8_model(run_dir(p))
    gen = generate(model.data, prefix=p.codegen["prefix"], target=p.codegen["target"], origin=model.tflite.name)
    write(gen, p.out / "codegen")
    write_json(_codegen_outputs(p)[2], gen.report)
    return {"arena": gen.arena_bytes, "weights": int(gen.report["weight_bytes"]), "target": gen.target}


CODEGEN = Stage(
    "codegen",
    settings=lambda p: dict(p.codegen),
    inputs=lambda p: [run_dir(p) / rundir.MODEL_INT8],
    outputs=_codegen_outputs,
    run=_codegen_run,
    figure=lambda f: f"arena {f['arena']:,} B, weights {f['weights']:,} B ({f['target']})",
)


# ---- firmware ----------------------------------------------------------------------------

def _firmware_inputs(p: Project) -> list[Path]:
    """The model, the board file and every template file the project is rendered from."""
    from tinyml.paths import template_dir

    folders = [template_dir(name) for name in ("common", "baremetal-common", p.board.template)]
    if p.sensor:
        folders += [template_dir("sensors"), template_dir("buses")]
    templates = sorted(f for d in folders if d is not None for f in d.rglob("*") if f.is_file())
    return [*_model_files(p), p.board.source, *templates]


def _firmware_run(p: Project) -> dict[str, Any]:
    from tinyml.hil import build_firmware

    size = build_firmware(p.board, rundir.int8_model(run_dir(p)), firmware_dir(p), runtime=p.runtime,
                          target=p.codegen["target"], mode=p.mode, sensor=p.sensor, sensor_options=p.sensor_options)
    return {"board": p.board.name, "flash": size.flash_bytes, "ram": size.ram_bytes, "arena": size.arena_bytes}


FIRMWARE = Stage(
    "firmware",
    settings=lambda p: {"board": p.board.name, "runtime": p.runtime, "codegen_target": p.codegen["target"],
                        **({"sensor": p.sensor, "sensor_options": p.sensor_options} if p.sensor else {}),
                        **({"mode": p.mode} if p.mode != "validate" else {})},
    inputs=_firmware_inputs,
    outputs=lambda p: [_elf(p), firmware_dir(p) / render.MANIFEST],
    run=_firmware_run,
    figure=lambda f: f"flash {f['flash']:,} B, RAM {f['ram']:,} B ({f['board']})",
)


# ---- validate ----------------------------------------------------------------------------

def _validate_run(p: Project) -> dict[str, Any]:
    from tinyml.hil import check_on_device, prepare_inputs

    v = p.validate or {}
    info = rundir.int8_model(run_dir(p))
    tests = prepare_inputs(info, dataset_path(p), None if v["split"] == "all" else v["split"], v["limit"])
    report = check_on_device(p.board, info, tests, project=firmware_dir(p), build=False, runtime=p.runtime,
                             timeout=v["timeout"], tolerance=v["tolerance"], report_path=p.out / "validation.json",
                             progress=True)
    return {"mismatches": report.mismatches, "inputs": report.inputs, "accuracy": report.accuracy,
            "host_accuracy": report.host_accuracy}


def _validate_figure(f: dict[str, Any]) -> str:
    accuracy = "" if f["accuracy"] is None else f", device accuracy {f['accuracy']:.3f}"
    if f["accuracy"] is not None and f.get("host_accuracy") is not None:
        accuracy += f" (host {f['host_accuracy']:.3f})"
    return f"{f['mismatches']} mismatches on {f['inputs']} inputs{accuracy}"


VALIDATE = Stage(
    "validate",
    settings=lambda p: dict(p.validate or {}),
    inputs=lambda p: [_elf(p), firmware_dir(p) / render.MANIFEST, *_model_files(p), dataset_path(p)],
    outputs=lambda p: [p.out / "validation.json"],
    run=_validate_run,
    figure=_validate_figure,
)


# ---- sign --------------------------------------------------------------------------------

def _sign_inputs(p: Project) -> list[Path]:
    key = p.sign_key
    public = key.with_name(key.name + ".pub") if key else None
    folder = firmware_dir(p)
    signed = [folder / rel for rel in signing.collect_files(folder)] if folder.is_dir() else []
    return [*signed, *([public] if public and public.is_file() else [])]


def _sign_run(p: Project) -> dict[str, Any]:
    manifest = signing.sign_folder(firmware_dir(p), p.sign_key, p.board.name)
    return {"files": len(json.loads(manifest.read_text())["files"])}


SIGN = Stage(
    "sign",
    settings=lambda p: {"key": str(p.sign_key)},
    inputs=_sign_inputs,
    outputs=lambda p: [firmware_dir(p) / signing.MANIFEST, firmware_dir(p) / signing.SIGNATURE],
    run=_sign_run,
    figure=lambda f: f"{f['files']} files signed",
)


# ---- report ------------------------------------------------------------------------------

def report_path(p: Project) -> Path:
    return p.out / "report.html"


def _report_inputs(p: Project) -> list[Path]:
    """What the page shows: the run's JSON and model, the dataset and the validation report."""
    run = run_dir(p)
    required = [run / n for n in (rundir.MODEL_JSON, rundir.METRICS_JSON, rundir.QUANTIZATION_JSON,
                                  rundir.PREPROCESS_JSON, rundir.MODEL_INT8)] + [dataset_path(p)]
    optional = [run / rundir.HISTORY_JSON, *([p.out / "validation.json"] if p.validate is not None else [])]
    return required + [path for path in optional if path.is_file()]


def _report_run(p: Project) -> dict[str, Any]:
    from tinyml.report import write_report

    path = write_report(p.out, report_path(p))
    return {"path": str(path), "bytes": path.stat().st_size}


REPORT = Stage(
    "report",
    settings=lambda p: {},
    inputs=_report_inputs,
    outputs=lambda p: [report_path(p)],
    run=_report_run,
    figure=lambda f: f"{f['path']} ({f['bytes'] / 1024:.0f} KiB)",
)


def enabled(p: Project) -> list[Stage]:
    """The stages this project configures, in pipeline order."""
    stages = [DATA, TRAIN, QUANTIZE, CODEGEN]
    if p.board is not None:
        stages.append(FIRMWARE)
    if p.validate is not None:
        stages.append(VALIDATE)
    if p.sign_key is not None:
        stages.append(SIGN)
    stages.append(REPORT)
    return stages
