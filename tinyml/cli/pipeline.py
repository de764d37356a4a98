"""`tinyml init` and `tinyml run`: a project file, and every stage from it. Parse and print only."""

from __future__ import annotations

from pathlib import Path

import click

from tinyml.cli.outpath import OUT_DIR
from tinyml.project.stages import STAGES

STATUS = {"ran": "ran", "skip": "skip", "run": "would run", "failed": "FAILED", "-": "-"}


@click.command()
@click.argument("folder", type=OUT_DIR, default=".")
@click.option("--board", default="qemu-mps2-an386", show_default=True, help="Board name (see `tinyml boards`).")
@click.option("--data", default="synth-vibration", show_default=True,
              help="synth-vibration, synth-temperature, or a CSV/.mat/.npz file or folder to import.")
@click.option("--force", is_flag=True, help="Replace an existing tinyml.toml.")
def init(folder: Path, board: str, data: str, force: bool) -> None:
    """Write a commented FOLDER/tinyml.toml that `tinyml run` can run as it is."""
    from tinyml.project.template import write_project

    path = write_project(folder, board, data, force)
    click.echo(f"wrote {path}; run every stage with `tinyml run --project {path}`")


@click.command()
@click.option("--project", "project_path", type=click.Path(path_type=Path), default=Path("tinyml.toml"),
              show_default=True, help="Project file (or a folder holding tinyml.toml).")
@click.option("--from", "start", type=click.Choice(STAGES), help="First stage to consider.")
@click.option("--until", type=click.Choice(STAGES), help="Last stage to consider.")
@click.option("--force", is_flag=True, help="Run the chosen stages even when nothing changed.")
@click.option("--dry-run", is_flag=True, help="Only say which stages would run.")
def run(project_path: Path, start: str | None, until: str | None, force: bool, dry_run: bool) -> None:
    """Run the project's stages in order, skipping those whose inputs have not changed."""
    import time

    from tinyml.project.config import read_project
    from tinyml.project.runner import StageResult, run_project

    project = read_project(project_path)
    began = time.monotonic()

    def row(r: StageResult) -> None:
        took = f"{r.seconds:6.1f} s" if r.status == "ran" else " " * 8
        click.echo(f"{r.name:<9} {STATUS[r.status]:<9} {took}  {r.figure}".rstrip())

    click.echo(f"{project.name}: {'plan for ' if dry_run else ''}{project.out}")
    click.echo(f"{'stage':<9} {'status':<9} {'time':>8}  result")
    results = run_project(project, start, until, force, dry_run, report=row,
                          note=lambda s: click.echo(f"note: {s}", err=True))
    ran = sum(r.status == "ran" for r in results)
    skipped = sum(r.status == "skip" for r in results)
    if dry_run:
        click.echo(f"{sum(r.status == 'run' for r in results)} stage(s) would run, {skipped} unchanged")
    else:
        click.echo(f"{ran} ran, {skipped} skipped in {time.monotonic() - began:.1f} s")
