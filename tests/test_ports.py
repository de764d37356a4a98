"""Serial port listing, board guesses, `--port auto`, and why a port cannot be used."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from serial.tools.list_ports_common import ListPortInfo

from tests.conftest import assert_clean_error, run_cli
from tinyml.device.endpoints import open_pty
from tinyml.errors import DeviceError
from tinyml.flash import board_usb_ids, ports


def port(device: str, vid: int | None = None, pid: int | None = None, description: str = "n/a") -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.description = vid, pid, description
    return info


PLUGGED = [
    port("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller"),
    port("/dev/ttyACM0", 0x0483, 0x374B, "STM32 STLink"),
    port("/dev/ttyACM1", 0x2E8A, 0x000A, "Pico"),
    port("/dev/ttyACM2", 0x1366, 0x1015, "J-Link"),
    port("/dev/ttyS0"),
]


def test_known_usb_ids_are_named() -> None:
    assert "CP210x" in ports.known_chip(0x10C4, 0xEA60)
    assert "CH340" in ports.known_chip(0x1A86, 0x7523)
    assert "J-Link" in ports.known_chip(0x1366, 0x0105)  # any J-Link product id
    assert "USB-Serial/JTAG" in ports.known_chip(0x303A, 0x1001)
    assert ports.known_chip(0x1234, 0x5678) is None and ports.known_chip(None, None) is None


def test_guesses_name_chip_and_boards() -> None:
    guesses = {g.device: g for g in ports.guess_ports(PLUGGED, board_usb_ids())}
    cp210x = guesses["/dev/ttyUSB0"]
    assert cp210x.vid_pid == "10c4:ea60" and "esp32-devkitc" in cp210x.boards
    assert "nucleo-f446re" in guesses["/dev/ttyACM0"].boards
    assert guesses["/dev/ttyACM1"].boards == ("rpi-pico",)
    assert guesses["/dev/ttyACM2"].boards == ("nrf52840-dk",)
    assert guesses["/dev/ttyS0"].boards == () and "no USB id" in guesses["/dev/ttyS0"].line()


def test_wildcard_product_in_board_file_matches() -> None:
    assert ports.board_matches("1366:0101", ["1366:*"])
    assert not ports.board_matches("1367:0101", ["1366:*"])
    assert not ports.board_matches(None, ["1366:*"])


def test_auto_picks_the_only_candidate() -> None:
    guesses = ports.guess_ports(PLUGGED, board_usb_ids())
    assert ports.pick_port(guesses, "rpi-pico") == "/dev/ttyACM1"


def test_auto_with_two_candidates_lists_them_and_stops() -> None:
    two = [*PLUGGED, port("/dev/ttyUSB1", 0x1A86, 0x7523, "CH340")]
    with pytest.raises(DeviceError, match="2 serial ports could be the esp32-devkitc") as info:
        ports.pick_port(ports.guess_ports(two, board_usb_ids()), "esp32-devkitc")
    assert "/dev/ttyUSB0" in info.value.message and "/dev/ttyUSB1" in info.value.message
    assert "--port" in info.value.hint


def test_auto_with_no_candidate_lists_what_there_is() -> None:
    with pytest.raises(DeviceError, match="no serial port looks like a esp32-s3") as info:
        ports.pick_port(ports.guess_ports(PLUGGED[1:], board_usb_ids()), "esp32-s3-devkitc-1")
    assert "/dev/ttyACM0" in info.value.message
    with pytest.raises(DeviceError, match="no serial ports at all"):
        ports.pick_port([], "rpi-pico")


def test_port_held_by_another_process_names_it(tmp_path: Path) -> None:
    master, slave, device = open_pty()
    holder = subprocess.Popen(["sleep", "30"], stdin=slave)
    os.close(slave)
    try:
        assert (holder.pid, "sleep") in ports.holders(device)
        with pytest.raises(DeviceError, match=rf"in use by sleep \(pid {holder.pid}\)"):
            ports.check_port_usable(device)
    finally:
        holder.kill()
        holder.wait()
        os.close(master)


def test_free_pty_is_usable() -> None:
    master, slave, device = open_pty()
    try:
        ports.check_port_usable(device)  # only this process holds it
    finally:
        os.close(slave)
        os.close(master)


def test_permission_denied_gets_dialout_hint() -> None:
    # a read-only sysctl file refuses O_RDWR even to root, like a tty without dialout membership
    with pytest.raises(DeviceError, match="permission denied") as info:
        ports.check_port_usable("/proc/sys/kernel/osrelease")
    assert "dialout" in info.value.hint


def test_missing_port_and_urls() -> None:
    with pytest.raises(DeviceError, match="does not exist"):
        ports.check_port_usable("/dev/ttyUSB-not-there")
    ports.check_port_usable("socket://127.0.0.1:1")  # URLs are left to pyserial


def test_ports_command_runs_and_auto_without_board_is_clean() -> None:
    proc = run_cli("ports")
    assert proc.returncode == 0, proc.stderr
    auto = run_cli("ports", "--board", "rpi-pico")
    if "2e8a:000a" not in proc.stdout:  # no Pico on this machine: --port auto must stop with a listing
        assert_clean_error(auto, "no serial port looks like a rpi-pico")


def test_flash_to_busy_port_names_the_holder(tmp_path: Path) -> None:
    (tmp_path / "fw.bin").write_bytes(b"\xe9" + bytes(4095))
    master, slave, device = open_pty()
    holder = subprocess.Popen(["sleep", "30"], stdin=slave)
    os.close(slave)  # only the sleeping process holds the port now
    try:
        proc = run_cli("flash", tmp_path / "fw.bin", "--board", "esp32-devkitc", "--port", device,
                       "--allow-unsigned")
        assert_clean_error(proc, "in use by sleep")
    finally:
        holder.kill()
        holder.wait()
        os.close(master)
