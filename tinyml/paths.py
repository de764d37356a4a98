"""Where the project's data folders live.

``boards/`` and ``firmware_templates/`` sit at the repository top level so that users can
read and extend them without touching Python. ``TINYML_HOME`` points elsewhere when the
package is installed away from a checkout.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    env = os.environ.get("TINYML_HOME")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent


def boards_dir() -> Path:
    return project_root() / "boards"


def templates_dir() -> Path:
    return project_root() / "firmware_templates"


def shared_dir() -> Path:
    """The read-only shared data (real datasets, reference models) beside the checkout."""
    env = os.environ.get("TINYML_SHARED")
    if env:
        return Path(env)
    return project_root().parent / "shared"
