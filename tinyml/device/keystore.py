"""The device key store: one JSON file of per-device secrets, shared by `tinyml provision` (which
adds keys), the gateway (which checks MACs with them) and `tinyml emulate` (whose devices sign).

The file holds secrets, so it must be readable by its owner only (mode 600): a store with looser
permissions is refused with a hint, and it is always written through a mode-600 temporary file
and a rename, so no reader ever sees half a file and no moment exists where the keys are readable
by others. Keys never appear in log lines, error messages or argv.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from tinyml.device.auth import KEY_BYTES, new_key
from tinyml.errors import InputError

FORMAT = "tinyml-device-keys"
VERSION = 1


def check_mode(path: Path) -> None:
    """Refuse a secret file that group or others may read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InputError(f"key store {path} has mode {mode:03o}; it holds device secrets and must be mode 600",
                         hint=f"chmod 600 {path} (and replace the keys if others may have read them)")


def read_keys(path: Path) -> dict[str, bytes]:
    """Device id -> key; InputError for a missing, loose, malformed or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no key store at {path}", hint="create it with `tinyml provision FW --keys FILE`")
    check_mode(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read key store {path}: {type(exc).__name__}",
                         hint="restore it from a backup, or provision the devices again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("devices"), dict):
        raise InputError(f"{path} is not a tinyml key store", hint="give the file `tinyml provision --keys` wrote")
    if data.get("version") != VERSION:
        raise InputError(f"key store {path} has version {data.get('version')!r}, this tinyml reads {VERSION}",
                         hint="use the tinyml that wrote it")
    keys = {}
    for device, entry in data["devices"].items():
        try:
            key = bytes.fromhex(entry["key"])
        except (TypeError, KeyError, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise InputError(f"key store {path}: the entry of device {device[:64]!r} is malformed",
                             hint="remove the entry and provision that device again")
        keys[device] = key
    return keys


def _write(path: Path, keys: dict[str, bytes], created: dict[str, float]) -> None:
    data = {"format": FORMAT, "version": VERSION,
            "devices": {d: {"key": k.hex(), "created_at": created.get(d, time.time())} for d, k in sorted(keys.items())}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def provision_key(path: Path, device: str, *, rotate: bool = False) -> tuple[bytes, bool]:
    """The key of ``device`` in the store at ``path`` (created mode 600 when missing): the one it
    has, or a new one when it has none or ``rotate``. Returns (key, created)."""
    path = Path(path)
    if not device:
        raise InputError("a device needs an id to get a key", hint="render the firmware with --device-id ID")
    if path.exists():
        keys = read_keys(path)
        created = {d: e.get("created_at", 0.0) for d, e in json.loads(path.read_text())["devices"].items()}
    else:
        if not path.parent.is_dir():
            raise InputError(f"folder {path.parent} does not exist", hint="create it, or choose another --keys path")
        keys, created = {}, {}
    if device in keys and not rotate:
        return keys[device], False
    keys[device] = new_key()
    created[device] = time.time()
    _write(path, keys, created)
    return keys[device], True
