"""Stage and progress output: a redrawn bar on a terminal, a few plain lines in a log."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.conftest import run_cli
from tinyml.device.endpoints import open_pty

LOOP = ("from tinyml.progress import Steps, stage\n"
        "stage('work: starting')\n"
        "with Steps(40, desc='work', unit='step') as bar:\n"
        "    for _ in range(40):\n"
        "        bar.update(loss=0.5)\n")


def _run_on(stderr_is_tty: bool) -> str:
    if not stderr_is_tty:
        return subprocess.run([sys.executable, "-c", LOOP], capture_output=True, text=True, check=True).stderr
    master, slave, _ = open_pty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal has a width
    proc = subprocess.Popen([sys.executable, "-c", LOOP], stderr=slave, stdout=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait()
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_plain_lines_when_not_a_terminal():
    lines = _run_on(stderr_is_tty=False).splitlines()
    assert lines[0] == "work: starting ..."
    assert lines[1:] == [f"work: {n}/40 steps loss 0.500" for n in range(4, 41, 4)]


def test_a_bar_on_a_terminal():
    out = _run_on(stderr_is_tty=True)
    assert "work: starting ..." in out
    assert "\rwork:" in out and "/40 [" in out and "step" in out  # tqdm draws in place
    assert "work: 4/40 steps" not in out  # no log lines on a terminal


def test_train_and_quantize_say_what_they_do_in_a_log(tmp_path: Path):
    data = tmp_path / "v.npz"
    assert run_cli("data", "synth", "vibration", "--per-class", "24", "--window", "64", "--out", data).returncode == 0
    proc = run_cli("train", data, "--model", "mlp", "--epochs", "3", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "train: mlp on " in proc.stderr and "train: 3/3 epochs accuracy" in proc.stderr
    assert "\r" not in proc.stderr
    proc = run_cli("quantize", tmp_path / "run", "--tolerance", "100")
    assert proc.returncode == 0, proc.stderr
    assert "quantize: converting" in proc.stderr and "quantize: scoring" in proc.stderr
    assert "quantize: 3/3 models" in proc.stderr


def test_tinyml_run_names_each_stage_and_keeps_one_run_level(tmp_path: Path):
    assert run_cli("init", tmp_path).returncode == 0
    toml = tmp_path / "tinyml.toml"
    text = toml.read_text().replace("per_class = 100", "per_class = 24", 1)
    toml.write_text(text.replace("\nepochs = ", "\nepochs = 2  # was ", 1))
    proc = run_cli("run", "--project", toml, "--until", "quantize", "--force")
    assert proc.returncode in (0, 5), proc.stderr  # 5: two epochs may lose the int8 tolerance
    for name in ("data", "train", "quantize"):
        assert f"{name}: starting ..." in proc.stderr
    assert "train: 2/2 epochs" in proc.stderr and "\r" not in proc.stderr
    assert (tmp_path / "run" / "model" / "model.json").is_file()
    assert not (tmp_path / "run" / "run").exists()
