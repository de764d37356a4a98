"""`tinyml inspect`: figures checked against independent facts about the reference models."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise

import pytest

from tests.conftest import ROOT, assert_clean_error, run_cli
from tinyml.model.inspect import tflm_builtin_ops


@pytest.fixture(scope="module")
def vib_report(shared):
    proc = run_cli("inspect", shared / "models/vib_cnn_int8.tflite", "--json", "--board", "qemu-mps2-an386")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_ops_params_and_io_of_the_reference_cnn(vib_report):
    # shared/models/README.md: 2,459 params, input 256x3, ops as listed there
    assert vib_report["parameters"] == 2459
    assert vib_report["ops"] == {"CONV_2D": 3, "EXPAND_DIMS": 5, "FULLY_CONNECTED": 2, "MAX_POOL_2D": 2,
                                 "MEAN": 1, "RESHAPE": 5, "SOFTMAX": 1}
    assert vib_report["input"]["shape"] == [1, 256, 3] and vib_report["input"]["dtype"] == "int8"
    assert vib_report["model_bytes"] == 12272 and vib_report["tflm_missing_ops"] == []


def test_macs_of_the_toycar_autoencoder(shared):
    proc = run_cli("inspect", shared / "models/toycar_ad_int8.tflite", "--json", "--no-arena", "--no-codegen")
    report = json.loads(proc.stdout)
    widths = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]  # README: 640->128x4->8->128x4->640
    assert report["macs"] == sum(a * b for a, b in pairwise(widths))
    assert report["parameters"] == sum(a * b + b for a, b in pairwise(widths))


def _runs_with_arena(model_path, size: int) -> bool:
    code = ("import sys; from pathlib import Path; from tinyml.model.arena import _trial;"
            f"sys.exit(0 if _trial(Path({str(model_path)!r}).read_bytes(), {size}) else 1)")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True).returncode == 0


def test_arena_is_the_smallest_that_works(vib_report, shared):
    size = vib_report["arena"]["tflm_host_min_bytes"]
    model = shared / "models/vib_cnn_int8.tflite"
    assert _runs_with_arena(model, size)
    assert not _runs_with_arena(model, size - 1)  # a crash counts as not working, too


def test_arena_search_survives_interpreter_crashes(shared):
    # ml-stack notes: some too-small arenas segfault the TFLM interpreter on this autoencoder
    from tinyml.model.arena import min_arena_size

    model = shared / "models/feat_ae_int8.tflite"
    res = min_arena_size(model.read_bytes())
    assert _runs_with_arena(model, res.min_bytes) and not _runs_with_arena(model, res.min_bytes - 1)


def test_board_fit_and_codegen_sections(vib_report):
    fit = vib_report["board_fit"]
    assert fit["fits_flash"] and fit["fits_ram"]
    assert fit["ram_needed"] >= vib_report["arena"]["tflm_host_min_bytes"]
    assert vib_report["codegen"]["arena_bytes"] > 0


def test_tflm_op_list_comes_from_the_runtime():
    ops = tflm_builtin_ops()
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "MEAN"} <= ops
    assert "CUSTOM" not in ops and "NON_MAX_SUPPRESSION_V5" not in ops  # not in TFLM


def test_model_too_big_for_the_board(shared, tmp_path):
    board = (ROOT / "boards/qemu-mps2-an386.toml").read_text()
    small = tmp_path / "tiny-board.toml"
    small.write_text(board.replace('name = "qemu-mps2-an386"', 'name = "tiny-board"')
                     .replace("flash_bytes = 4194304", "flash_bytes = 32768"))
    assert "flash_bytes = 32768" in small.read_text()
    proc = run_cli("inspect", shared / "models/vib_cnn_int8.tflite", "--board", small, "--no-arena", "--no-codegen")
    assert_clean_error(proc, "does not fit", "flash")
    assert proc.returncode == 5 and "DOES NOT FIT" in proc.stdout


def test_bad_inputs(shared, tmp_path):
    assert_clean_error(run_cli("inspect", tmp_path / "missing.tflite"), "not found")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes((shared / "models/vib_cnn_int8.tflite").read_bytes()[:3000])
    assert_clean_error(run_cli("inspect", corrupt), "invalid .tflite")
    assert_clean_error(run_cli("inspect", shared / "models/vib_cnn_int8.tflite", "--board", "no-such-board"),
                       "no-such-board")
