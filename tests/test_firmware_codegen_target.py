"""Codegen target in firmware: board default, --target override, refusals, and the pipeline's fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.errors import InputError
from tinyml.firmware.boards import load_board
from tinyml.firmware.render import codegen_target, read_manifest, render_project
from tinyml.rundir import int8_model

pytestmark = [pytest.mark.qemu, pytest.mark.cross_compiler]

DSP = "cortex-m4-dsp"


@pytest.mark.parametrize(("board", "target"), [
    ("qemu-mps2-an386", DSP), ("nucleo-f446re", DSP), ("nrf52840-dk", DSP), ("qemu-mps3-an547", DSP),
    ("qemu-riscv32", "portable"), ("rpi-pico", "portable"), ("qemu-xtensa-lx106", "portable"),
])
def test_board_default_codegen_target(board: str, target: str) -> None:
    assert codegen_target(load_board(board)) == target
    assert codegen_target(load_board(board), "portable") == "portable"


def test_dsp_kernels_on_a_core_without_dsp_are_refused() -> None:
    with pytest.raises(InputError, match="does not run on qemu-riscv32"):
        codegen_target(load_board("qemu-riscv32"), DSP)
    with pytest.raises(InputError, match="unknown codegen target"):
        codegen_target(load_board("qemu-mps2-an386"), "avx512")


def test_unknown_codegen_target_in_board_file(tmp_path: Path, shared: Path) -> None:
    text = (load_board("qemu-mps2-an386").source).read_text().replace(
        f'codegen_target = "{DSP}"', 'codegen_target = "neon"')
    (tmp_path / "weird.toml").write_text(text.replace('name = "qemu-mps2-an386"', 'name = "weird"'))
    proc = run_cli("firmware", "new", "--board", tmp_path / "weird.toml", "--model",
                   shared / "models" / "feat_ae_int8.tflite", "--out", tmp_path / "fw")
    assert_clean_error(proc, "codegen_target", "neon")
    assert not (tmp_path / "fw").exists()


def test_firmware_new_target_option_and_manifest(tmp_path: Path, shared: Path) -> None:
    model = shared / "models" / "feat_ae_int8.tflite"
    proc = run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", model, "--out", tmp_path / "dsp")
    assert proc.returncode == 0, proc.stderr
    assert DSP in proc.stdout and read_manifest(tmp_path / "dsp")["codegen_target"] == DSP
    assert "__smlad" in (tmp_path / "dsp" / "model" / "model.c").read_text()
    render_project(load_board("qemu-mps2-an386"), int8_model(model), tmp_path / "portable", target="portable")
    assert read_manifest(tmp_path / "portable")["codegen_target"] == "portable"
    assert "__smlad" not in (tmp_path / "portable" / "model" / "model.c").read_text()
    bad = run_cli("firmware", "new", "--board", "qemu-riscv32", "--model", model, "--out", tmp_path / "rv",
                  "--target", DSP)
    assert_clean_error(bad, "cortex-m4-dsp", "qemu-riscv32")
    unknown = run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", model, "--out", tmp_path / "x",
                      "--target", "avx512")
    assert_clean_error(unknown, "unknown codegen target", "avx512")
    with_port = run_cli("validate", "--board", "qemu-mps2-an386", "--model", model, "--port", "socket://127.0.0.1:9",
                        "--target", DSP)
    assert_clean_error(with_port, "--target", "--port")


def test_validate_with_dsp_kernels_is_exact_and_faster(tmp_path: Path, shared: Path) -> None:
    model = shared / "models" / "vib_cnn_int8.tflite"
    reports = {}
    for target in ("portable", DSP):
        path = tmp_path / f"{target}.json"
        proc = run_cli("validate", "--board", "qemu-mps2-an386", "--model", model, "--limit", "4",
                       "--target", target, "--report", path, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert f"{target} kernels" in proc.stderr
        reports[target] = json.loads(path.read_text())
    assert reports["portable"]["mismatches"] == reports[DSP]["mismatches"] == 0
    fast, slow = reports[DSP]["instructions_per_inference"], reports["portable"]["instructions_per_inference"]
    assert fast < 0.8 * slow, (fast, slow)


def test_pipeline_firmware_stage_follows_codegen_target(tmp_path: Path) -> None:
    from tinyml.project.config import read_project
    from tinyml.project.stages import FIRMWARE

    toml = (Path(__file__).parents[1] / "examples" / "vibration" / "tinyml.toml").read_text()
    assert f'target = "{DSP}"' in toml
    for target in (DSP, "portable"):
        (tmp_path / "tinyml.toml").write_text(toml.replace(f'target = "{DSP}"', f'target = "{target}"'))
        assert FIRMWARE.settings(read_project(tmp_path / "tinyml.toml"))["codegen_target"] == target


def test_firmware_new_picks_the_fastest_kernels_that_fit_the_flash(tmp_path: Path, shared: Path) -> None:
    """ToyCar's DSP kernels keep its weights at their int8 size (~271 KB), so the NUCLEO-F446RE's
    512 KB flash takes the fast kernels, and the firmware builds; on a board too small for any
    variant the smallest is kept, said, and refused by `tinyml build` with the section sizes."""
    from tinyml.firmware.build import build_project

    model = shared / "models" / "toycar_ad_int8.tflite"
    proc = run_cli("firmware", "new", "--board", "nucleo-f446re", "--model", model, "--out", tmp_path / "auto")
    assert proc.returncode == 0, proc.stderr
    assert f"{DSP} kernels: fastest that fits 524,288 B of flash" in proc.stdout
    manifest = read_manifest(tmp_path / "auto")
    assert manifest["codegen_target"] == DSP and "fastest" in manifest["codegen_choice"]
    report = build_project(tmp_path / "auto")
    assert report.fits and report.flash_bytes <= 524_288
    named = run_cli("firmware", "new", "--board", "nucleo-f446re", "--model", model, "--out", tmp_path / "named",
                    "--target", "portable")
    assert named.returncode == 0 and "portable kernels: named by --target" in named.stdout
    small_board = tmp_path / "small-f4.toml"
    small_board.write_text(load_board("nucleo-f446re").source.read_text()
                           .replace('name = "nucleo-f446re"', 'name = "small-f4"')
                           .replace("flash_bytes = 524288", "flash_bytes = 262144"))
    tight = run_cli("firmware", "new", "--board", small_board, "--model", model, "--out", tmp_path / "tight")
    assert tight.returncode == 0, tight.stderr
    assert f"portable kernels: nothing fits 262,144 B of flash ({DSP} needs" in tight.stdout
    assert_clean_error(run_cli("build", tmp_path / "tight"), "does not fit small-f4", "sections .text ")
