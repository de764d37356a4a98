"""A new user's mistakes: each one is a single `error: … (hint: …)` line, never "internal error".

Permission bits do not stop root (these tests may run as root), so an unwritable --out is made
the portable way: a path under a regular file, or a folder where a file is wanted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli

MODEL = "vib_cnn_int8.tflite"


@pytest.fixture()
def blocker(tmp_path: Path) -> Path:
    """A regular file: nothing can be written under it."""
    path = tmp_path / "a-file"
    path.write_text("not a folder\n")
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "v.npz"
    proc = run_cli("data", "synth", "vibration", "--per-class", "17", "--window", "64", "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_unwritable_out_is_one_line_for_every_command(blocker: Path, tmp_path: Path, shared: Path,
                                                      tiny_data: Path) -> None:
    model = shared / "models" / MODEL
    under = blocker / "sub"
    cases = [
        ("data", "synth", "vibration", "--out", under / "v.npz"),
        ("data", "synth", "temperature", "--out", tmp_path),  # a folder where a file is wanted
        ("data", "import", tiny_data, "--out", under / "x.npz"),
        ("predict", model, tiny_data, "--out", under / "p.csv"),
        ("codegen", model, "--out", under),
        ("codegen", model, "--out", blocker),  # a file where a folder is wanted
        ("firmware", "new", "--board", "qemu-mps2-an386", "--model", model, "--out", under),
        ("export", "c-array", model, "--out", under),
        ("export", "c-array", model, "--out", blocker),
        ("train", tiny_data, "--out", under, "--epochs", "1"),
        ("init", under),
    ]
    for args in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert_clean_error(proc, "--out" if args[0] != "init" else "FOLDER", "hint:")
        assert "internal error" not in proc.stderr, (args, proc.stderr)
    assert blocker.read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [blocker.name]  # nothing half-written


def test_a_text_file_named_npz_is_not_called_a_pickle(tmp_path: Path) -> None:
    fake = tmp_path / "notes.npz"
    fake.write_text("just some notes\n")
    for args in (("data", "info", fake), ("data", "import", fake, "--out", tmp_path / "x.npz", "--fs", "10")):
        proc = run_cli(*args)
        assert_clean_error(proc, "not an .npz archive", "text")
        assert "pickle" not in proc.stderr


def test_a_one_row_csv_is_too_short_not_one_class(tmp_path: Path) -> None:
    csv = tmp_path / "one.csv"
    csv.write_text("t,a,label\n0,1.5,x\n")
    proc = run_cli("data", "import", csv, "--label-column", "label", "--time-column", "t", "--fs", "100",
                   "--out", tmp_path / "x.npz")
    assert_clean_error(proc, "--window 256 is longer than the longest recording (1 samples")


def test_synth_split_hint_names_only_synth_flags(tmp_path: Path) -> None:
    proc = run_cli("data", "synth", "vibration", "--per-class", "5", "--out", tmp_path / "v.npz")
    assert_clean_error(proc, "--per-class 5 makes 1 recording", "--per-class 17", "--windows-per-recording 2")
    for foreign in ("--hop", "--split time", "import"):
        assert foreign not in proc.stderr
    ok = run_cli("data", "synth", "vibration", "--per-class", "5", "--windows-per-recording", "2",
                 "--window", "64", "--out", tmp_path / "v.npz")
    assert ok.returncode == 0, ok.stderr


def test_bad_option_values_name_the_flag(tmp_path: Path) -> None:
    assert_clean_error(run_cli("data", "synth", "vibration", "--per-class", "-4", "--out", tmp_path / "v.npz"),
                       "--per-class must be at least 1, got -4")
    assert_clean_error(run_cli("data", "synth", "temperature", "--val", "0.6", "--test", "0.5",
                               "--out", tmp_path / "t.npz"), "leaves nothing to train on")


def test_signing_messages_say_what_is_wrong(tmp_path: Path, shared: Path) -> None:
    key = tmp_path / "release.key"
    assert run_cli("keygen", "--out", key).returncode == 0
    art = tmp_path / "art"
    art.mkdir()
    (art / MODEL).write_bytes((shared / "models" / MODEL).read_bytes())
    proc = run_cli("sign", art, "--key", f"{key}.pub")
    assert_clean_error(proc, "is a public key", f"--key {key}")
    assert "chmod" not in proc.stderr
    assert run_cli("sign", art, "--key", key).returncode == 0
    (art / "tinyml-manifest.sig").unlink()
    proc = run_cli("verify", art, "--pubkey", f"{key}.pub")
    assert_clean_error(proc, "has tinyml-manifest.json but no tinyml-manifest.sig", "tinyml sign")
    assert "--allow-unsigned" not in proc.stderr


def test_gateway_toml_type_error_names_key_and_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('ports = ["socket://127.0.0.1:9"]\n\n[rules]\nanomaly_n = 5\nanomaly_k = "3"\n')
    proc = run_cli("gateway", "run", "--config", config, "--db", tmp_path / "g.db")
    assert_clean_error(proc, "[rules] anomaly_k = '3'", f"{config}:5", "must be an integer", "anomaly_k = 3")
    assert "not supported between" not in proc.stderr


def test_project_values_are_checked_when_loaded(tmp_path: Path) -> None:
    assert run_cli("init", tmp_path / "p").returncode == 0
    toml = tmp_path / "p" / "tinyml.toml"
    text = toml.read_text()
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("per_class"))
    toml.write_text(text.replace("per_class = 100", "per_class = -4", 1))
    for extra in (("--dry-run",), ()):
        proc = run_cli("run", "--project", toml, *extra)
        assert_clean_error(proc, f"tinyml.toml:{line}: [data] per_class must be at least 1, got -4")
        assert "--per-class" not in proc.stderr
    leftovers = [p.name for p in (tmp_path / "p").rglob("*") if p.name != "tinyml.toml"]
    assert leftovers == []


def test_debug_works_anywhere_and_click_errors_share_the_prefix(tmp_path: Path) -> None:
    fake = tmp_path / "x.npz"
    fake.write_text("x")
    proc = run_cli("data", "info", fake, "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "error: " in proc.stderr
    for args, needle in ((("data", "describe"), "see `tinyml data --help`"),
                         (("data", "synth", "vibration"), "Missing option '--out'"),
                         (("no-such-command",), "see `tinyml --help`")):
        proc = run_cli(*args)
        assert_clean_error(proc, needle)
        assert "Error:" not in proc.stderr and "Usage:" not in proc.stderr
