"""The root command: fast help without TensorFlow, and errors as one line."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import run_cli


def test_help_lists_every_command():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for name in ("data", "train", "quantize", "codegen", "validate", "gateway", "flash"):
        assert name in proc.stdout


def test_no_help_imports_tensorflow():
    code = ("import sys; from tinyml.cli import COMMANDS, main\n"
            "for args in [[]] + [[name] for name in COMMANDS]:\n"
            "    try:\n        main([*args, '--help'])\n    except SystemExit as exc:\n"
            "        assert exc.code == 0, (args, exc.code)\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
            "assert 'keras' not in sys.modules, 'keras imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_unknown_command_is_a_clean_error():
    proc = run_cli("no-such-command")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
