"""`tinyml flash` back ends other than esptool's emulated loader: OpenOCD, pyOCD, QEMU, image lookup."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_clean_error, run_cli
from tinyml.device.endpoints import free_tcp_port
from tinyml.errors import InputError, ToolError
from tinyml.firmware.boards import load_board
from tinyml.flash import esp, find_image, ocd, qemu
from tinyml.flash.runner import run_tool


@pytest.fixture(scope="module")
def elves(tmp_path_factory) -> dict[str, Path]:
    """Real ARM and RISC-V object files from the installed cross compilers."""
    folder = tmp_path_factory.mktemp("elves")
    src = folder / "main.c"
    src.write_text("int answer(void) { return 42; }\n")
    out = {}
    for name, argv in {"arm": ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb"],
                       "riscv": ["riscv64-unknown-elf-gcc", "-march=rv32imac", "-mabi=ilp32"]}.items():
        out[name] = folder / f"{name}.elf"
        subprocess.run([*argv, "-c", str(src), "-o", str(out[name])], check=True)
    return out


# --- OpenOCD -------------------------------------------------------------------------------

def test_openocd_command_line_for_elf_and_bin(tmp_path: Path) -> None:
    elf, binary = tmp_path / "fw.elf", tmp_path / "fw.bin"
    assert ocd.openocd_argv(elf, "interface/stlink.cfg", "target/stm32f4x.cfg", 0x08000000) == [
        "openocd", "-f", "interface/stlink.cfg", "-f", "target/stm32f4x.cfg",
        "-c", f"program {{{elf}}} verify reset exit"]
    assert ocd.openocd_argv(binary, "i.cfg", "t.cfg", 0x08000000)[-1].endswith("verify reset exit 0x8000000")
    with pytest.raises(InputError, match="raw binary"):
        ocd.openocd_argv(binary, "i.cfg", "t.cfg", None)


@pytest.mark.parametrize("name", ["fw} ; shutdown ; {x.elf", "fw[exec touch pwned].elf", "fw$x.elf", 'f"w.elf',
                                  "fw\\.elf", "fw\n.elf"])
def test_openocd_refuses_image_names_tcl_would_interpret(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match="OpenOCD's Tcl would interpret"):
        ocd.openocd_argv(tmp_path / name, "i.cfg", "t.cfg", 0x08000000)


def test_openocd_program_word_stays_one_word(tmp_path: Path) -> None:
    """The real OpenOCD parses the command: a name with spaces (and Tcl words) stays one path."""
    image = tmp_path / "my fw v2+1 exit.elf"
    image.write_bytes(b"x")
    program = ocd.openocd_argv(image, "i.cfg", "t.cfg", None)[-1].replace("program", "puts", 1).split(" verify")[0]
    proc = subprocess.run(["openocd", "-c", program, "-c", "shutdown"], capture_output=True, text=True, timeout=30)
    assert str(image) in proc.stderr + proc.stdout


@pytest.mark.cross_compiler
def test_openocd_without_probe_is_a_clean_error(tmp_path: Path, elves) -> None:
    fw = tmp_path / "fw"
    (fw / "build").mkdir(parents=True)
    (fw / "build" / "app.elf").write_bytes(elves["arm"].read_bytes())
    proc = run_cli("flash", fw, "--board", "nucleo-f446re", "--allow-unsigned", timeout=120)
    assert_clean_error(proc, "OpenOCD: no debug probe found", "plug in")
    assert "openocd -f interface/stlink.cfg" not in proc.stdout  # nothing claims success
    assert proc.returncode == 4


# --- pyOCD ---------------------------------------------------------------------------------

def test_pyocd_command_line(tmp_path: Path) -> None:
    argv = ocd.pyocd_argv(tmp_path / "fw.bin", "nrf52840", 0x0, probe="ABC123", pyocd=["pyocd"])
    assert argv == ["pyocd", "load", "--no-wait", "-t", "nrf52840", "-u", "ABC123", "--base-address", "0x0",
                    str(tmp_path / "fw.bin")]
    assert ocd.pyocd_argv(tmp_path / "fw.hex", "nrf52840", None, pyocd=["pyocd"])[-1].endswith("fw.hex")
    assert ocd.pyocd_command()[:2] == [sys.executable, "-m"]  # the venv's pyocd module


@pytest.mark.cross_compiler
def test_pyocd_without_probe_is_a_clean_error(tmp_path: Path, elves) -> None:
    proc = run_cli("flash", elves["arm"], "--board", "nrf52840-dk", "--allow-unsigned", timeout=120)
    assert_clean_error(proc, "pyOCD: no debug probe found")


def test_missing_tool_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="not installed"):
        run_tool(["openocd-not-installed-here", "-v"], 5, "openocd")


def test_hanging_tool_is_killed(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="did not finish within 1 s"):
        run_tool(["sleep", "30"], 1, "coreutils")


@pytest.mark.cross_compiler
def test_board_without_probe_settings_is_refused(tmp_path: Path, elves) -> None:
    with pytest.raises(InputError, match="no OpenOCD interface"):
        ocd.flash_openocd(elves["arm"], {"method": "openocd"}, None)
    with pytest.raises(InputError, match="no pyOCD target"):
        ocd.flash_pyocd(elves["arm"], {"method": "pyocd"}, None)


# --- QEMU boards -----------------------------------------------------------------------------

@pytest.mark.cross_compiler
def test_qemu_board_prints_emulator_command(elves) -> None:
    proc = run_cli("flash", elves["arm"], "--board", "qemu-mps2-an386", "--allow-unsigned", "--tcp-port", "6001")
    assert proc.returncode == 0, proc.stderr
    assert "qemu-system-arm -M mps2-an386" in proc.stdout
    assert f"-kernel {elves['arm']}" in proc.stdout
    assert "tcp:127.0.0.1:6001,server=on,wait=on,nodelay=on" in proc.stdout
    hint = next(line for line in proc.stdout.splitlines() if "tinyml monitor" in line)
    command = hint.split("tinyml ", 1)[1].split()
    assert command == ["monitor", "--port", "socket://127.0.0.1:6001"]
    usable = run_cli(*command, "--timeout", "1")  # nothing serves 6001: a device error, not a usage error
    assert usable.returncode not in (0, 2) and "Missing option" not in usable.stderr, usable.stderr


@pytest.mark.cross_compiler
def test_qemu_board_refuses_elf_for_another_cpu(elves) -> None:
    proc = run_cli("flash", elves["arm"], "--board", "qemu-riscv32", "--allow-unsigned")
    assert_clean_error(proc, "built for ARM", "qemu-riscv32 emulates RISC-V")
    assert qemu.emulator_command(elves["riscv"], load_board("qemu-riscv32"))[0] == "qemu-system-riscv32"


def test_qemu_board_refuses_non_elf(tmp_path: Path) -> None:
    fake = tmp_path / "fw.elf"
    fake.write_bytes(b"MZ not an elf at all, long enough")
    assert_clean_error(run_cli("flash", fake, "--board", "qemu-mps2-an386", "--allow-unsigned"), "not an ELF")


# --- finding images and ESP-IDF flasher_args -------------------------------------------------

def test_find_image_prefers_build_and_refuses_ambiguity(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "a.elf").write_bytes(b"x")
    (tmp_path / "build" / "a.bin").write_bytes(b"x")
    assert find_image(tmp_path, (".elf", ".bin")) == tmp_path / "build" / "a.elf"
    (tmp_path / "build" / "b.elf").write_bytes(b"x")
    with pytest.raises(InputError, match="several .elf files"):
        find_image(tmp_path, (".elf",))
    with pytest.raises(InputError, match="no firmware image"):
        find_image(tmp_path, (".uf2",))
    with pytest.raises(InputError, match="is not a .uf2"):
        find_image(tmp_path / "build" / "a.elf", (".uf2",))


def write_args(build: Path, files: dict[str, str], **extra) -> Path:
    build.mkdir(parents=True, exist_ok=True)
    for name in files.values():
        (build / name).parent.mkdir(parents=True, exist_ok=True)
        if not (build / name).exists():
            (build / name).write_bytes(b"\x01" * 5000)
    path = build / "flasher_args.json"
    path.write_text(json.dumps({"flash_files": files, **extra}))
    return path


def test_flasher_args_are_read_in_offset_order(tmp_path: Path) -> None:
    path = write_args(tmp_path, {"0x10000": "app.bin", "0x1000": "bootloader/bootloader.bin"},
                      flash_settings={"flash_mode": "dio", "flash_size": "2MB", "flash_freq": "40m"},
                      extra_esptool_args={"chip": "esp32"})
    image = esp.read_flasher_args(path)
    assert [(r.offset, r.path.name) for r in image.regions] == [(0x1000, "bootloader.bin"), (0x10000, "app.bin")]
    assert (image.chip, image.flash_size, image.flash_mode) == ("esp32", "2MB", "dio")


@pytest.mark.parametrize("files, message", [
    ({"0x1000": "a.bin", "0x2000": "b.bin"}, "overlaps"),   # 5000 bytes at 0x1000 run past 0x2000
    ({"0x1800": "a.bin"}, "not 4 KiB aligned"),
    ({"ten": "a.bin"}, "is not a number"),
    ({}, "flash_files is empty"),
])
def test_bad_flasher_args(tmp_path: Path, files: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        esp.read_flasher_args(write_args(tmp_path, files))


def test_flasher_args_with_missing_file_or_garbage(tmp_path: Path) -> None:
    path = write_args(tmp_path, {"0x1000": "a.bin"})
    (tmp_path / "a.bin").unlink()
    with pytest.raises(InputError, match="not found"):
        esp.read_flasher_args(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not a readable JSON"):
        esp.read_flasher_args(path)


def test_esp_image_too_big_for_board(tmp_path: Path) -> None:
    big = tmp_path / "merged.bin"
    big.write_bytes(b"\xff" * 4096)
    proc = run_cli("flash", big, "--board", "esp32-devkitc", "--address", "0x400000", "--allow-unsigned")
    assert_clean_error(proc, "beyond esp32-devkitc's 4096 KiB flash")


def test_esp_bad_options_are_clean_errors(tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"\xe9" * 100)
    assert_clean_error(run_cli("flash", tmp_path, "--board", "esp32-devkitc", "--allow-unsigned"),
                       "no ESP-IDF build")
    assert_clean_error(run_cli("flash", tmp_path / "m.bin", "--board", "esp32-devkitc", "--address", "zz",
                               "--allow-unsigned"), "--address")
    assert_clean_error(run_cli("flash", tmp_path / "m.bin", "--board", "esp32-devkitc", "--before", "jump",
                               "--port", "socket://127.0.0.1:9", "--allow-unsigned"), "unknown --before mode")
    assert_clean_error(run_cli("flash", tmp_path / "m.bin", "--board", "no-such-board"), "unknown board")


@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_qemu_run_starts_the_emulator_and_passes_its_exit_code(tmp_path: Path) -> None:
    """`--run` starts QEMU with its serial on TCP; once a client connects the firmware runs and exits 3."""
    src = tmp_path / "main.c"
    src.write_text("int main(void) { return 3; }\n")
    elf = tmp_path / "exit3.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "--specs=picolibc.specs", "--oslib=semihost",
                    "--crt0=semihost", "-Wl,--defsym=__flash=0x0", "-Wl,--defsym=__flash_size=4M",
                    "-Wl,--defsym=__ram=0x20000000", "-Wl,--defsym=__ram_size=4M", str(src), "-o", str(elf)],
                   check=True)
    port = free_tcp_port()
    proc = subprocess.Popen([sys.executable, "-m", "tinyml", "flash", str(elf), "--board", "qemu-mps2-an386",
                             "--run", "--allow-unsigned", "--tcp-port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:  # QEMU waits (server=on,wait=on) for the serial client before running
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
                time.sleep(0.05)
        with client:
            out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert "qemu-system-arm" in out


@pytest.mark.cross_compiler
def test_project_built_for_another_board_is_refused(tmp_path: Path, elves) -> None:
    project = tmp_path / "fw"
    (project / "build").mkdir(parents=True)
    (project / "build" / "firmware.elf").write_bytes(elves["arm"].read_bytes())
    (project / "tinyml.json").write_text(json.dumps({"board": "qemu-mps2-an386", "template": "baremetal-cortex-m"}))
    for target in (project, project / "build" / "firmware.elf"):
        proc = run_cli("flash", target, "--board", "nucleo-f446re", "--allow-unsigned")
        assert_clean_error(proc, "built for board qemu-mps2-an386, not nucleo-f446re", "--board qemu-mps2-an386")
    assert run_cli("flash", project, "--board", "qemu-mps2-an386", "--allow-unsigned").returncode == 0


@pytest.mark.parametrize("option, value", [("--baud", "-5"), ("--tcp-port", "70000"), ("--wait", "-1"),
                                           ("--connect-attempts", "0")])
def test_out_of_range_options_are_usage_errors(tmp_path: Path, option: str, value: str) -> None:
    proc = run_cli("flash", tmp_path, "--board", "esp32-devkitc", option, value)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"Invalid value for '{option}'" in proc.stderr


def test_flasher_args_with_non_string_file_is_refused(tmp_path: Path) -> None:
    path = write_args(tmp_path, {"0x1000": "a.bin"})
    path.write_text(json.dumps({"flash_files": {"0x1000": 5}}))
    with pytest.raises(InputError, match="must map offsets to file names"):
        esp.read_flasher_args(path)


@pytest.mark.parametrize("table, message", [('uf2_family = "pico"', "uf2_family must be a number")])
def test_bad_board_flash_values_are_clean_errors(tmp_path: Path, table: str, message: str) -> None:
    source = (ROOT / "boards" / "rpi-pico.toml").read_text()
    board = tmp_path / "my-pico.toml"
    board.write_text(source.replace('name = "rpi-pico"', 'name = "my-pico"').replace("uf2_family = 0xe48bff56", table))
    (tmp_path / "fw.bin").write_bytes(b"\x01" * 300)
    assert_clean_error(run_cli("flash", tmp_path / "fw.bin", "--board", board, "--drive", tmp_path,
                               "--allow-unsigned", "--wait", "0"), message)


def test_esp_board_with_bad_baud_is_a_clean_error(tmp_path: Path) -> None:
    source = (ROOT / "boards" / "esp32-devkitc.toml").read_text()
    board = tmp_path / "my-esp.toml"
    board.write_text(source.replace('name = "esp32-devkitc"', 'name = "my-esp"').replace("baud = 460800", 'baud = "fast"'))
    (tmp_path / "m.bin").write_bytes(b"\xe9" * 100)
    assert_clean_error(run_cli("flash", tmp_path / "m.bin", "--board", board, "--port", "socket://127.0.0.1:9",
                               "--allow-unsigned"), "flash.baud must be a baud rate")
