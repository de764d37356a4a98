"""Board files: every shipped board loads, bad names and bad files fail with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.errors import InputError
from tinyml.firmware.boards import list_boards, load_board

REQUIRED = {"qemu-mps2-an386", "qemu-mps3-an547", "qemu-riscv32", "qemu-xtensa-lx106", "esp32-devkitc",
            "esp32-s3-devkitc-1", "esp32-c3-devkitm-1", "nucleo-f446re", "nrf52840-dk", "rpi-pico"}


def test_required_boards_exist_and_load() -> None:
    assert set(list_boards()) >= REQUIRED
    for name in list_boards():
        board = load_board(name)
        assert board.name == name
        assert board.flash_bytes > 0 and board.ram_bytes > 0
        if board.emulated:
            argv = board.emulator_argv("fw.elf", "tcp:127.0.0.1:1")
            assert "fw.elf" in argv and any(a.endswith("tcp:127.0.0.1:1") for a in argv)


def test_board_facts() -> None:
    pico = load_board("rpi-pico")
    assert pico.flash_method == "uf2" and pico.flash["uf2_family"] == 0xE48BFF56
    assert load_board("esp32-c3-devkitm-1").flash["chip"] == "esp32c3"
    an386 = load_board("qemu-mps2-an386")
    assert an386.ram_origin == 0x20000000 and an386.instructions_per_tick == 40
    assert an386.capabilities() == {"build": True, "emulate": True, "flash": True}


def test_unknown_board_lists_known_names() -> None:
    with pytest.raises(InputError) as err:
        load_board("no-such-board")
    assert "qemu-mps2-an386" in err.value.message


def test_board_from_path(tmp_path: Path) -> None:
    mine = tmp_path / "my-board.toml"
    mine.write_text(load_board("qemu-riscv32").source.read_text().replace('name = "qemu-riscv32"', 'name = "my-board"'))
    assert load_board(str(mine)).name == "my-board"
    with pytest.raises(InputError, match="board file not found"):
        load_board(str(tmp_path / "absent.toml"))


@pytest.mark.parametrize(("old", "new", "message"), [
    (None, "name = [unclosed\n", "not valid TOML"),
    ("flash_bytes = 1048576", 'flash_bytes = "big"', "memory.flash_bytes must be int"),
    ('cpu = "rv32imc"\n', "", "missing key cpu"),
    ('method = "qemu"', 'method = "carrier-pigeon"', "flash.method"),
    ('unit = "cycles"', 'unit = "fortnights"', "latency.unit"),
    ("emulated = true", "emulated = 3", "emulated must be bool"),
])
def test_malformed_board_files(old: str | None, new: str, message: str, tmp_path: Path) -> None:
    good = load_board("qemu-riscv32").source.read_text()
    path = tmp_path / "broken.toml"
    path.write_text(new if old is None else good.replace(old, new))
    with pytest.raises(InputError, match=message):
        load_board(str(path))


@pytest.mark.parametrize(("board", "old", "new", "message"), [
    ("qemu-riscv32", 'method = "qemu"', 'method = "qemu"\nbaud = 9600', "unknown key flash.baud"),
    ("nucleo-f446re", 'interface = "interface/stlink.cfg"\n', "", "missing key flash.interface"),
    ("esp32-devkitc", 'chip = "esp32"', 'chip = "esp33"', "flash.chip 'esp33' is unknown"),
    ("esp32-devkitc", "baud = 460800", 'baud = "fast"', "flash.baud must be a baud rate"),
    ("rpi-pico", "uf2_family = 0xe48bff56", 'uf2_family = "pico"', "flash.uf2_family must be a number"),
    ("qemu-riscv32", 'uart = "ns16550a"', 'uart = "ns16550"', "hardware.uart 'ns16550' is unknown"),
    ("qemu-riscv32", "uart_base = 0x10000000\n", "", "missing key hardware.uart_base"),
    ("qemu-riscv32", "exit_base = 0x00100000\n", "", "missing key hardware.exit_base"),
    ("qemu-mps2-an386", "clock_hz = 25000000", "clock_hz = 25000000\nclok_hz = 1", "unknown key hardware.clok_hz"),
])
def test_flash_and_hardware_are_checked_when_the_board_is_loaded(board: str, old: str, new: str, message: str,
                                                                 tmp_path: Path) -> None:
    """Through the registry of flash methods (tinyml/flash/methods.py) and tinyml/firmware/hardware.py."""
    good = load_board(board).source.read_text()
    assert old in good
    path = tmp_path / "mine.toml"
    path.write_text(good.replace(old, new, 1).replace(f'name = "{board}"', 'name = "mine"'))
    with pytest.raises(InputError, match=message):
        load_board(str(path))


def test_every_flash_method_has_its_images_and_keys() -> None:
    from tinyml.flash.methods import METHODS

    assert set(METHODS) == {"qemu", "esptool", "uf2", "openocd", "pyocd"}
    used = {load_board(name).flash_method for name in list_boards()}
    assert used <= set(METHODS) and all(m.images for m in METHODS.values())


def test_boards_cli() -> None:
    proc = run_cli("boards", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) >= REQUIRED
    assert rows["qemu-riscv32"]["here"]["emulate"] is True
    text = run_cli("boards")
    assert text.returncode == 0 and "nucleo-f446re" in text.stdout and "512 KiB" in text.stdout


def test_boards_cli_bad_board_file(tmp_path: Path) -> None:
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "x.toml").write_text("name = 'x'\n")
    proc = run_cli("boards", env={"TINYML_HOME": str(tmp_path)})
    assert_clean_error(proc, "missing key")


def test_boards_say_why_not(tmp_path: Path) -> None:
    """Without compilers and emulators on PATH, every "no" names what is missing (text and JSON)."""
    import json
    import sys

    from tests.conftest import run_cli

    bare = {"PATH": str(Path(sys.executable).parent), "PICO_SDK_PATH": ""}
    proc = run_cli("boards", "--json", env=bare)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    an386 = rows["qemu-mps2-an386"]
    cc = load_board("qemu-mps2-an386").cc
    assert an386["here"] == {"build": False, "emulate": False, "flash": False}
    assert an386["why_not"]["build"] == f"compiler {cc} not on PATH"
    assert an386["why_not"]["emulate"] == "qemu-system-arm not on PATH" == an386["why_not"]["flash"]
    assert rows["rpi-pico"]["why_not"]["build"] == "PICO_SDK_PATH is not set"
    assert "flash" not in rows["rpi-pico"]["why_not"]  # a UF2 copy needs no tool
    text = run_cli("boards", env=bare).stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("qemu-mps2-an386"))
    assert f"build: compiler {cc} not on PATH" in line and "emulate: qemu-system-arm not on PATH" in line
