"""The model commands' --help must not import TensorFlow, Keras or matplotlib."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT


def _startup_benchmark():
    spec = importlib.util.spec_from_file_location("cli_startup", ROOT / "benchmarks/cli_startup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _startup_benchmark()


@pytest.mark.parametrize("args", BENCH.COMMANDS, ids=lambda a: " ".join(a) or "root")
def test_help_imports_nothing_heavy(args):
    assert BENCH.heavy_modules(args) == []
