"""Where commands write: checked before the work starts, written atomically.

A user's ``--out`` can name a file where a folder is wanted, a folder where a file is wanted,
a path under a file, or a read-only place. Checking it before minutes of training turns each
case into one error line with a hint; writing through a temporary name and a rename means an
interrupted or failed write never leaves half a file under the real name.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinyml.errors import InputError

FILE, DIR = "file", "dir"


def os_error(exc: OSError, path: str | Path | None = None, *, doing: str = "write") -> InputError:
    """An OSError as a one-line InputError naming the path and what to do."""
    where = path if path is not None else exc.filename
    reason = exc.strerror or str(exc)
    hint = {
        errno.ENOSPC: "free some disk space or write elsewhere",
        errno.EROFS: "the file system is read-only; write elsewhere",
        errno.EACCES: "pick a folder you may write to",
        errno.EPERM: "pick a folder you may write to",
        errno.ENOTDIR: "a part of the path is a file, not a folder; pick another path",
        errno.EISDIR: "that is a folder; give a file name inside it",
        errno.EEXIST: "a part of the path is a file, not a folder; pick another path",
    }.get(exc.errno or 0, "check that the path exists and that you may use it")
    return InputError(f"cannot {doing} {where}: {reason}", hint)


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _probe_writable(folder: Path, *, target: Path, option: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".tinyml-probe-"):
            pass
    except OSError as exc:
        raise InputError(f"{option} {target}: cannot write in {folder} ({exc.strerror or exc})",
                         os_error(exc).hint) from None


def check_out(path: str | Path, *, kind: str = FILE, option: str = "--out") -> Path:
    """``path`` as something this process can create or replace: a ``kind`` (file or dir)
    whose nearest existing ancestor is a writable folder. Creates nothing."""
    path = Path(path)
    if str(path) == "":
        raise InputError(f"{option} is empty", f"give {option} a path")
    if kind == FILE and path.is_dir():
        raise InputError(f"{option} {path} is a folder, not a file", "give a file name inside it")
    if kind == DIR and path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file, not a folder",
                         "give a folder name (it is created if missing)")
    base = _nearest_existing(path.parent if kind == FILE else path)
    if not base.is_dir():
        raise InputError(f"{option} {path}: {base} is a file, not a folder", "pick a path whose folders are folders")
    _probe_writable(base, target=path, option=option)
    return path


def make_dir(path: str | Path, *, option: str = "--out") -> Path:
    """Create the folder ``path`` (and its parents), errors as one line."""
    path = check_out(path, kind=DIR, option=option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, path, doing="create the folder") from None
    return path


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto it when the block succeeds, removed
    when it fails. ``suffix`` keeps writers that insist on an extension (numpy) happy."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, path) from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        tmp.replace(path)
    except OSError as exc:
        raise os_error(exc, path) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` through a temporary file and a rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def write_json(path: str | Path, obj: dict) -> Path:
    """``obj`` as indented JSON, atomically."""
    return write_atomic(path, json.dumps(obj, indent=2) + "\n")
