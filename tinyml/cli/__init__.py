"""The ``tinyml`` command: a root group whose subcommands are imported only when used.

Each command group lives in its own module under ``tinyml/cli/`` and only parses options
and prints; the work is in the library. Lazy loading keeps ``tinyml --help`` free of
TensorFlow and fast.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from tinyml import __version__
from tinyml.errors import TinymlError

# command name -> (module, attribute, one-line help shown by `tinyml --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("tinyml.cli.data", "data", "Synthesize, import and describe sensor datasets."),
    "train": ("tinyml.cli.train", "train", "Train a model (cnn1d, autoencoder, mlp) on a dataset."),
    "quantize": ("tinyml.cli.train", "quantize", "Full-int8 quantization with a float-vs-int8 report."),
    "predict": ("tinyml.cli.train", "predict", "Host inference over a dataset, one row per window."),
    "evaluate": ("tinyml.cli.train", "evaluate", "Accuracy per held-out group: leave one speed, load or severity out."),
    "detect": ("tinyml.cli.train", "detect", "Alarm events of an anomaly model over a timestamped series."),
    "inspect": ("tinyml.cli.model", "inspect", "Ops, tensors, MACs, arena and board fit of a .tflite."),
    "export": ("tinyml.cli.model", "export", "Export a model (c-array for TensorFlow Lite Micro)."),
    "codegen": ("tinyml.cli.codegen", "codegen", "Generate dependency-free C99 from an int8 .tflite."),
    "boards": ("tinyml.cli.firmware", "boards", "List the boards tinyml knows."),
    "firmware": ("tinyml.cli.firmware", "firmware", "Render a firmware project for a board."),
    "build": ("tinyml.cli.firmware", "build", "Build a firmware project and report its size."),
    "provision": ("tinyml.cli.firmware", "provision", "Give a firmware project's device its own secret key."),
    "flash": ("tinyml.cli.flash", "flash", "Flash a built firmware onto a board."),
    "ports": ("tinyml.cli.flash", "ports", "List serial ports with a board guess."),
    "keygen": ("tinyml.cli.sign", "keygen", "Create an Ed25519 signing key pair."),
    "sign": ("tinyml.cli.sign", "sign", "Sign a firmware/model artifact folder."),
    "verify": ("tinyml.cli.sign", "verify", "Verify a signed artifact folder."),
    "report": ("tinyml.cli.report", "report", "A self-contained HTML report of a run, float vs int8 vs boards."),
    "validate": ("tinyml.cli.validate", "validate", "Run test inputs on a device and compare with the host."),
    "monitor": ("tinyml.cli.device", "monitor", "Print decoded device results from a serial port."),
    "capture": ("tinyml.cli.capture", "capture", "Capture labelled sensor windows from a device into a dataset."),
    "replay": ("tinyml.cli.device", "replay", "Stream recorded windows to a device's replay sensor."),
    "emulate": ("tinyml.cli.device", "emulate", "Emulated devices (or an ESP32 ROM loader) on ptys/TCP."),
    "gateway": ("tinyml.cli.gateway", "gateway", "Collect, store, analyse and forward device results."),
    "fleet": ("tinyml.cli.fleet", "fleet", "Store what many gateways forward (MQTT shared subscriptions)."),
    "init": ("tinyml.cli.pipeline", "init", "Write a commented tinyml.toml project file."),
    "run": ("tinyml.cli.pipeline", "run", "Run a tinyml.toml project's stages, skipping unchanged ones."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinyml")
@click.option("--debug", is_flag=True, envvar="TINYML_DEBUG", help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """tinyml: sensor data to a verified int8 model on a microcontroller, and back."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _hoist_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``--debug`` anywhere before ``--`` moves to the root group, where it is defined."""
    end = argv.index("--") if "--" in argv else len(argv)
    found = "--debug" in argv[:end]
    rest = [a for a in argv[:end] if a != "--debug"] + argv[end:]
    debug = found or os.environ.get("TINYML_DEBUG", "") not in ("", "0")
    return (["--debug", *rest] if found else rest), debug


def usage_line(exc: click.ClickException) -> str:
    """A click usage error in tinyml's one-line form, the help command as its hint."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "tinyml"
    return f"error: {message} (hint: see `{command} --help`)"


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line per error, a non-zero exit, a traceback only with --debug."""
    argv, debug = _hoist_debug(sys.argv[1:] if argv is None else list(argv))
    try:
        rv = cli.main(args=argv, prog_name="tinyml", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(usage_line(exc), err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except TinymlError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except ModuleNotFoundError as exc:
        if debug:
            traceback.print_exc()
        extra = " (hint: install the training extra: pip install 'tinyml-toolchain[train]')" \
            if exc.name and exc.name.split(".")[0] in {"tensorflow", "keras", "matplotlib", "scipy"} else ""
        click.echo(f"error: missing Python module {exc.name!r}{extra}", err=True)
        sys.exit(3)
    except OSError as exc:  # a path the user gave cannot be read or written: say which, not "internal error"
        if debug:
            traceback.print_exc()
        from tinyml.outputs import os_error

        err = os_error(exc, doing="use")
        click.echo(f"error: {err.one_line()}", err=True)
        sys.exit(err.exit_code)
    except Exception as exc:  # noqa: BLE001 - last line of defence: never a bare traceback
        if debug:
            traceback.print_exc()
        msg = " ".join(str(exc).split()) or type(exc).__name__
        click.echo(f"error: internal error: {type(exc).__name__}: {msg} "
                   "(hint: rerun with --debug and report it)", err=True)
        sys.exit(70)
    sys.exit(rv if isinstance(rv, int) else 0)
