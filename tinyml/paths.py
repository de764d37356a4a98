"""Where the project's data folders live.

``boards/``, ``firmware_templates/`` and ``bearings/`` sit at the repository top level so that users can
read and extend them without touching Python; the wheel carries a copy inside the package
(``tinyml/_data/``, put there by the build hook in setup.py). A name is looked up first in
``TINYML_HOME`` (a user's own boards, templates and bearings, which may override built-in ones by name),
then in the checkout this package runs from, else in the installed copy.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PACKAGED_DATA = PACKAGE / "_data"


def _checkout() -> Path | None:
    root = PACKAGE.parent
    return root if (root / "boards").is_dir() and (root / "firmware_templates").is_dir() else None


def builtin_root() -> Path:
    """The folder holding the built-in boards/ and firmware_templates/."""
    return _checkout() or PACKAGED_DATA


def data_roots() -> list[Path]:
    """Folders searched for boards/, firmware_templates/ and bearings/, first match wins."""
    env = os.environ.get("TINYML_HOME")
    return [*([Path(env)] if env else []), builtin_root()]


def data_dirs(name: str) -> list[Path]:
    """The existing ``name`` folders (boards, firmware_templates, bearings) in search order."""
    return [root / name for root in data_roots() if (root / name).is_dir()]


def boards_dirs() -> list[Path]:
    return data_dirs("boards")


def templates_dirs() -> list[Path]:
    return data_dirs("firmware_templates")


def template_dir(name: str) -> Path | None:
    """The template folder ``name`` (e.g. ``common``, ``baremetal-cortex-m``), or None."""
    return next((d / name for d in templates_dirs() if (d / name).is_dir()), None)


def project_root() -> Path:
    env = os.environ.get("TINYML_HOME")
    return Path(env) if env else PACKAGE.parent


def shared_dir() -> Path:
    """The read-only shared data (real datasets, reference models) beside the checkout."""
    env = os.environ.get("TINYML_SHARED")
    if env:
        return Path(env)
    return project_root().parent / "shared"
