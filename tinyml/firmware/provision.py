"""`tinyml provision`: give a rendered firmware project's device its own secret.

A new 32-byte key (or the one the key store already holds for this device id) is written into
the project as ``tinyml_device_key.h`` (mode 600, beside tinyml_config.h) and recorded in the
gateway's key store (tinyml/device/keystore.py), so the built image signs its frames and the
gateway can check them (docs/protocol.md, "Device authentication"). The key never reaches argv,
stdout or a log. The project's ``build/`` is removed: an image built before holds no key (or the
old one), and the Makefile does not track headers.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tinyml.device.keystore import provision_key
from tinyml.errors import InputError
from tinyml.firmware.render import read_manifest

KEY_HEADER = "tinyml_device_key.h"


@dataclass(frozen=True)
class Provisioned:
    device_id: str
    header: Path
    keys: Path
    new_key: bool  # False: the store already held this device's key (provisioning again keeps it)
    removed_build: bool


def key_header(device_id: str, key: bytes) -> str:
    from tinyml.codegen.c_text import c_comment

    body = ", ".join(f"0x{b:02x}" for b in key)
    return (f"/* The secret of device {c_comment(device_id)}, written by `tinyml provision` (docs/security.md).\n"
            " * Keep this file and every image built from it private: whoever reads the key can pose as the\n"
            " * device. The gateway's key store holds the same key. */\n"
            "#ifndef TINYML_DEVICE_KEY_H\n#define TINYML_DEVICE_KEY_H\n\n#include <stdint.h>\n\n"
            "#define TINYML_DEVICE_KEY_SET 1\n"
            f"static const uint8_t tinyml_device_key[32] = {{{body}}};\n\n#endif\n")


def _write_private(path: Path, text: str) -> None:
    """Write through a mode-600 temporary file and a rename: never readable by others, never half written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def provision(project: str | Path, keys: str | Path, *, rotate: bool = False) -> Provisioned:
    project, keys = Path(project), Path(keys)
    manifest = read_manifest(project)
    device_id, source_dir = manifest.get("device_id"), manifest.get("source_dir")
    if not device_id or not source_dir:
        raise InputError(f"{project} was rendered by a tinyml without device identity",
                         "render it again with `tinyml firmware new --device-id ID ...`")
    header = project / str(source_dir) / KEY_HEADER
    if not header.parent.is_dir() or header.parent.is_symlink() or header.is_symlink():
        raise InputError(f"{header.parent} is missing or a symlink", "render the project again with `tinyml firmware new`")
    key, created = provision_key(keys, str(device_id), rotate=rotate)
    _write_private(header, key_header(str(device_id), key))
    build = project / "build"
    removed = build.is_dir() and not build.is_symlink()
    if removed:
        shutil.rmtree(build)
    return Provisioned(str(device_id), header, keys, created, removed)
