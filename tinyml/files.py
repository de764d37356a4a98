"""Writing files so that no reader ever sees half of one, and hashing them.

Every artifact is written to a temporary name beside its real one and renamed, so an
interrupted command leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def write_json(path: Path, obj: dict) -> Path:
    return write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
