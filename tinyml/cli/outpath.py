"""A click type for ``--out``: checked when the command line is parsed, before any work."""

from __future__ import annotations

from pathlib import Path

import click

from tinyml.outputs import DIR, FILE, check_out


class OutPath(click.ParamType):
    """A file or folder this process can write; the error is tinyml's one line with a hint."""

    name = "path"

    def __init__(self, kind: str = FILE):
        self.kind = kind

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        option = (param.opts[0] if isinstance(param, click.Option) else param.human_readable_name) \
            if param is not None else "--out"
        return check_out(Path(str(value)), kind=self.kind, option=option)


OUT_FILE = OutPath(FILE)
OUT_DIR = OutPath(DIR)
