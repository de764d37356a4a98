"""Rendering firmware projects: every family renders, ESP-IDF projects are sane and their model C
compiles for the core's ISA where a compiler exists, bad requests fail clearly."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.cbuild import host_compile
from tests.conftest import assert_clean_error, run_cli
from tinyml.firmware.boards import load_board
from tinyml.firmware.render import render_project
from tinyml.rundir import int8_model


@pytest.fixture(scope="module")
def feat_ae(shared: Path) -> Path:
    return shared / "models" / "feat_ae_int8.tflite"


@pytest.fixture(scope="module")
def vib_cnn(shared: Path) -> Path:
    return shared / "models" / "vib_cnn_int8.tflite"


def _compile_check(board_name: str, sources: list[Path], include: Path) -> None:
    """Compile (not link) sources with the board's check compiler, warnings as errors."""
    board = load_board(board_name)
    for src in sources:
        host_compile([src], "/dev/null", obj=True, cc=board.cc, includes=[include],
                     flags=(*board.cflags, "-std=gnu11", "-Os", "-Wall", "-Werror", "-ffreestanding"))


@pytest.mark.cross_compiler
def test_cli_renders_plain_make_project(feat_ae: Path, tmp_path: Path) -> None:
    out = tmp_path / "fw"
    proc = run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", feat_ae, "--out", out)
    assert proc.returncode == 0, proc.stderr
    for rel in ("Makefile", "link.ld", "src/startup.c", "src/port.c", "src/tinyml_app.c", "src/tinyml_proto.c",
                "src/tinyml_config.h", "src/tinyml_sensor.c", "model/model.c", "model/model.h", "tinyml.json"):
        assert (out / rel).is_file(), rel
    manifest = json.loads((out / "tinyml.json").read_text())
    assert manifest["board"] == "qemu-mps2-an386" and manifest["model_sha256"].startswith("ed43d297")
    config = (out / "src" / "tinyml_config.h").read_text()
    assert "0xed, 0x43, 0xd2, 0x97" in config and "#define TINYML_INPUT_BYTES 64u" in config
    link = (out / "link.ld").read_text()
    assert "ORIGIN = 0x20000000, LENGTH = 4194304" in link
    # the project builds with plain make, without tinyml
    build = subprocess.run(["make", "-s"], cwd=out, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert build.returncode == 0, build.stderr
    assert (out / "build" / "firmware.elf").is_file() and (out / "build" / "firmware.bin").is_file()


@pytest.mark.cross_compiler
def test_run_mode_builds_for_trained_run(trained_run, tmp_path: Path) -> None:
    out = tmp_path / "fw"
    render_project(load_board("qemu-mps2-an386"), int8_model(trained_run.run_dir), out)
    run_c = (out / "src" / "tinyml_run.c").read_text()
    assert "#define WINDOW 256u" in run_c and "#define CHANNELS 3u" in run_c
    build = subprocess.run(["make", "-s", "MODE=run"], cwd=out, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr


@pytest.mark.cross_compiler
@pytest.mark.parametrize("board_name", ["esp32-devkitc", "esp32-s3-devkitc-1", "esp32-c3-devkitm-1"])
def test_esp_idf_native_project(board_name: str, vib_cnn: Path, tmp_path: Path) -> None:
    out = render_project(load_board(board_name), int8_model(vib_cnn), tmp_path / "fw")
    top = (out / "CMakeLists.txt").read_text()
    assert "include($ENV{IDF_PATH}/tools/cmake/project.cmake)" in top and "project(tinyml_app)" in top
    assert "idf_component_register(SRCS ${app_sources}" in (out / "main" / "CMakeLists.txt").read_text()
    target = load_board(board_name).idf_target
    assert f'CONFIG_IDF_TARGET="{target}"' in (out / "sdkconfig.defaults").read_text()
    rows = [r for r in (out / "partitions.csv").read_text().splitlines() if r and not r.startswith("#")]
    assert any(r.split(",")[1].strip() == "app" for r in rows)
    assert all(len(r.split(",")) == 5 for r in rows)
    assert not (out / "main" / "idf_component.yml").exists()  # native: no TFLM dependency
    assert _balanced((out / "CMakeLists.txt").read_text()) and _balanced((out / "main" / "CMakeLists.txt").read_text())
    # the model and the portable application compile for the core's ISA (rough check for Xtensa LX6/LX7)
    _compile_check(board_name, [out / "main" / "model.c", out / "main" / "tinyml_app.c",
                                out / "main" / "tinyml_proto.c"], out / "main")


def _balanced(cmake: str) -> bool:
    depth = 0
    for ch in re.sub(r'"[^"]*"', "", cmake):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.cross_compiler
def test_esp_idf_tflm_project(vib_cnn: Path, tmp_path: Path) -> None:
    out = tmp_path / "fw"
    proc = run_cli("firmware", "new", "--board", "esp32-c3-devkitm-1", "--model", vib_cnn, "--out", out,
                   "--runtime", "tflm")
    assert proc.returncode == 0, proc.stderr
    yml = (out / "main" / "idf_component.yml").read_text()
    assert re.search(r"^dependencies:\n(  [\w/.-]+: \"[^\"]+\"\n)+", yml, re.M)
    assert "espressif/esp-tflite-micro:" in yml
    model_cc = (out / "main" / "tflm_model.cc").read_text()
    for op in ("AddExpandDims", "AddConv2D", "AddReshape", "AddMaxPool2D", "AddMean", "AddFullyConnected",
               "AddSoftmax"):
        assert f"resolver.{op}();" in model_cc
    assert model_cc.count("resolver.Add") == 7 and "MicroMutableOpResolver<7>" in model_cc
    arena = int(re.search(r"kArenaBytes = (\d+);", model_cc).group(1))
    assert 4096 <= arena <= 16384 and arena % 16 == 0
    data_c = (out / "main" / "model_data.c").read_text()
    assert f"model_data_len = {vib_cnn.stat().st_size}u" in data_c
    assert json.loads((out / "tinyml.json").read_text())["runtime"] == "tflm"
    # the model array compiles for the ESP32-C3's RV32IMC core
    _compile_check("esp32-c3-devkitm-1", [out / "main" / "model_data.c"], out / "main")


@pytest.mark.cross_compiler
def test_pico_project_renders(feat_ae: Path, tmp_path: Path) -> None:
    out = render_project(load_board("rpi-pico"), int8_model(feat_ae), tmp_path / "fw")
    assert "pico_add_extra_outputs(tinyml_app)" in (out / "CMakeLists.txt").read_text()
    _compile_check("qemu-mps2-an386", [out / "model" / "model.c"], out / "model")


def test_render_bad_requests(feat_ae: Path, tmp_path: Path) -> None:
    assert_clean_error(run_cli("firmware", "new", "--board", "no-such", "--model", feat_ae, "--out", tmp_path / "a"),
                       "unknown board")
    assert_clean_error(run_cli("firmware", "new", "--board", "qemu-riscv32", "--model", tmp_path / "none.tflite",
                               "--out", tmp_path / "b"), "model not found")
    assert_clean_error(run_cli("firmware", "new", "--board", "qemu-riscv32", "--model", feat_ae, "--out",
                               tmp_path / "c", "--runtime", "tflm"), "esp-tflite-micro")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    assert_clean_error(run_cli("firmware", "new", "--board", "qemu-riscv32", "--model", feat_ae, "--out", occupied),
                       "refusing to overwrite")
    assert (occupied / "notes.txt").read_text() == "mine"
    not_run = tmp_path / "not_run"
    not_run.mkdir()
    assert_clean_error(run_cli("firmware", "new", "--board", "qemu-riscv32", "--model", not_run, "--out",
                               tmp_path / "d"), "not a tinyml run directory")


def test_rerender_replaces_previous_project(feat_ae: Path, vib_cnn: Path, tmp_path: Path) -> None:
    board = load_board("qemu-riscv32")
    out = render_project(board, int8_model(feat_ae), tmp_path / "fw")
    render_project(board, int8_model(vib_cnn), out)
    assert "#define TINYML_INPUT_BYTES 768u" in (out / "src" / "tinyml_config.h").read_text()


def test_failed_render_leaves_nothing_behind(feat_ae: Path, tmp_path: Path) -> None:
    text = load_board("qemu-mps2-an386").source.read_text()
    board_file = tmp_path / "no-uart.toml"
    board_file.write_text(text.replace('name = "qemu-mps2-an386"', 'name = "no-uart"')
                          .replace('uart_base = 0x40004000\n', ""))
    out = tmp_path / "fw"
    proc = run_cli("firmware", "new", "--board", board_file, "--model", feat_ae, "--out", out)
    assert_clean_error(proc, "missing key hardware.uart_base")  # refused when the board is loaded
    assert not out.exists()
    proc = run_cli("firmware", "new", "--board", "qemu-mps2-an386", "--model", feat_ae, "--out", out)
    assert proc.returncode == 0, proc.stderr
