"""Render a firmware project for a board: templates + generated model C + a manifest.

The project is plain and self-contained (a Makefile, or CMake for ESP-IDF and the Pico SDK),
so it builds without tinyml. ``tinyml.json`` in the project records what the build and the
validation need to know: the board, its limits, the model hash and the runtime.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

from tinyml import __version__
from tinyml.codegen.c_text import c_comment, c_string
from tinyml.errors import InputError
from tinyml.firmware.boards import Board
from tinyml.firmware.esp_idf import sdkconfig_values
from tinyml.outputs import write_atomic
from tinyml.paths import template_dir, templates_dirs
from tinyml.rundir import Int8Model
from tinyml.train.guard import step_sum

MANIFEST = "tinyml.json"
RUNTIMES = ("native", "tflm")
PREFIX = "model"
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _c_float(x: float) -> str:
    return f"{float(x)!r}f"


def _decision_constants(model: Int8Model) -> dict[str, Any]:
    """Constants for the firmware's integer scoring (tinyml_app.c ``decide``), folded here."""
    q = model.quant
    divisor = float(2**32) * model.output_bytes / (q.in_scale * q.in_scale)
    threshold_sum = 0 if model.threshold is None else max(0, math.floor(model.threshold * divisor))
    threshold_sum = min(threshold_sum, 2**64 - 1)
    guard, slope, stuck = model.guard(), model.slope(), model.stuck()
    lo, hi = (None, None) if guard is None else guard.bounds_int8(q.in_scale, q.in_zp)
    return {"out_inv_scale_c": _c_float(1.0 / q.out_scale),
            "out_to_in_q16": round(q.out_scale / q.in_scale * 65536),
            "score_divisor_c": _c_float(divisor), "threshold_sum": threshold_sum,
            "guard_margin": None if guard is None else guard.margin,
            "guard_lo": None if lo is None else [int(v) for v in lo],
            "guard_hi": None if hi is None else [int(v) for v in hi],
            "guard_step_sum": None if guard is None else step_sum(threshold_sum, q.in_scale),
            "slope_step_sum": None if slope is None else slope.step_sum(threshold_sum),
            "stuck_step_sum": None if stuck is None else stuck.step_sum(threshold_sum)}


def _preprocess_context(model: Int8Model) -> dict[str, Any]:
    """Run-mode constants: the run's preprocess.json, or identity scaling for a bare model."""
    pre = model.preprocess()
    if pre is not None:
        from tinyml.data.features_series import run_hop
        from tinyml.preprocess import MIN_STD

        hop = run_hop(pre.feature_spec, pre.window, pre.fs) if pre.integer else pre.window
        return {"mode": pre.mode, "window": pre.window, "hop": hop, "channels": pre.channels, "fs": pre.fs,
                "feature_spec": pre.feature_spec, "min_std": repr(MIN_STD), "integer": pre.integer,
                "sample_shift": pre.sample_shift, "mean_values": pre.mean, "std_values": pre.std,
                "slope": model.slope() is not None,
                "mean": [repr(float(v)) for v in pre.mean], "std": [repr(float(v)) for v in pre.std]}
    return {"mode": "raw", "window": model.input_bytes, "hop": model.input_bytes, "channels": ["x"], "fs": 1.0, "mean": ["0.0"], "std": ["1.0"],
            "integer": False}


def codegen_target(board: Board, override: str | None = None) -> str:
    """The kernels the native runtime uses on ``board``: ``override`` (--target, [codegen] target)
    or the board file's ``codegen_target``. Only portable C or the board's own target is allowed:
    another core's kernels would stop the build at their #error guard."""
    from tinyml.codegen import kernels

    if board.codegen_target not in kernels.targets():
        raise InputError(f"board file {board.source}: toolchain.codegen_target {board.codegen_target!r} is unknown",
                         f"choose one of: {', '.join(kernels.targets())}")
    target = override or board.codegen_target
    kernels.check_target(target)
    allowed = sorted({kernels.PORTABLE, board.codegen_target})
    if target not in allowed:
        raise InputError(f"codegen target {target!r} does not run on {board.name} ({board.cpu})",
                         f"use one of: {', '.join(allowed)}")
    return target


# Flash the firmware needs besides the model's constants (start-up, protocol, kernels, libc);
# measured about 7 KB for ToyCar on Cortex-M4 at -Os, kept generous so a pick never fails to link.
CODE_RESERVE_BYTES = 16 * 1024


def pick_kernels(board: Board, tflite_bytes: bytes, *, named: str | None) -> tuple[Any, str]:
    """The generated C and a sentence saying why: the kernels the user named, else the fastest
    variant whose weights plus ``CODE_RESERVE_BYTES`` fit the board's flash. The board's own
    target is the fast one (the DSP kernels pad weight rows to groups of 4 inputs, so they can be
    a few bytes larger); portable C is the smallest.
    When nothing fits, the smallest is kept and `tinyml build` refuses it with the section sizes."""
    from tinyml.codegen import generate
    from tinyml.codegen.kernels import PORTABLE

    if named:
        return generate(tflite_bytes, prefix=PREFIX, target=named), "named by --target"
    budget = board.flash_bytes - CODE_RESERVE_BYTES
    candidates = list(dict.fromkeys((board.codegen_target, PORTABLE)))  # fastest first
    skipped: list[str] = []
    for target in candidates:
        gen = generate(tflite_bytes, prefix=PREFIX, target=target)
        weights = int(gen.report["weight_bytes"])
        if weights <= budget:
            why = f"fastest that fits {board.flash_bytes:,} B of flash"
            return gen, why + (f"; {', '.join(skipped)}" if skipped else "")
        skipped.append(f"{target} needs {weights:,} B of weights + {CODE_RESERVE_BYTES:,} B code")
    return gen, f"nothing fits {board.flash_bytes:,} B of flash ({'; '.join(skipped)}): kept the smallest"


def _model_sources(model: Int8Model, runtime: str, target: str, dest: Path, board: Board,
                   named: bool) -> tuple[int, str, str]:
    """Write the model's C into ``dest``; returns the arena bytes the runtime needs, the codegen
    target used and why it was chosen (native runtime only)."""
    if runtime == "native":
        gen, why = pick_kernels(board, model.data, named=target if named else None)
        (dest / f"{PREFIX}.h").write_text(gen.header)
        (dest / f"{PREFIX}.c").write_text(gen.source)
        return gen.arena_bytes, gen.target, why
    from tinyml.firmware.tflm import write_tflm_sources

    return write_tflm_sources(model.data, dest, idf_target=str(board.idf_target)), target, ""


def _refuse_what_tflm_computes_wrongly(tflite: bytes) -> None:
    """TFLM firmware of a model TFLM departs from the reference semantics on would compute wrong
    results on the device (docs/codegen.md, "Reference semantics")."""
    from tinyml.codegen.semantics import departures

    try:
        found = departures(tflite, engines=("tflm",))
    except InputError:  # a model the op-by-op reference cannot cut up: nothing known against TFLM
        return
    if found:
        raise InputError(f"TFLM firmware would compute this model wrongly: {found[0].describe()}",
                         "use --runtime native, which computes the reference semantics (docs/codegen.md)")


def render_project(board: Board, model: Int8Model, out: str | Path, runtime: str = "native",
                   device_id: str = "", target: str | None = None, *, sensor: str | None = None,
                   sensor_options: dict[str, str] | None = None) -> Path:
    """Write a complete firmware project for ``board`` running ``model`` into ``out``; ``target``
    overrides the board's codegen target (see ``codegen_target``); ``sensor`` names the driver
    run mode reads (``firmware_templates/sensors/``), checked against the board and the model
    before anything is written."""
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}", f"use one of: {', '.join(RUNTIMES)}")
    kernels = codegen_target(board, target)
    if runtime == "tflm" and board.template != "esp-idf":
        raise InputError(f"runtime 'tflm' needs ESP-IDF's esp-tflite-micro component; {board.name} "
                         f"uses the {board.template} template", "use --runtime native on this board")
    if runtime == "tflm":
        _refuse_what_tflm_computes_wrongly(model.data)
    family = template_family(board)
    plan = None
    if sensor is not None:
        from tinyml.firmware.sensors import load_sensor, plan_sensor

        plan = plan_sensor(load_sensor(sensor), board, _preprocess_context(model), dict(sensor_options or {}))
    out = Path(out)
    existed = out.exists()
    fresh = not existed or not any(out.iterdir())
    if not fresh and not (out / MANIFEST).is_file():
        raise InputError(f"{out} exists and is not a tinyml firmware project; refusing to overwrite it",
                         "pass an empty or new --out directory")
    try:
        _write_project(board, model, out, runtime, device_id, family, kernels, plan, named=target is not None)
    except BaseException:
        if fresh:  # a half-written project would block the next attempt
            shutil.rmtree(out, ignore_errors=True)
            if existed:
                out.mkdir()
        raise
    return out


def _template(name: str) -> Path:
    folder = template_dir(name)
    if folder is None:
        raise InputError(f"the {name!r} firmware template folder is missing", "reinstall tinyml, or check TINYML_HOME")
    return folder


def template_family(board: Board) -> Path:
    """The board's template folder, confined to the templates folders (``TINYML_HOME``'s, then the
    built-in one): a board file is data and must not pick templates (which run code at render
    time) from anywhere else."""
    roots = [d.resolve() for d in templates_dirs()]
    where = ", ".join(map(str, roots)) or "no firmware_templates folder"
    name = str(board.template)
    if not _TEMPLATE_NAME.match(name) or any((root / name).resolve().parent != root for root in roots):
        raise InputError(f"board file {board.source}: template {name!r} is not a folder name in {where}",
                         "set `template` to one of the template folders, e.g. \"baremetal-cortex-m\"")
    family = next((root / name for root in roots if (root / name).is_dir()), None)
    if family is None:
        raise InputError(f"board {board.name} names template {name!r}, which is not in {where}",
                         "fix `template` in the board file or add the template folder")
    return family


def jinja_env() -> Any:
    """A sandboxed Jinja environment (templates cannot reach Python internals) with the C escapes:
    ``c_string`` for text in string literals, ``c_comment`` for text in comments."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(c_string=c_string, c_comment=c_comment)
    return env


def _clear_subdir(path: Path) -> None:
    """Remove a previous render's folder; a symlink is removed itself, never followed."""
    if path.is_symlink():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _check_inside(out: Path, target: Path) -> None:
    """Refuse to write through a symlinked folder inside ``out`` (it could point anywhere)."""
    probe = target.parent
    while probe != out and out in probe.parents:
        if probe.is_symlink():
            raise InputError(f"{probe} is a symlink inside the project; refusing to write through it",
                             "remove the link or render into a new --out directory")
        probe = probe.parent


def _write_file(out: Path, target: Path, data: bytes) -> None:
    """Write atomically by rename: a symlink at ``target`` is replaced, not followed."""
    _check_inside(out, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data)


def _write_project(board: Board, model: Int8Model, out: Path, runtime: str, device_id: str, family: Path,
                   target: str, plan: Any = None, *, named: bool = False) -> None:
    esp_idf = sdkconfig_values(board) if board.template == "esp-idf" else None  # a bad board file stops us here
    src = "main" if board.template == "esp-idf" else "src"
    model_dir = out / ("main" if board.template == "esp-idf" else "model")
    if (out / MANIFEST).is_file() or (out / MANIFEST).is_symlink():
        for sub in ("build", src, model_dir.name):
            _clear_subdir(out / sub)
    model_dir.mkdir(parents=True, exist_ok=True)
    arena, target, why = _model_sources(model, runtime, target, model_dir, board, named)

    pre = _preprocess_context(model)
    # integer preprocessing runs on every board; the float64 features need soft double
    device_features = pre["integer"] or (pre["mode"] == "features" and bool(board.hardware.get("double_math", True)))
    ctx = {
        "board": board, "runtime": runtime, "standalone": False, "version": __version__,
        "device_id": device_id or board.name, "pre": pre, "device_features": device_features, "esp_idf": esp_idf,
        "sensor": plan.to_json() if plan is not None else None,
        "model": {"source_name": model.source_name, "sha256": model.sha256, "task": model.task,
                  "classes": list(model.labels.classes), "threshold": model.threshold,
                  "input_bytes": model.input_bytes, "output_bytes": model.output_bytes,
                  "in_scale": model.in_scale, "in_zp": model.in_zp, "out_scale": model.out_scale,
                  "out_zp": model.out_zp, "prefix": PREFIX, "arena_bytes": arena,
                  "hash_c": ", ".join(f"0x{b:02x}" for b in model.hash8),
                  "in_scale_c": _c_float(model.in_scale), "out_scale_c": _c_float(model.out_scale),
                  **_decision_constants(model)},
    }
    env = jinja_env()
    layers = [(_template("common"), out / src)]
    if board.builder == "make":
        layers.append((_template("baremetal-common"), out))
    layers.append((family, out))
    for root, dest in layers:
        _render_tree(env, root, dest, ctx, out=out)
    if _feature_files(pre):
        _write_features_config(pre, out / src, model)
    if plan is not None:
        _write_sensor(plan, out, out / src)
    manifest = {
        "board": board.name, "board_file": str(board.source), "template": board.template, "runtime": runtime,
        "builder": board.builder, "codegen_target": target if runtime == "native" else None,
        "codegen_choice": why if runtime == "native" else None,
        "model": str(model.tflite), "model_sha256": model.sha256,
        "input_bytes": model.input_bytes, "output_bytes": model.output_bytes, "arena_bytes": arena,
        "task": model.task, "device_features": device_features, "flash_bytes": board.flash_bytes,
        "ram_bytes": board.ram_bytes, "stack_bytes": board.stack_bytes, "ram_origin": board.ram_origin,
        "tinyml_version": __version__, "sensor": plan.to_json() if plan is not None else None,
        "device_id": device_id or board.name, "source_dir": src,
    }
    _write_file(out, out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


def _write_sensor(plan: Any, out: Path, dest: Path) -> None:
    """The sampler (in place of the placeholder hook), the driver, its bus file and their constants."""
    from tinyml.firmware.sensors import sensor_config_header, sensor_sources

    for path in sensor_sources(plan):
        _write_file(out, dest / path.name, path.read_bytes())
    _write_file(out, dest / "tinyml_sensor_config.h", sensor_config_header(plan).encode())


def _write_features_config(pre: dict[str, Any], dest: Path, model: Int8Model) -> Path:
    """The baked configuration of the run's feature/preprocessing C (integer or float64)."""
    if pre["integer"]:
        from tinyml.data.features_int_c import int_config_header

        return write_atomic(dest / "tinyml_features_int_config.h", int_config_header(
            mode=pre["mode"], window=pre["window"], channels=pre["channels"], fs=pre["fs"],
            sample_shift=pre["sample_shift"], mean=pre["mean_values"], std=pre["std_values"],
            in_scale=model.in_scale, zero_point=model.in_zp, spec=pre["feature_spec"], slope=model.slope(),
            stuck=model.stuck()))
    from tinyml.data.features_c import features_c_config

    return write_atomic(dest / "tinyml_features_config.h",
                        features_c_config(pre["feature_spec"], pre["channels"], pre["fs"], pre["window"]))


PREPROCESS_FILES = ("tinyml_run.c.j2", "tinyml_run.h")
FEATURE_FILES = ("tinyml_features.c", "tinyml_features.h")
INT_FEATURE_FILES = ("tinyml_features_int.c", "tinyml_features_int.h")
SERIES_FILES = ("tinyml_series.c", "tinyml_series.h")  # the daily_cycle feature's state across windows
SLOPE_FILES = ("tinyml_slope.c", "tinyml_slope.h")  # the slope guard's fits and CUSUM (its state beside the series')


def _feature_files(pre: dict[str, Any]) -> tuple[str, ...]:
    """The feature C a run's preprocessing needs: integer runs (features or per_window) the
    integer one, float64 feature runs the float64 one."""
    if pre["integer"]:
        stateful = any(e.get("name") == "daily_cycle" for e in pre.get("feature_spec") or [])
        return INT_FEATURE_FILES + (SERIES_FILES if stateful else ()) + (SLOPE_FILES if pre.get("slope") else ())
    return FEATURE_FILES if pre["mode"] == "features" else ()


def write_preprocess_sources(model: Int8Model, dest: Path) -> list[Path]:
    """The run's preprocessing as C for the user's own project, rendered from the same templates
    firmware projects use: tinyml_run.c (tinyml_preprocess(): raw window -> int8 model input,
    without the sensor hook and firmware config), tinyml_run.h and, for feature models, the
    feature extractor (integer runs: tinyml_features_int.*, also for per_window) with its baked
    configuration."""
    if model.run_dir is None:
        raise InputError(f"{model.tflite} is not in a run directory, so its preprocessing is unknown",
                         "pass the run directory from `tinyml train` (it holds preprocess.json)")
    pre = _preprocess_context(model)
    ctx = {"pre": pre, "standalone": True,
           "model": {"in_scale_c": _c_float(model.in_scale), "in_zp": model.in_zp}}
    env = jinja_env()
    common = _template("common")
    names = PREPROCESS_FILES + _feature_files(pre)
    written = []
    for name in names:
        text = (common / name).read_text()
        if name.endswith(".j2"):
            text, name = env.from_string(text).render(**ctx), name[:-3]
        written.append(write_atomic(dest / name, text))
    if _feature_files(pre):
        written.append(_write_features_config(pre, dest, model))
    return written


def _render_tree(env: Any, root: Path, dest: Path, ctx: dict[str, Any], *, out: Path) -> None:
    import jinja2

    for path in sorted(root.rglob("*")):
        if not path.is_file() or _skip(path, ctx):
            continue
        rel = path.relative_to(root)
        target = dest / (str(rel)[:-3] if path.suffix == ".j2" else rel)
        if path.suffix == ".j2":
            try:
                data = env.from_string(path.read_text()).render(**ctx).encode()
            except (jinja2.TemplateError, TypeError, ValueError) as exc:  # a missing/ill-typed board value
                raise InputError(f"template {path} failed to render: {exc}",
                                 "check the board file has every key this template uses (docs/boards.md)") from exc
        else:
            data = path.read_bytes()
        _write_file(out, target, data)


def _skip(path: Path, ctx: dict[str, Any]) -> bool:
    """Files only some projects need: the component manifest pulls TFLM in, the integer features
    (tinyml_features_int.*) integer runs, the float64 features (tinyml_features.*) older feature runs."""
    if path.name == "idf_component.yml":
        return ctx["runtime"] != "tflm"
    if path.name.startswith("tinyml_features_int"):
        return not ctx["pre"]["integer"]
    return path.name.startswith("tinyml_features") and (ctx["pre"]["mode"] != "features" or ctx["pre"]["integer"])


def read_manifest(project: str | Path) -> dict[str, Any]:
    path = Path(project) / MANIFEST
    if not path.is_file():
        raise InputError(f"{project} is not a tinyml firmware project (no {MANIFEST})",
                         "create one with `tinyml firmware new --board B --model RUN_DIR --out DIR`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}", "re-render the project with `tinyml firmware new`") \
            from exc
