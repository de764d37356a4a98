"""Signed artifacts: an Ed25519-signed manifest of a model/firmware folder's file hashes.

A device should only ever receive firmware that someone trusted produced. ``sign_folder``
writes ``tinyml-manifest.json`` (SHA-256 of every model and firmware image, board, tinyml
version, model metrics) and ``tinyml-manifest.sig`` (Ed25519 signature of the manifest's
exact bytes). ``verify_folder`` checks the signature against trusted public keys and
every listed file against its hash, naming the first file that changed.

Trusted keys: given explicitly (``--pubkey``), or the user's: every ``*.pub`` in
``$XDG_CONFIG_HOME/tinyml/trusted_keys/`` (default ``~/.config/tinyml/trusted_keys/``). Never
keys from the current folder: a folder someone hands you must not bring the key that vouches for it.

Files of a signable kind (model, firmware, metadata such as ``flasher_args.json``) present but not in
the manifest are reported by ``verify_folder`` as ``added``: the caller refuses or ignores them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tinyml import __version__
from tinyml.errors import CheckFailed, InputError

MANIFEST = "tinyml-manifest.json"
SIGNATURE = "tinyml-manifest.sig"
FORMAT = "tinyml-manifest/1"
MODEL_SUFFIXES = {".tflite", ".keras", ".h5"}
FIRMWARE_SUFFIXES = {".elf", ".bin", ".hex", ".uf2"}
METADATA_NAMES = {"model.json", "preprocess.json", "quantization.json", "metrics.json",
                  "flasher_args.json", "report.json", "tinyml.json"}
METRICS_FILES = ("metrics.json", "quantization.json")
PRIVATE_HEADER = b"-----BEGIN PRIVATE KEY-----"
PUBLIC_HEADER = b"-----BEGIN PUBLIC KEY-----"


def _crypto():
    """The Ed25519 and serialization modules, imported only when signing is used."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519, serialization


def key_id(public_raw: bytes) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def keygen(out: Path) -> tuple[Path, str]:
    """Write a new private key to ``out`` (0600, never overwritten) and ``out.pub``.

    Returns the public key path and the key id. The private key never leaves the file.
    """
    ed25519, serialization = _crypto()
    pub_path = out.with_name(out.name + ".pub")
    for path in (out, pub_path):
        if path.exists() or path.is_symlink():
            raise InputError(f"{path} already exists", hint="choose another --out; tinyml never overwrites a key")
    if not out.parent.is_dir():
        raise InputError(f"folder {out.parent} does not exist", hint="create it first")
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = private.public_key()
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.chmod(out, 0o600)  # in case the umask or filesystem widened it
        with open(pub_path, "xb") as handle:
            handle.write(public_pem)
    except OSError as exc:
        raise InputError(f"cannot write the key pair at {out}: {exc.strerror}",
                         hint="choose a writable folder") from exc
    return pub_path, key_id(_public_raw(public))


def _public_raw(public: Any) -> bytes:
    _, serialization = _crypto()
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private_key(path: Path) -> Any:
    """Read an Ed25519 private key, refusing one that others can read."""
    ed25519, serialization = _crypto()
    if not path.is_file():
        raise InputError(f"private key {path} not found", hint="create one with `tinyml keygen --out KEY`")
    if path.read_bytes()[:64].lstrip().startswith(PUBLIC_HEADER):
        private = path.with_suffix("") if path.suffix == ".pub" else None
        raise InputError(f"{path} is a public key; signing needs the private key",
                         hint=f"pass --key {private}" if private and private.is_file()
                         else "pass the private KEY written by `tinyml keygen` (not KEY.pub)")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"private key {path} is readable by others (mode {stat.S_IMODE(mode):o})",
                         hint=f"chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path} is not an unencrypted PEM private key",
                         hint="use a key written by `tinyml keygen`") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InputError(f"{path} is not an Ed25519 key", hint="use a key written by `tinyml keygen`")
    return key


def load_public_key(path: Path) -> Any:
    """Read an Ed25519 public key (PEM), with a clear error for anything else."""
    ed25519, serialization = _crypto()
    if not path.is_file():
        raise InputError(f"public key {path} not found", hint="pass the KEY.pub written by `tinyml keygen`")
    data = path.read_bytes()
    if data.lstrip().startswith(PRIVATE_HEADER):
        raise InputError(f"{path} is a private key", hint="give the .pub file; never share the private key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path} is not a PEM public key", hint="pass the KEY.pub written by `tinyml keygen`") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise InputError(f"{path} is not an Ed25519 public key", hint="use a key written by `tinyml keygen`")
    return key


def trusted_keys_dir() -> Path:
    """The user's trusted public keys folder (XDG config dir, outside any project)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tinyml" / "trusted_keys"


def user_trusted_keys() -> list[Path]:
    """Every ``*.pub`` in :func:`trusted_keys_dir`."""
    return sorted(trusted_keys_dir().glob("*.pub"))


def file_kind(path: Path) -> str | None:
    """'model', 'firmware' or 'metadata' for the files a manifest covers, else None."""
    if path.suffix in MODEL_SUFFIXES:
        return "model"
    if path.suffix in FIRMWARE_SUFFIXES:
        return "firmware"
    if path.name in METADATA_NAMES:
        return "metadata"
    return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", hint="check the file's permissions") from exc
    return digest.hexdigest()


def collect_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Hash every model, firmware and metadata file under ``folder`` (relative POSIX paths)."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        kind = file_kind(path)
        if kind is None or not path.is_file() or path.name in (MANIFEST, SIGNATURE):
            continue
        rel = path.relative_to(folder).as_posix()
        files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "kind": kind}
    return files


def _metrics(folder: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in METRICS_FILES:
        for path in sorted(folder.rglob(name)):
            try:
                found[path.relative_to(folder).as_posix()] = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise InputError(f"{path} is not valid JSON", hint="regenerate it before signing") from exc
    return found


def project_board(folder: Path) -> str | None:
    """The board a firmware project was rendered for (its ``tinyml.json``), if it is one."""
    from tinyml.firmware.render import MANIFEST, read_manifest

    if not (folder / MANIFEST).is_file():
        return None
    board = read_manifest(folder).get("board")
    return board if isinstance(board, str) else None


def sign_folder(folder: Path, key_path: Path, board: str | None = None) -> Path:
    """Write the manifest and its signature into ``folder``; returns the manifest path.

    ``board`` defaults to the one a firmware project records in ``tinyml.json``.
    """
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder", hint="sign the run or firmware folder")
    board = board or project_board(folder)
    private = load_private_key(key_path)
    files = collect_files(folder)
    if not any(entry["kind"] in ("model", "firmware") for entry in files.values()):
        raise InputError(f"{folder} holds no model or firmware image to sign",
                         hint="sign a folder with a .tflite, .elf, .bin, .hex or .uf2 file")
    manifest = {
        "format": FORMAT, "tinyml_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "board": board, "key_id": key_id(_public_raw(private.public_key())),
        "files": files, "metrics": _metrics(folder),
    }
    body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    manifest_path = folder / MANIFEST
    try:
        manifest_path.write_bytes(body)
        (folder / SIGNATURE).write_text(base64.b64encode(private.sign(body)).decode() + "\n")
    except OSError as exc:
        raise InputError(f"cannot write the signature into {folder}: {exc.strerror}",
                         hint="sign a folder you can write to") from exc
    return manifest_path


@dataclass(frozen=True)
class Verified:
    """A folder whose manifest is signed by a trusted key and whose files all match."""

    folder: Path
    manifest: dict[str, Any]
    key: Path
    added: tuple[str, ...] = ()     # signable files present but not signed (added after signing)

    def covers(self, path: Path) -> bool:
        try:
            rel = path.resolve().relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            return False
        return rel in self.manifest["files"]


def find_signed_folder(target: Path) -> Path | None:
    """The folder holding the manifest for ``target``: itself, or a file's folder or its parent."""
    start = target if target.is_dir() else target.parent
    for folder in (start, start.parent):
        if (folder / MANIFEST).is_file():
            return folder
    return None


def verify_folder(folder: Path, keys: list[Path]) -> Verified:
    """Check the signature with one of ``keys`` and every listed file's hash.

    Raises CheckFailed for a missing, foreign or tampered signature and names the file
    that changed; InputError when no trusted key is configured.
    """
    manifest_path, sig_path = folder / MANIFEST, folder / SIGNATURE
    has_manifest, has_sig = manifest_path.is_file(), sig_path.is_file()
    if not (has_manifest and has_sig):
        raise CheckFailed(f"{folder} has {MANIFEST} but no {SIGNATURE}" if has_manifest
                          else f"{folder} has {SIGNATURE} but no {MANIFEST}" if has_sig
                          else f"{folder} is not signed (no {MANIFEST} or {SIGNATURE})",
                          hint=f"sign it with `tinyml sign {folder} --key KEY`")
    if not keys:
        raise InputError("no trusted public key to verify the signature with",
                         hint=f"pass --pubkey KEY.pub, or copy it into {trusted_keys_dir()}/")
    body = manifest_path.read_bytes()
    try:
        signature = base64.b64decode(sig_path.read_text().strip(), validate=True)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckFailed(f"{sig_path} is not a base64 signature", hint="re-sign the folder") from exc
    signer = _trusted_signer(body, signature, keys)
    if signer is None:
        raise _signature_failure(folder, body, keys)
    manifest = json.loads(body)
    for rel, entry in manifest["files"].items():
        path = folder / rel
        if not path.is_file():
            raise CheckFailed(f"signed file {rel} is missing from {folder}", hint="restore it or re-sign")
        if sha256_file(path) != entry["sha256"]:
            raise CheckFailed(f"signed file {rel} has changed since it was signed",
                              hint="rebuild and re-sign, or restore the signed file")
    added = tuple(rel for rel in collect_files(folder) if rel not in manifest["files"])
    return Verified(folder, manifest, signer, added)


def _signature_failure(folder: Path, body: bytes, keys: list[Path]) -> CheckFailed:
    """Say whether the manifest was edited or signed by a stranger (its key id tells, unverified)."""
    try:
        claimed = json.loads(body).get("key_id")
    except (ValueError, UnicodeDecodeError, AttributeError):
        claimed = None
    trusted = {key_id(_public_raw(load_public_key(path))): path for path in keys}
    if claimed in trusted:
        return CheckFailed(f"{MANIFEST} in {folder} was changed after it was signed by {trusted[claimed]}",
                           hint="re-sign the folder with `tinyml sign`")
    return CheckFailed(f"{folder} is signed by key {claimed or 'unknown'}, which is not a trusted key",
                       hint=f"pass the signer's public key with --pubkey or copy it into {trusted_keys_dir()}/")


def _trusted_signer(body: bytes, signature: bytes, keys: list[Path]) -> Path | None:
    from cryptography.exceptions import InvalidSignature

    for path in keys:
        try:
            load_public_key(path).verify(signature, body)
        except InvalidSignature:
            continue
        return path
    return None
