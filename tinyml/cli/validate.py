"""`tinyml validate`: run test inputs on a board (emulated or real) and compare with the host."""

from __future__ import annotations

from pathlib import Path

import click

from tinyml.errors import InputError


@click.command()
@click.option("--board", "board_name", required=True, help="Board name (see `tinyml boards`) or a board .toml.")
@click.option("--model", required=True, type=click.Path(), help="Run directory from `tinyml train`, or an int8 .tflite.")
@click.option("--data", type=click.Path(), default=None,
              help="Dataset .npz (tinyml format); without it, seeded random int8 inputs.")
@click.option("--split", default="test", show_default=True, help="Dataset split to use: train, val, test or all.")
@click.option("--limit", type=int, default=None,
              help="Validate at most N inputs: a class-stratified sample (the first N in data order for "
                   "features with state across windows).")
@click.option("--port", default=None,
              help="Serial port of an already flashed real board (or any pyserial URL, socket://HOST:PORT).")
@click.option("--firmware", "firmware_dir", type=click.Path(), default=None,
              help="Firmware project to render/build into (default: a temporary directory).")
@click.option("--runtime", type=click.Choice(["native", "tflm"]), default="native", show_default=True)
@click.option("--target", default=None,
              help="Codegen kernels (portable, cortex-m4-dsp); default: the board's codegen_target.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait for each answer before resending.")
@click.option("--tolerance", type=int, default=0, show_default=True,
              help="Output bytes allowed to differ from the host reference before failing.")
@click.option("--report", "report_path", type=click.Path(), default=None, help="Write the JSON report here.")
def validate(board_name: str, model: str, data: str | None, split: str, limit: int | None, port: str | None,
             firmware_dir: str | None, runtime: str, target: str | None, timeout: float | None, tolerance: int,
             report_path: str | None) -> None:
    """Run test inputs on a device and compare its outputs with the host reference (TFLM; the
    reference semantics for native firmware of a model TFLM computes wrongly)."""
    from tinyml.firmware.boards import load_board
    from tinyml.hil import check_on_device, prepare_inputs
    from tinyml.rundir import int8_model

    if port is not None and target is not None:
        raise InputError("--target picks the kernels of the firmware tinyml builds; with --port the board "
                         "runs what was flashed", "drop --target, or flash firmware built with it")
    board = load_board(board_name)
    if port is None and not board.emulated:
        raise InputError(f"board {board.name} is not emulated and no --port was given",
                         "flash it (`tinyml flash`), then pass --port /dev/ttyUSB0 (see `tinyml ports`)")
    info = int8_model(model)
    tests = prepare_inputs(info, data, None if split == "all" else split, limit)
    check_on_device(board, info, tests, port=port, project=Path(firmware_dir) if firmware_dir else None,
                    runtime=runtime, target=target, timeout=timeout, tolerance=tolerance,
                    report_path=Path(report_path) if report_path else None, progress=True,
                    show=click.echo, log=lambda line: click.echo(line, err=True))
