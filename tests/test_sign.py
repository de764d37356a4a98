"""Signed artifacts: keygen, sign, verify, and `tinyml flash` refusing what is not trusted."""

from __future__ import annotations

import json
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import assert_clean_error, run_cli
from tinyml import signing
from tinyml.errors import CheckFailed
from tinyml.firmware.boards import load_board
from tinyml.flash import FlashOptions
from tinyml.flash import flash as flash_library_call


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    """Two key pairs made once: the release key and a stranger's."""
    folder = tmp_path_factory.mktemp("keys")
    made = {}
    for name in ("release", "stranger"):
        pub, _ = signing.keygen(folder / name)
        made[name], made[name + ".pub"] = folder / name, pub
    return made


def make_artifact(root: Path) -> Path:
    """A run + firmware folder like the pipeline leaves: model, metrics and an ARM ELF."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_int8.tflite").write_bytes(b"TFL3" + bytes(range(200)))
    (root / "metrics.json").write_text(json.dumps({"accuracy": 0.97, "f1": 0.95}))
    (root / "notes.txt").write_text("not an artifact, not signed")
    build = root / "build"
    build.mkdir()
    # a 32-bit little-endian ARM ELF header (e_machine 40) followed by some code bytes
    header = b"\x7fELF\x01\x01\x01" + b"\x00" * 9 + (2).to_bytes(2, "little") + (40).to_bytes(2, "little")
    (build / "firmware.elf").write_bytes(header + bytes(range(256)) * 4)
    return root


def test_keygen_writes_owner_only_key_and_never_prints_it(tmp_path: Path) -> None:
    key = tmp_path / "k"
    proc = run_cli("keygen", "--out", key)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    secret = key.read_text()
    assert "PRIVATE KEY" in secret and "PUBLIC KEY" in (tmp_path / "k.pub").read_text()
    body = "".join(secret.splitlines()[1:-1])
    assert body not in proc.stdout + proc.stderr


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("precious")
    assert_clean_error(run_cli("keygen", "--out", key), "already exists")
    assert key.read_text() == "precious"


def test_keygen_into_missing_folder(tmp_path: Path) -> None:
    assert_clean_error(run_cli("keygen", "--out", tmp_path / "nope" / "k"), "does not exist")


def test_sign_refuses_group_readable_key(tmp_path: Path, keys) -> None:
    loose = tmp_path / "loose"
    loose.write_bytes(keys["release"].read_bytes())
    loose.chmod(0o644)
    assert_clean_error(run_cli("sign", make_artifact(tmp_path / "a"), "--key", loose), "readable by others", "chmod 600")


def test_sign_with_public_key_or_garbage_is_refused(tmp_path: Path, keys) -> None:
    art = make_artifact(tmp_path / "a")
    garbage = tmp_path / "garbage"
    garbage.write_text("hello")
    garbage.chmod(0o600)
    assert_clean_error(run_cli("sign", art, "--key", garbage), "not an unencrypted PEM private key")
    assert_clean_error(run_cli("sign", tmp_path / "missing", "--key", keys["release"]), "not a folder")


def test_sign_folder_without_images_is_refused(tmp_path: Path, keys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(Exception, match="no model or firmware image"):
        signing.sign_folder(tmp_path / "empty", keys["release"])


def test_manifest_lists_hashes_board_version_and_metrics(tmp_path: Path, keys) -> None:
    art = make_artifact(tmp_path / "a")
    proc = run_cli("sign", art, "--key", keys["release"], "--board", "qemu-mps2-an386")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((art / signing.MANIFEST).read_text())
    assert set(manifest["files"]) == {"model_int8.tflite", "metrics.json", "build/firmware.elf"}
    assert manifest["files"]["build/firmware.elf"]["kind"] == "firmware"
    assert manifest["files"]["model_int8.tflite"]["sha256"] == signing.sha256_file(art / "model_int8.tflite")
    assert manifest["board"] == "qemu-mps2-an386" and manifest["tinyml_version"]
    assert manifest["metrics"]["metrics.json"]["accuracy"] == 0.97
    ok = run_cli("verify", art, "--pubkey", keys["release.pub"])
    assert ok.returncode == 0 and "3 files match" in ok.stdout, ok.stderr


@pytest.fixture()
def signed(tmp_path: Path, keys) -> Path:
    art = make_artifact(tmp_path / "art")
    signing.sign_folder(art, keys["release"], board="qemu-mps2-an386")
    return art


def flash_library(art: Path, options: FlashOptions):
    """`tinyml flash` in-process (the CLI is a thin wrapper), for many quick runs."""
    return flash_library_call(art, load_board("qemu-mps2-an386"), options, echo=lambda line: None)


def flash_qemu(art: Path, *extra: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_cli("flash", art, "--board", "qemu-mps2-an386", *extra, cwd=cwd)


def test_flash_accepts_signed_artifact(signed: Path, keys) -> None:
    proc = flash_qemu(signed, "--pubkey", keys["release.pub"])
    assert proc.returncode == 0, proc.stderr
    assert "qemu-system-arm" in proc.stdout and "firmware.elf" in proc.stdout


@pytest.mark.parametrize("rel", ["model_int8.tflite", "metrics.json", "build/firmware.elf"])
@pytest.mark.parametrize("where", [0, -1, "middle"])
def test_flipping_any_byte_of_a_signed_file_makes_flash_refuse(signed: Path, keys, rel: str, where) -> None:
    path = signed / rel
    data = bytearray(path.read_bytes())
    index = len(data) // 2 if where == "middle" else where
    data[index] ^= 0x01
    path.write_bytes(bytes(data))
    proc = flash_qemu(signed, "--pubkey", keys["release.pub"])
    assert_clean_error(proc, f"{rel} has changed")
    assert proc.returncode == 5


def test_editing_the_manifest_breaks_the_signature(signed: Path, keys) -> None:
    manifest = signed / signing.MANIFEST
    manifest.write_text(manifest.read_text().replace("qemu-mps2-an386", "nucleo-f446re"))
    assert_clean_error(flash_qemu(signed, "--pubkey", keys["release.pub"]),
                       "tinyml-manifest.json", "was changed after it was signed")


def test_deleted_signed_file_is_named(signed: Path, keys) -> None:
    (signed / "metrics.json").unlink()
    assert_clean_error(run_cli("verify", signed, "--pubkey", keys["release.pub"]), "metrics.json is missing")


def test_foreign_signature_is_refused(signed: Path, keys) -> None:
    release_id = json.loads((signed / signing.MANIFEST).read_text())["key_id"]
    assert_clean_error(flash_qemu(signed, "--pubkey", keys["stranger.pub"]),
                       f"signed by key {release_id}, which is not a trusted key")


def test_missing_signature_is_refused_unless_allowed(tmp_path: Path, keys) -> None:
    art = make_artifact(tmp_path / "unsigned")
    assert_clean_error(flash_qemu(art, "--pubkey", keys["release.pub"]), "not signed", "--allow-unsigned")
    allowed = flash_qemu(art, "--allow-unsigned")
    assert allowed.returncode == 0, allowed.stderr
    assert "warning:" in allowed.stderr and "not signed" in allowed.stderr


def test_tampered_artifact_flashes_only_with_allow_unsigned_and_a_warning(signed: Path, keys) -> None:
    (signed / "build" / "firmware.elf").write_bytes((signed / "build" / "firmware.elf").read_bytes() + b"!")
    proc = flash_qemu(signed, "--pubkey", keys["release.pub"], "--allow-unsigned")
    assert proc.returncode == 0, proc.stderr
    assert "build/firmware.elf has changed" in proc.stderr


def test_signed_for_another_board_is_refused(signed: Path, keys) -> None:
    proc = run_cli("flash", signed, "--board", "qemu-mps3-an547", "--pubkey", keys["release.pub"])
    assert_clean_error(proc, "signed for board qemu-mps2-an386")


def test_image_outside_the_signature_is_refused(signed: Path, keys) -> None:
    extra = signed / "build" / "other.elf"
    extra.write_bytes((signed / "build" / "firmware.elf").read_bytes())
    proc = flash_qemu(extra, "--pubkey", keys["release.pub"])
    assert_clean_error(proc, "other.elf is not covered by the signature")


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch) -> Path:
    """Each test gets an empty user config dir, so the tester's own trusted keys never leak in."""
    home = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def test_trusted_keys_come_from_the_user_config_dir_never_the_current_folder(signed: Path, keys, tmp_path: Path,
                                                                             user_config: Path) -> None:
    project = tmp_path / "project"
    (project / "trusted_keys").mkdir(parents=True)
    (project / "trusted_keys" / "release.pub").write_bytes(keys["release.pub"].read_bytes())
    (project / "tinyml.toml").write_text(f'[sign]\ntrusted_keys = ["{keys["release.pub"]}"]\n')
    # a folder that brings its own key is not trusted by it
    assert_clean_error(flash_qemu(signed, cwd=project), "no trusted public key", "tinyml/trusted_keys")
    assert_clean_error(run_cli("verify", signed, cwd=project), "no trusted public key")
    mine = user_config / "tinyml" / "trusted_keys"
    mine.mkdir(parents=True)
    (mine / "stranger.pub").write_bytes(keys["stranger.pub"].read_bytes())
    assert_clean_error(flash_qemu(signed, cwd=project), "which is not a trusted key")
    (mine / "release.pub").write_bytes(keys["release.pub"].read_bytes())
    proc = flash_qemu(signed, cwd=project)
    assert proc.returncode == 0, proc.stderr
    verified = run_cli("verify", signed, cwd=project)
    assert verified.returncode == 0 and str(mine / "release.pub") in verified.stdout


def test_project_file_naming_trusted_keys_is_refused(tmp_path: Path) -> None:
    from tinyml.errors import InputError
    from tinyml.project.config import read_project

    (tmp_path / "tinyml.toml").write_text('[project]\nname = "p"\n[data]\nsynth = "vibration"\n'
                                          '[train]\nmodel = "cnn1d"\n[sign]\ntrusted_keys = ["k.pub"]\n')
    with pytest.raises(InputError, match="trusted_keys is not read"):
        read_project(tmp_path)


def test_files_added_after_signing_are_listed_and_refused(signed: Path, keys) -> None:
    extra = signed / "build" / "evil.bin"
    extra.write_bytes(b"\x00" * 64)
    assert_clean_error(run_cli("verify", signed, "--pubkey", keys["release.pub"]),
                       "added after signing", "build/evil.bin")
    assert_clean_error(flash_qemu(signed, "--pubkey", keys["release.pub"]), "added after signing", "build/evil.bin")
    # naming the signed image flashes just it
    named = flash_qemu(signed / "build" / "firmware.elf", "--pubkey", keys["release.pub"])
    assert named.returncode == 0, named.stderr


def test_flasher_args_added_after_signing_cannot_choose_offsets(tmp_path: Path, keys) -> None:
    art = tmp_path / "esp"
    (art / "build").mkdir(parents=True)
    (art / "build" / "app.bin").write_bytes(b"\xe9" + bytes(4095))
    signing.sign_folder(art, keys["release"], board="esp32-devkitc")
    (art / "build" / "flasher_args.json").write_text(json.dumps({"flash_files": {"0x1000": "app.bin"}}))
    flash = ("--board", "esp32-devkitc", "--pubkey", keys["release.pub"], "--port", "/dev/null")
    assert_clean_error(run_cli("flash", art, *flash), "added after signing", "flasher_args.json")
    assert_clean_error(run_cli("flash", art / "build" / "flasher_args.json", *flash),
                       "flasher_args.json is not covered by the signature")


def test_private_key_given_as_pubkey_is_refused(signed: Path, keys) -> None:
    assert_clean_error(run_cli("verify", signed, "--pubkey", keys["release"]), "is a private key")


def test_verify_raises_check_failed_for_garbled_signature(signed: Path, keys) -> None:
    (signed / signing.SIGNATURE).write_text("@@not base64@@")
    with pytest.raises(CheckFailed, match="not a base64 signature"):
        signing.verify_folder(signed, [keys["release.pub"]])


def test_sign_takes_the_board_from_the_firmware_project(tmp_path: Path, keys) -> None:
    art = make_artifact(tmp_path / "fw")
    (art / "tinyml.json").write_text(json.dumps({"board": "qemu-mps2-an386"}))
    signing.sign_folder(art, keys["release"])
    manifest = json.loads((art / signing.MANIFEST).read_text())
    assert manifest["board"] == "qemu-mps2-an386" and "tinyml.json" in manifest["files"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_bit_anywhere_in_a_signed_file_is_caught(keys, data) -> None:
    """Property: whichever signed file, byte and bit changes, flashing refuses and names the file."""
    with tempfile.TemporaryDirectory() as tmp:
        flip_and_flash(make_artifact(Path(tmp) / "art"), keys, data)


def flip_and_flash(art: Path, keys, data) -> None:
    signing.sign_folder(art, keys["release"], board="qemu-mps2-an386")
    rel = data.draw(st.sampled_from(sorted(json.loads((art / signing.MANIFEST).read_text())["files"])))
    blob = bytearray((art / rel).read_bytes())
    index = data.draw(st.integers(0, len(blob) - 1))
    blob[index] ^= 1 << data.draw(st.integers(0, 7))
    (art / rel).write_bytes(bytes(blob))
    with pytest.raises(CheckFailed, match=f"{rel} has changed"):
        flash_library(art, FlashOptions(pubkeys=[keys["release.pub"]]))
