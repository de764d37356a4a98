"""`tinyml inspect` and `tinyml export c-array`: parse, call the library, print."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tinyml.cli.outpath import OUT_DIR


def _read_model_file(path: Path) -> bytes:
    """A .tflite as it is, or a run's checked model_int8.tflite (``tinyml.rundir``)."""
    from tinyml.rundir import open_model

    return open_model(path).tflite_file().read_bytes()


def _format(report: dict) -> str:
    from tinyml.codegen.semantics import describe

    lines = [f"model: {report['model_bytes']} bytes, {report['operators']} operators, "
             f"{report['parameters']} parameters, {report['macs']} MACs",
             f"input {report['input']['shape']} {report['input']['dtype']}, "
             f"output {report['output']['shape']} {report['output']['dtype']}",
             "ops: " + ", ".join(f"{k} x{v}" for k, v in report["ops"].items())]
    lines.append("TFLM lacks: " + (", ".join(report["tflm_missing_ops"]) or "nothing (all ops supported)"))
    for d in report.get("departures") or []:
        what = "warning: TFLM computes this model wrongly" if d["engine"] == "tflm" else "note"
        lines.append(f"{what}: {describe(d)}" + ("; use the native runtime (docs/codegen.md)"
                                                  if d["engine"] == "tflm" else ""))
    consts = sum(t["bytes"] for t in report["tensors"] if t["constant"])
    lines.append(f"tensors: {len(report['tensors'])} ({consts} bytes of constants)")
    if report["arena"]:
        lines.append(f"TFLM arena: {report['arena']['tflm_host_min_bytes']} bytes minimum "
                     "(host interpreter; a 32-bit device needs somewhat less)")
    cg = report.get("codegen")
    if cg and cg.get("status") == "unsupported":
        lines.append(f"native codegen: unsupported ({cg['reason']})")
    elif cg:
        sizes = ", ".join(f"{arch} {s['text']} B code" if s["status"] == "ok" else f"{arch} {s['status']}"
                          for arch, s in cg["code_size"].items())
        lines.append(f"native codegen: arena {cg['arena_bytes']} B, weights {cg['weight_bytes']} B; {sizes}")
    fit = report.get("board_fit")
    if fit:
        ram = (f"{fit['ram_needed']} of {fit['ram_bytes']} bytes (arena + stack)" if fit["ram_needed"] is not None
               else "not checked (no arena search)")
        lines.append(f"board {fit['board']} with TFLM: flash {fit['flash_needed']} of {fit['flash_bytes']} bytes "
                     f"(estimate), RAM {ram} -> "
                     f"{'fits' if fit['fits_flash'] and fit['fits_ram'] is not False else 'DOES NOT FIT'}")
    return "\n".join(lines)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", default=None, help="Check flash and RAM against this board (see `tinyml boards`).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-arena", is_flag=True, help="Skip the TFLM arena search.")
@click.option("--no-codegen", is_flag=True, help="Skip the native code generator's figures.")
def inspect(model: Path, board: str | None, as_json: bool, no_arena: bool, no_codegen: bool) -> None:
    """Ops, tensors, parameters, MACs, TFLM arena and board fit of MODEL (.tflite or run dir)."""
    from tinyml.errors import CheckFailed
    from tinyml.model.inspect import board_fit, describe

    board_obj = None
    if board is not None:
        from tinyml.firmware.boards import load_board

        board_obj = load_board(board)
    data = _read_model_file(model)
    report = describe(data, arena=not no_arena, codegen=not no_codegen)
    report.update(_departures(data))
    if board_obj is not None:
        report["board_fit"] = board_fit(report, board_obj)
    click.echo(json.dumps(report, indent=2) if as_json else _format(report))
    fit = report.get("board_fit")
    if fit and (not fit["fits_flash"] or fit["fits_ram"] is False):
        what = "flash" if not fit["fits_flash"] else "RAM"
        raise CheckFailed(f"the model does not fit {fit['board']}'s {what}",
                          "pick a board with more memory or train a smaller model")


def _departures(data: bytes) -> dict:
    """Where TFLM and LiteRT depart from the reference semantics on a few random inputs; nothing
    for a model the reference cannot run (float I/O, several inputs)."""
    from tinyml.codegen.semantics import departures
    from tinyml.errors import InputError

    try:
        found = [d.to_json() for d in departures(data)]
    except InputError:
        return {}
    return {"departures": found,
            "tflm_disputed_ops": [f"{d['op']} (op {d['op_index']})" for d in found if d["engine"] == "tflm"]}


@click.group()
def export() -> None:
    """Export a model for firmware."""


@export.command("c-array")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=OUT_DIR, required=True, help="Directory for NAME.h/.c.")
@click.option("--name", default=None, help="C array name (sanitized); default: the file name.")
def c_array(model: Path, out_dir: Path, name: str | None) -> None:
    """MODEL (.tflite) as a 16-byte aligned const C array with its length."""
    from tinyml.export.c_array import export_c_array

    h, c = export_c_array(model, out_dir, name)
    click.echo(f"wrote {h} and {c}")
