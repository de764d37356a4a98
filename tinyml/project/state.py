"""OUT/.tinyml-state.json: what each stage last ran on, so unchanged stages are skipped.

A stage's fingerprint is the SHA-256 of its settings, the SHA-256 of every input file and
the tinyml version. A stage is recorded only after it succeeds, and its old record is
dropped before it starts, so a failed or interrupted stage always runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinyml import __version__
from tinyml.errors import InputError
from tinyml.outputs import write_json
from tinyml.signing import sha256_file

STATE_FILE = ".tinyml-state.json"
LOCK_FILE = ".tinyml-run.lock"
FORMAT = 1


def _portable(path: Path, base: Path) -> str:
    """Paths inside the project are recorded relative to it, so a moved project stays fresh."""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def fingerprint(settings: dict[str, Any], inputs: list[Path], base: Path) -> str:
    """SHA-256 over the settings, each input file's content and the tinyml version."""
    missing = [p for p in inputs if not p.is_file()]
    if missing:
        raise InputError(f"stage input {missing[0]} is missing",
                         "run the earlier stages first (drop --from), or `tinyml run --force`")
    body = {"settings": settings, "tinyml": __version__,
            "inputs": {_portable(p, base): sha256_file(p) for p in inputs}}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def load_state(out: Path) -> tuple[dict[str, Any], str | None]:
    """The stage records, and a note when an unreadable state file is ignored (all stages re-run)."""
    path = out / STATE_FILE
    if not path.is_file():
        return {}, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {}, f"ignoring unreadable {path} ({exc}); every stage runs again"
    stages = data.get("stages") if isinstance(data, dict) and data.get("format") == FORMAT else None
    if not isinstance(stages, dict):
        return {}, f"ignoring {path} written in another format; every stage runs again"
    return stages, None


def save_state(out: Path, stages: dict[str, Any]) -> None:
    """Write atomically: an interrupted write never leaves half a state file."""
    write_json(out / STATE_FILE, {"format": FORMAT, "tinyml_version": __version__, "stages": stages})


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One `tinyml run` per run directory at a time: two would overwrite each other's files.

    The lock is an advisory ``flock`` that the OS drops when the process ends, so a killed
    run never leaves the directory locked; the lock file itself is removed when the run
    ends, so a finished or failed run leaves nothing behind. A run that locked a file
    another run has just removed sees that the path no longer names it, and is refused.
    """
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    busy = InputError(f"another `tinyml run` is working in {out}",
                      "wait for it to finish, or give this project another [project] out")
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:
            if os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
                raise busy
        except FileNotFoundError:
            raise busy from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
