"""tinyml.toml: read and check the whole project file before any stage runs.

A typo in the last section should not surface after ten minutes of training, so every key
is checked up front against the options the stage functions take (their dataclasses), and
every error names the file, the line and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from tinyml.errors import InputError, OptionError

PROJECT_FILE = "tinyml.toml"
SECTIONS = ("project", "data", "train", "quantize", "codegen", "firmware", "sensor", "validate", "sign")
REQUIRED = ("project", "data", "train")
SPLITS = ("train", "val", "test", "all")
SYNTH_KINDS = ("vibration", "temperature")


@dataclass(frozen=True)
class Project:
    """A checked project file. ``settings`` holds each stage's options, defaults filled in."""

    path: Path
    name: str
    out: Path
    synth: str | None                      # "vibration" / "temperature", or None for an import
    import_paths: tuple[Path, ...]
    data: Any                              # VibrationOptions, TemperatureOptions or ImportOptions
    model: str
    features: list[dict] | None
    train: Any                             # TrainOptions
    tolerance: float | None
    codegen: dict[str, str]
    board: Any = None                      # Board when [firmware] is given
    runtime: str = "native"
    mode: str = "validate"                 # [firmware] mode: the validation firmware, or run mode
    validate: dict[str, Any] | None = None
    sign_key: Path | None = None
    sensor: str | None = None              # [sensor] name: the driver run mode reads
    sensor_options: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def base(self) -> Path:
        return self.path.parent


class _File:
    """The project file's text, to point errors at a line."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()

    def line_of(self, section: str, key: str | None = None) -> int | None:
        current = ""
        for number, line in enumerate(self.lines, 1):
            header = re.match(r"\s*\[\s*([\w.-]+)\s*\]", line)
            if header:
                current = header.group(1)
                if key is None and current == section:
                    return number
            elif key is not None and current == section and re.match(rf'\s*"?{re.escape(key)}"?\s*=', line):
                return number
        return None

    def error(self, section: str, key: str | None, message: str, hint: str) -> InputError:
        line = self.line_of(section, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return InputError(f"{where}: {message}", hint)


def _type_name(kind: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    origin = typing.get_origin(kind)
    plural = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
    if origin is list:
        return f"a list of {plural.get((typing.get_args(kind) or (str,))[0], 'values')}"
    if origin is dict:
        return f"a table of {plural.get((typing.get_args(kind) or (str, str))[-1], 'values')}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(kind) if a is not type(None))
    return names.get(kind, str(kind))


def _matches(value: Any, kind: Any) -> bool:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(kind) if a is not type(None))
    if origin is list:
        item = (typing.get_args(kind) or (str,))[0]
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        item = (typing.get_args(kind) or (str, str))[-1]
        return isinstance(value, dict) and all(_matches(v, item) for v in value.values())
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _convert(value: Any, kind: Any) -> Any:
    """TOML integers where a number is wanted become floats, so 2560 and 2560.0 fingerprint alike."""
    wanted = set(typing.get_args(kind)) or {kind}
    if isinstance(value, list) and list[float] in wanted:
        return [float(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and float in wanted and int not in wanted:
        return float(value)
    return value


def _keys_of(cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dataclass's fields as {name: type}, the keys a section may set."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in skip}


def _section(f: _File, name: str, table: Any, keys: dict[str, Any]) -> dict[str, Any]:
    """The keys set in one section, type-checked; unknown keys named with a close match."""
    if not isinstance(table, dict):
        raise f.error(name, None, f"[{name}] must be a table", f"write it as a [{name}] section")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(keys))}"
            raise f.error(name, key, f"unknown key {key!r} in [{name}]", hint)
        if not _matches(value, keys[key]):
            raise f.error(name, key, f"[{name}] {key} must be {_type_name(keys[key])}, got {value!r}",
                          "see docs/pipeline.md for every key")
        out[key] = _convert(value, keys[key])
    return out


def _checked(f: _File, section: str, options: Any) -> Any:
    """Options that pass their own value checks (the ones the CLI applies), errors at the key's line."""
    try:
        options.check()
    except OptionError as exc:
        raise f.error(section, exc.key, f"[{section}] {exc.key} {exc.problem}", exc.hint or "") from None
    return options


def _choice(f: _File, section: str, key: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise f.error(section, key, f"[{section}] {key} {value!r} is not one of {', '.join(choices)}",
                      f"pick one of: {', '.join(choices)}")
    return value


def _relative(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _project_out(f: _File, base: Path, value: str) -> Path:
    """``[project] out`` as a folder inside the project: a shared project file must not make
    ``tinyml run`` write or replace files elsewhere (``..``, absolute paths, ``~``, symlinks out)."""
    rel = Path(value)
    if value.startswith("~") or rel.is_absolute() or ".." in rel.parts or not value.strip():
        raise f.error("project", "out", f"[project] out {value!r} is not a folder inside the project",
                      'use a relative path without "..", e.g. out = "run"')
    out = (base / rel).resolve()
    if not out.is_relative_to(base.resolve()):
        raise f.error("project", "out", f"[project] out {value!r} resolves to {out}, outside the project {base}",
                      "remove the symlink or pick another folder name")
    return out


def read_project(path: str | Path) -> Project:
    """Read and check ``path`` (a tinyml.toml, or a folder holding one) completely."""
    path = Path(path)
    if path.is_dir():
        path = path / PROJECT_FILE
    if not path.is_file():
        raise InputError(f"project file not found: {path}", "create one with `tinyml init`, or pass --project FILE")
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}", "fix the syntax (see docs/pipeline.md)") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from None
    f = _File(path.resolve(), text)
    for name in raw:
        if name not in SECTIONS:
            close = difflib.get_close_matches(name, SECTIONS, n=1)
            hint = f"did you mean [{close[0]}]?" if close else f"known sections: {', '.join(SECTIONS)}"
            raise f.error(name, None, f"unknown section [{name}]", hint)
    for name in REQUIRED:
        if name not in raw:
            raise InputError(f"{path}: missing section [{name}]", "every project needs [project], [data] and [train] "
                             "(`tinyml init` writes a complete example)")
    return _build(f, raw, path.resolve().parent)


def _build(f: _File, raw: dict[str, Any], base: Path) -> Project:
    project = _section(f, "project", raw["project"], {"name": str, "out": str})
    if "name" not in project:
        raise f.error("project", None, "[project] needs a name", 'add name = "my-sensor"')
    data = _data(f, raw["data"], base)
    train = _train(f, raw["train"], base)
    quantize = _section(f, "quantize", raw.get("quantize", {}), {"tolerance": float})
    if quantize.get("tolerance", 0) < 0:
        raise f.error("quantize", "tolerance", "[quantize] tolerance cannot be negative", "e.g. tolerance = 2")
    codegen = _codegen(f, raw.get("codegen", {}))
    firmware = _firmware(f, raw.get("firmware"), base)
    sensor = _sensor(f, raw.get("sensor"), firmware)
    validate = _validate(f, raw.get("validate"), firmware)
    sign = _sign(f, raw.get("sign"), base, firmware)
    out = _project_out(f, base, project.get("out", "run"))
    if out.exists() and not out.is_dir():
        raise f.error("project", "out", f"[project] out {out} is a file, not a folder", "name a run directory")
    return Project(path=f.path, name=project["name"], out=out,
                   **data, **train, tolerance=quantize.get("tolerance"), codegen=codegen, **firmware,
                   validate=validate, sign_key=sign, **sensor)


def _data(f: _File, table: Any, base: Path) -> dict[str, Any]:
    from tinyml.data.importer import ImportOptions
    from tinyml.data.synth import TemperatureOptions, VibrationOptions

    if not isinstance(table, dict) or ("synth" in table) == ("import" in table):
        raise f.error("data", None, "[data] needs exactly one of `synth` or `import`",
                      'write synth = "vibration" (or "temperature"), or import = ["recordings/"]')
    if "synth" in table:
        kind = table["synth"]
        if not isinstance(kind, str):
            raise f.error("data", "synth", f"[data] synth must be a string, got {kind!r}", 'e.g. synth = "vibration"')
        cls = VibrationOptions if _choice(f, "data", "synth", kind, SYNTH_KINDS) == "vibration" else TemperatureOptions
        options = _section(f, "data", table, {"synth": str, **_keys_of(cls)})
        options.pop("synth")
        return {"synth": kind, "import_paths": (), "data": _checked(f, "data", cls(**options))}
    options = _section(f, "data", table, {"import": list[str], **_keys_of(ImportOptions)})
    paths = tuple(_relative(base, p) for p in options.pop("import"))
    if str(options.get("bearing", "")).endswith(".toml"):  # a bearing file, like every path, is relative to here
        options["bearing"] = str(_relative(base, options["bearing"]))
    if isinstance(options.get("rpm_range"), list):
        options["rpm_range"] = [float(v) for v in options["rpm_range"]]
    if not paths:
        raise f.error("data", "import", "[data] import lists no files", 'e.g. import = ["recordings/"]')
    for p in paths:
        if not p.exists():
            raise f.error("data", "import", f"[data] import: no such file or folder {p}",
                          "paths are relative to the project file")
    return {"synth": None, "import_paths": paths, "data": _checked(f, "data", ImportOptions(**options))}


def _train(f: _File, table: Any, base: Path) -> dict[str, Any]:
    from tinyml.train.fit import TrainOptions
    from tinyml.train.specs import PRESETS, feature_spec_option
    from tinyml.train.zoo import MODELS

    options = _section(f, "train", table, {"model": str, "features": str, **_keys_of(TrainOptions, ("quiet",))})
    model = _choice(f, "train", "model", options.pop("model", "cnn1d"), sorted(MODELS))
    features = options.pop("features", None)
    if features is not None and features not in PRESETS:
        features = str(_relative(base, features))
    return {"model": model, "features": feature_spec_option(features),
            "train": _checked(f, "train", TrainOptions(**options, quiet=True))}


def _codegen(f: _File, table: Any) -> dict[str, str]:
    from tinyml.codegen import kernels

    options = _section(f, "codegen", table, {"target": str, "prefix": str})
    target = _choice(f, "codegen", "target", options.get("target", kernels.PORTABLE), kernels.targets())
    prefix = options.get("prefix", "model")
    if not re.fullmatch(r"[A-Za-z_]\w{0,40}", prefix):
        raise f.error("codegen", "prefix", f"[codegen] prefix {prefix!r} is not a C identifier",
                      "use letters, digits and '_' (not first), at most 41")
    return {"target": target, "prefix": prefix}


def _firmware(f: _File, table: Any, base: Path) -> dict[str, Any]:
    from tinyml.firmware.boards import load_board
    from tinyml.firmware.build import MODES
    from tinyml.firmware.render import RUNTIMES

    if table is None:
        return {}
    options = _section(f, "firmware", table, {"board": str, "runtime": str, "mode": str})
    if "board" not in options:
        raise f.error("firmware", None, "[firmware] needs a board", 'add board = "qemu-mps2-an386" (see `tinyml boards`)')
    name = options["board"]
    try:
        board = load_board(_relative(base, name) if name.endswith(".toml") else name)
    except InputError as exc:
        raise f.error("firmware", "board", exc.message, exc.hint or "see `tinyml boards`") from None
    runtime = _choice(f, "firmware", "runtime", options.get("runtime", "native"), RUNTIMES)
    if runtime == "tflm" and board.template != "esp-idf":
        raise f.error("firmware", "runtime", f"runtime 'tflm' needs an ESP-IDF board; {board.name} is not one",
                      'use runtime = "native" on this board')
    mode = _choice(f, "firmware", "mode", options.get("mode", "validate"), MODES)
    if mode == "run" and board.builder in ("idf.py", "pico-sdk"):
        raise f.error("firmware", "mode", f"tinyml builds run mode only for make-built boards; {board.name} "
                      f"builds with {board.builder}", 'drop mode = "run" and build run mode yourself (docs/sensors.md)')
    return {"board": board, "runtime": runtime, "mode": mode}


def _sensor(f: _File, table: Any, firmware: dict[str, Any]) -> dict[str, Any]:
    """[sensor]: a driver from firmware_templates/sensors/ and its options (docs/sensors.md)."""
    from tinyml.firmware.sensors import OPTIONS, load_sensor, parse_options

    if table is None:
        return {}
    options = _section(f, "sensor", table, {"name": str, **{k: str | float for k in OPTIONS}})
    if not firmware:
        raise f.error("sensor", None, "[sensor] needs a [firmware] section to render the driver into",
                      'add [firmware] with board = "qemu-mps2-an386"')
    if "name" not in options:
        raise f.error("sensor", None, "[sensor] needs a name", 'add name = "tmp105" (see docs/sensors.md)')
    name = options.pop("name")
    try:
        load_sensor(name)
        parsed = parse_options({k: (f"{v:g}" if isinstance(v, float) else v) for k, v in options.items()})
    except InputError as exc:
        raise f.error("sensor", "name", exc.message, exc.hint or "see docs/sensors.md") from None
    return {"sensor": name, "sensor_options": parsed}


def _validate(f: _File, table: Any, firmware: dict[str, Any]) -> dict[str, Any] | None:
    if table is None:
        return None
    options = _section(f, "validate", table,
                       {"split": str, "limit": int, "tolerance": int, "timeout": float})
    if not firmware:
        raise f.error("validate", None, "[validate] needs a [firmware] section to build what it runs",
                      'add [firmware] with board = "qemu-mps2-an386"')
    board = firmware["board"]
    if firmware["mode"] == "run":
        raise f.error("validate", None, '[validate] needs the validation firmware; [firmware] mode = "run" builds '
                      "the run-mode one", 'drop [validate], or mode = "run" (a project builds one of the two)')
    if not board.emulated:
        raise f.error("validate", None, f"board {board.name} is not emulated, so `tinyml run` cannot validate on it",
                      "flash OUT/firmware with `tinyml flash`, then run `tinyml validate --port PORT`; "
                      "or drop [validate]")
    _choice(f, "validate", "split", options.get("split", "test"), SPLITS)
    for key in ("limit", "timeout"):
        if key in options and options[key] <= 0:
            raise f.error("validate", key, f"[validate] {key} must be positive", f"e.g. {key} = 50")
    if options.get("tolerance", 0) < 0:
        raise f.error("validate", "tolerance", "[validate] tolerance cannot be negative", "e.g. tolerance = 0")
    return {"split": "test", "limit": None, "tolerance": 0, "timeout": None, **options}


def _sign(f: _File, table: Any, base: Path, firmware: dict[str, Any]) -> Path | None:
    if table is None:
        return None
    options = _section(f, "sign", table, {"key": str, "trusted_keys": list[str]})
    if "trusted_keys" in options:
        from tinyml.signing import trusted_keys_dir

        raise f.error("sign", "trusted_keys", "[sign] trusted_keys is not read: a project must not choose "
                      "the keys that vouch for it", f"copy the .pub into {trusted_keys_dir()}/ or pass --pubkey")
    if "key" not in options:
        return None
    if not firmware:
        raise f.error("sign", "key", "[sign] key signs the firmware, and there is no [firmware] section",
                      "add [firmware], or drop key from [sign]")
    key = _relative(base, options["key"])
    if not key.is_file():
        raise f.error("sign", "key", f"[sign] key {key} not found", "create one with `tinyml keygen --out KEY`")
    return key
