"""`tinyml report`: the run as one HTML page. Parse and print only."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--validation", "validations", multiple=True, type=click.Path(path_type=Path),
              help="A validation report from `tinyml validate --report` (repeatable, one per board).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True,
              help="The HTML file to write.")
def report(run_dir: Path, validations: tuple[Path, ...], out: Path) -> None:
    """Write a self-contained HTML report of a training run or a `tinyml run` output folder."""
    from tinyml.report import write_report

    path = write_report(run_dir, out, validations=list(validations))
    click.echo(f"wrote {path}")
