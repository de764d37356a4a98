"""`tinyml build`: size report from the ELF, firmware that does not fit, missing toolchains."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.firmware.boards import load_board
from tinyml.firmware.build import build_project, describe_sections, elf_sections, map_sections
from tinyml.firmware.render import render_project
from tinyml.rundir import int8_model

pytestmark = [pytest.mark.cross_compiler]


@pytest.fixture(scope="module")
def an386_project(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build") / "fw"
    render_project(load_board("qemu-mps2-an386"), int8_model(shared / "models" / "vib_cnn_int8.tflite"), out)
    return out


def test_size_report_agrees_with_binutils(an386_project: Path) -> None:
    proc = run_cli("build", an386_project, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    manifest = json.loads((an386_project / "tinyml.json").read_text())
    assert report["fits"] and report["arena_bytes"] == manifest["arena_bytes"] > 0
    assert report["flash_limit"] == 4 * 1024 * 1024 and report["stack_bytes"] == 8192
    # Berkeley `size`: text (+rodata) and data occupy flash, data and bss occupy RAM
    size = subprocess.run(["arm-none-eabi-size", str(an386_project / "build" / "firmware.elf")],
                          capture_output=True, text=True, check=True).stdout.splitlines()[1].split()
    text, data, bss = (int(v) for v in size[:3])
    assert report["flash_bytes"] == text + data
    assert report["ram_bytes"] + report["stack_bytes"] == data + bss
    names = {name for name, *_ in elf_sections((an386_project / "build" / "firmware.elf").read_bytes())}
    assert {".text", ".bss", ".stack"} <= names
    human = run_cli("build", an386_project)
    assert human.returncode == 0 and "flash" in human.stdout and "arena" in human.stdout


def test_flash_limit_override_fails_with_numbers(an386_project: Path) -> None:
    proc = run_cli("build", an386_project, "--flash-limit", "4000")
    assert_clean_error(proc, "does not fit", "of 4,000 B", "sections .text ", ".stack 8,192 B")
    assert proc.returncode == 5


def test_model_too_big_for_board_fails_at_link(shared: Path, tmp_path: Path) -> None:
    board_file = tmp_path / "tiny-m4.toml"
    text = load_board("qemu-mps2-an386").source.read_text()
    board_file.write_text(text.replace('name = "qemu-mps2-an386"', 'name = "tiny-m4"')
                          .replace("flash_bytes = 4194304", "flash_bytes = 65536"))
    out = tmp_path / "fw"
    proc = run_cli("firmware", "new", "--board", board_file, "--model", shared / "models" / "toycar_ad_int8.tflite",
                   "--out", out)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("build", out)
    assert_clean_error(proc, "does not fit tiny-m4", "region FLASH by", "flash 65,536 B", "--target portable")
    assert proc.returncode == 5
    # no ELF was linked: the sizes come from the linker map, and .text is what outgrew the flash
    text = int(re.search(r"sections \.text ([\d,]+) B", proc.stderr).group(1).replace(",", ""))
    assert text > 65_536 and ".stack 8,192 B" in proc.stderr


def test_map_sections_reads_wrapped_names_and_skips_debug() -> None:
    text = (".text           0x00000000    0x8450c\n *(.vectors)\n"
            ".iplt           0x0008450c        0x0\n"
            ".a_very_long_section_name\n                0x20000000       0x40\n"
            ".debug_info     0x00000000     0x5c94\n")
    assert map_sections(text) == [(".text", 0x8450C), (".a_very_long_section_name", 0x40)]
    assert describe_sections([(".text", 1234), (".bss", 8)]) == "sections .text 1,234 B, .bss 8 B"


def test_missing_toolchain_is_a_tool_error(an386_project: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink("/usr/bin/make", bin_dir / "make")  # make is there, the cross compiler is not
    proc = run_cli("build", an386_project, env={"PATH": str(bin_dir)})
    assert_clean_error(proc, "arm-none-eabi-gcc not found", "apt-get install gcc-arm-none-eabi")
    assert proc.returncode == 3


@pytest.mark.parametrize(("board_name", "env", "needles"), [
    ("esp32-c3-devkitm-1", {"PATH": "/usr/bin:/bin"}, ("idf.py not found", "ESP-IDF")),
    ("rpi-pico", {"PICO_SDK_PATH": ""}, ("Pico SDK", "PICO_SDK_PATH")),
])
def test_sdk_projects_need_their_sdk(board_name: str, env: dict, needles: tuple[str, ...], shared: Path,
                                     tmp_path: Path) -> None:
    out = render_project(load_board(board_name), int8_model(shared / "models" / "feat_ae_int8.tflite"),
                         tmp_path / "fw")
    proc = run_cli("build", out, env=env)
    assert_clean_error(proc, *needles)
    assert proc.returncode == 3


def test_switching_mode_rebuilds_every_object(shared: Path, tmp_path: Path) -> None:
    """`make MODE=run` after a validation build must not link the validation objects (and back)."""
    out = render_project(load_board("qemu-mps2-an386"), int8_model(shared / "models" / "vib_cnn_int8.tflite"),
                         tmp_path / "fw")
    elf, app = out / "build" / "firmware.elf", out / "build" / "src" / "tinyml_app.c.o"
    marker = b"run mode reads the sensor"  # an error string only the run-mode app has
    build_project(out)
    validate_app = app.read_bytes()
    assert marker not in elf.read_bytes()
    proc = run_cli("build", out, "--mode", "run")
    assert proc.returncode == 0, proc.stderr
    assert marker in elf.read_bytes() and app.read_bytes() != validate_app
    build_project(out, mode="validate")
    assert marker not in elf.read_bytes() and app.read_bytes() == validate_app


def test_run_mode_is_refused_for_sdk_boards(shared: Path, tmp_path: Path) -> None:
    out = render_project(load_board("esp32-c3-devkitm-1"), int8_model(shared / "models" / "feat_ae_int8.tflite"),
                         tmp_path / "fw")
    assert_clean_error(run_cli("build", out, "--mode", "run"), "run mode only for make-built boards",
                       "TINYML_RUN_MODE")
    assert_clean_error(run_cli("build", out, "--mode", "sleep"), "--mode")


@pytest.mark.parametrize("board_name", ["nucleo-f446re", "nrf52840-dk"])
def test_real_cortex_m_boards_build_and_fit(board_name: str, shared: Path, tmp_path: Path) -> None:
    board = load_board(board_name)
    out = render_project(board, int8_model(shared / "models" / "vib_cnn_int8.tflite"), tmp_path / "fw")
    report = build_project(out)
    assert report.fits and report.flash_limit == board.flash_bytes and report.ram_limit == board.ram_bytes
    vectors = subprocess.run(["arm-none-eabi-objdump", "-h", str(out / "build" / "firmware.elf")],
                             capture_output=True, text=True, check=True).stdout
    assert f"{board.flash_origin:08x}" in vectors  # linked at the board's flash origin


def test_build_bad_project(tmp_path: Path) -> None:
    assert_clean_error(run_cli("build", tmp_path), "not a tinyml firmware project")
    (tmp_path / "tinyml.json").write_text("{broken")
    assert_clean_error(run_cli("build", tmp_path), "not valid JSON")


def test_corrupt_elf_is_an_input_error(tmp_path: Path) -> None:
    from tinyml.errors import InputError

    with pytest.raises(InputError, match="32-bit little-endian ELF"):
        elf_sections(b"MZ not an elf")
    with pytest.raises(InputError, match="truncated or corrupt"):
        elf_sections(b"\x7fELF\x01\x01\x01" + bytes(40))
