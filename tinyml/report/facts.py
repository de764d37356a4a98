"""What the report shows, gathered from a run's artifacts as plain data.

The page is drawn from these facts only, so the numbers on it are the numbers in the JSON
artifacts (metrics.json, quantization.json, history.json, validation reports) or computed
here from the files they describe (the dataset, the int8 model). A validation report made
for another model than the run's int8 model is refused: its figures would describe a
different model.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyml import rundir
from tinyml.errors import InputError

EXAMPLE_POINTS = 256  # samples per channel drawn of an example window
SPECTRUM_POINTS = 128


@dataclass
class Facts:
    run_dir: Path
    model: dict[str, Any]
    metrics: dict[str, Any]
    quantization: dict[str, Any] | None = None
    history: dict[str, Any] | None = None
    preprocess: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    ops: list[dict[str, Any]] | None = None
    plan: dict[str, Any] | None = None
    validations: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be shown, and why


def locate(path: Path) -> tuple[Path, Path | None]:
    """(training run directory, project OUT directory or None) for a run or a project's OUT."""
    path = Path(path)
    if (path / rundir.MODEL_JSON).is_file():
        project = path.parent if (path.parent / ".tinyml-state.json").is_file() else None
        return path, project
    for inner in ("model", "run"):  # `tinyml run` writes OUT/model (OUT/run before)
        if (path / inner / rundir.MODEL_JSON).is_file():
            return path / inner, path
    raise InputError(f"{path} is neither a training run directory nor a `tinyml run` output folder",
                     "pass the --out of `tinyml train`, or the project's run directory ([project] out)")


def _optional_json(path: Path, notes: list[str], missing: str) -> dict[str, Any] | None:
    if not path.is_file():
        notes.append(missing)
        return None
    return rundir.read_json(path, path.name)


def gather(path: Path, validation_paths: list[Path]) -> Facts:
    run, project = locate(path)
    notes: list[str] = []
    facts = Facts(run, rundir.read_model_info(run), rundir.read_json(run / rundir.METRICS_JSON, "metrics"),
                  notes=notes)
    facts.quantization = _optional_json(run / rundir.QUANTIZATION_JSON, notes,
                                        "no quantization.json: run `tinyml quantize` for the int8 figures")
    facts.history = _optional_json(run / rundir.HISTORY_JSON, notes,
                                   "no history.json (trained by an older tinyml): re-train for training curves")
    facts.preprocess = _optional_json(run / rundir.PREPROCESS_JSON, notes, "no preprocess.json")
    facts.dataset = dataset_facts(_dataset_path(facts.model, project), notes)
    model_sha = None
    if (run / rundir.MODEL_INT8).is_file():
        data = rundir.open_model(run).tflite_file().read_bytes()  # a stale int8 model is refused, not shown
        model_sha = hashlib.sha256(data).hexdigest()
        facts.ops, facts.plan = model_facts(data, notes)
    found = (project / "validation.json").resolve() if project is not None else None
    paths = [*([found] if found is not None and found.is_file() else []), *(Path(v).resolve() for v in validation_paths)]
    for vpath in dict.fromkeys(paths):  # the project's own validation.json named again counts once
        if not vpath.is_file():
            raise InputError(f"validation report {vpath} not found", "pass a file written by `tinyml validate --report FILE`")
        report = rundir.read_json(vpath, "validation report")
        if "board" not in report or "mismatches" not in report:
            raise InputError(f"{vpath} is not a validation report", "pass a file written by `tinyml validate --report`")
        if report.get("model_sha256") != model_sha:
            if vpath == found:
                notes.append(f"{vpath.name} was made for another model (not this run's int8 model); left out")
                continue
            raise InputError(f"validation report {vpath} is for model {str(report.get('model_sha256'))[:12]}, "
                             f"not this run's int8 model ({str(model_sha)[:12]})",
                             "validate the current model again, or pass the run it was made for")
        report["source"] = str(vpath)
        report["limits"] = board_limits(report["board"])
        facts.validations.append(report)
    return facts


def _dataset_path(model: dict[str, Any], project: Path | None) -> Path | None:
    if project is not None and (project / "dataset.npz").is_file():
        return project / "dataset.npz"
    return Path(model["dataset"]) if model.get("dataset") else None


def dataset_facts(path: Path | None, notes: list[str]) -> dict[str, Any] | None:
    """Classes, windows per split, and per class an example window and the mean spectrum."""
    if path is None or not path.is_file():
        notes.append(f"dataset {path or '(not recorded)'} not found: no example windows or spectra")
        return None
    from tinyml.data.dataset import SPLITS, load

    ds = load(path)
    per_split = {name: {c: int(((ds.split == code) & (ds.y == i)).sum()) for i, c in enumerate(ds.classes)}
                 for name, code in SPLITS.items()}
    step = max(1, ds.x.shape[1] // EXAMPLE_POINTS)
    examples, spectra = {}, {}
    freqs = np.fft.rfftfreq(ds.x.shape[1], 1.0 / ds.fs)
    keep = _bin_index(len(freqs), SPECTRUM_POINTS)
    for i, name in enumerate(ds.classes):
        windows = ds.x[ds.y == i]
        if not len(windows):
            continue
        train = ds.x[(ds.y == i) & (ds.split == SPLITS["train"])]
        example = (train if len(train) else windows)[0]
        examples[name] = [[round(float(v), 5) for v in example[::step, c]] for c in range(ds.x.shape[2])]
        centred = windows - windows.mean(axis=1, keepdims=True)
        power = (np.abs(np.fft.rfft(centred.astype(np.float64), axis=1)) ** 2).mean(axis=(0, 2))
        spectra[name] = [round(float(10 * np.log10(max(power[a:b].mean(), 1e-20))), 3) for a, b in keep]
    return {"path": str(path), "windows": int(ds.n), "window": int(ds.x.shape[1]), "fs": float(ds.fs),
            "channels": list(ds.channels), "classes": list(ds.classes), "kind": ds.kind,
            "per_split": per_split, "example_step_s": step / ds.fs, "examples": examples,
            "spectrum_hz": [round(float(freqs[a:b].mean()), 3) for a, b in keep], "spectra": spectra}


def _bin_index(n: int, points: int) -> list[tuple[int, int]]:
    """Up to ``points`` contiguous index ranges covering 1..n-1 (the DC bin is left out)."""
    edges = np.unique(np.linspace(1, n, min(points, max(n - 1, 1)) + 1).astype(int))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def model_facts(tflite: bytes, notes: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Per operator: op, output shape, MACs and parameters; and the generated C's memory plan."""
    from tinyml.errors import TinymlError
    from tinyml.model.inspect import WEIGHT_OPS, op_macs
    from tinyml.model.tflite import read_model

    model = read_model(tflite)
    ops = []
    for i, op in enumerate(model.operators):
        params = sum(math.prod(model.tensors[t].shape) for t in op.inputs[1:]
                     if op.opcode in WEIGHT_OPS and t >= 0 and model.tensors[t].data is not None)
        out = model.tensors[op.outputs[0]].shape if op.outputs else []
        ops.append({"index": i, "op": op.opcode, "output_shape": list(out), "macs": op_macs(model, i),
                    "parameters": int(params)})
    try:
        from tinyml.codegen import generate

        gen = generate(tflite, prefix="model")
    except TinymlError as exc:
        notes.append(f"the code generator does not support this model ({exc.one_line()}): no memory plan")
        return ops, None
    steps = gen.report["steps"]
    calls = [k for k, s in enumerate(steps) if s.get("kind") == "call"]

    def ordinal(step: int) -> int:  # the plan counts every step; the chart counts kernel calls
        return sum(1 for k in calls if k < step)

    tensors = [{**t, "first_call": 0 if t["first_step"] < 0 else ordinal(t["first_step"]),
                "last_call": len(calls) - 1 if t["last_step"] < 0 else min(ordinal(t["last_step"]), len(calls) - 1)}
               for t in gen.report["tensors"]]
    return ops, {"arena_bytes": gen.arena_bytes, "weight_bytes": int(gen.report["weight_bytes"]),
                 "target": gen.target, "calls": [steps[k]["op"] for k in calls], "tensors": tensors}


def board_limits(name: str) -> dict[str, int] | None:
    """Flash and RAM of a board tinyml knows (None for an unknown board)."""
    from tinyml.firmware.boards import load_board

    try:
        board = load_board(name)
    except InputError:
        return None
    return {"flash_bytes": board.flash_bytes, "ram_bytes": board.ram_bytes}


def precision_recall(matrix: list[list[int]]) -> list[tuple[float | None, float | None]]:
    """(precision, recall) per class from a confusion matrix (rows true, columns predicted)."""
    cm = np.asarray(matrix, dtype=np.int64)
    out = []
    for i in range(cm.shape[0]):
        predicted, actual = int(cm[:, i].sum()), int(cm[i].sum())
        out.append((cm[i, i] / predicted if predicted else None, cm[i, i] / actual if actual else None))
    return out
