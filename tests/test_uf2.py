"""UF2 conversion against the format rules, and copying onto a (fake) mounted UF2 drive."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.errors import DeviceError, InputError
from tinyml.flash import uf2

RP2040_FAMILY = 0xE48BFF56
BASE = 0x10000000


def blocks_of(data: bytes) -> list[tuple]:
    """Unpack raw 512-byte blocks straight from the spec's layout (not through uf2.parse_uf2)."""
    assert len(data) % 512 == 0
    out = []
    for i in range(0, len(data), 512):
        block = data[i:i + 512]
        head = struct.unpack("<8I", block[:32])
        (end,) = struct.unpack("<I", block[508:])
        out.append((*head, block[32:508], end))
    return out


@pytest.mark.parametrize("size", [1, 255, 256, 257, 5000])
def test_bin_to_uf2_follows_the_format(size: int) -> None:
    data = os.urandom(size)
    blocks = blocks_of(uf2.bin_to_uf2(data, BASE, RP2040_FAMILY))
    assert len(blocks) == -(-size // 256)
    payload = b""
    for number, (m0, m1, flags, addr, psize, blockno, total, family, body, end) in enumerate(blocks):
        assert (m0, m1, end) == (0x0A324655, 0x9E5D5157, 0x0AB16F30)
        assert flags == 0x2000 and family == RP2040_FAMILY
        assert psize == 256 and addr == BASE + 256 * number
        assert blockno == number and total == len(blocks)
        assert body[256:] == b"\x00" * (476 - 256)
        payload += body[:256]
    assert payload[:size] == data and payload[size:] == b"\x00" * (len(payload) - size)


def test_no_family_clears_the_flag() -> None:
    (block,) = blocks_of(uf2.bin_to_uf2(b"abc", 0x2000, None))
    assert block[2] == 0 and block[7] == 0


@pytest.mark.parametrize("data, base, message", [(b"", BASE, "empty"), (b"x", BASE + 4, "not 256-byte aligned")])
def test_bad_conversion_inputs(data: bytes, base: int, message: str) -> None:
    with pytest.raises(InputError, match=message):
        uf2.bin_to_uf2(data, base, RP2040_FAMILY)


def test_parse_detects_corruption_and_truncation() -> None:
    good = uf2.bin_to_uf2(os.urandom(1000), BASE, RP2040_FAMILY)
    assert [b.number for b in uf2.parse_uf2(good)] == [0, 1, 2, 3]
    with pytest.raises(InputError, match="multiple of 512"):
        uf2.parse_uf2(good[:-1])
    broken = bytearray(good)
    broken[512 + 508] ^= 0xFF  # end magic of block 1
    with pytest.raises(InputError, match="bad magic"):
        uf2.parse_uf2(bytes(broken))
    with pytest.raises(InputError, match="numbered"):
        uf2.parse_uf2(good[:1024])  # two blocks that each claim four


def fake_drive(root: Path, name: str = "RPI-RP2") -> Path:
    drive = root / name
    drive.mkdir(parents=True)
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    return drive


def unmount_when_complete(drive: Path, expected: int, timeout: float = 20) -> threading.Thread:
    """Play the bootloader: once the whole file has arrived, 'reboot' and remove the drive."""

    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = list(drive.glob("*.uf2"))
            if files and files[0].stat().st_size == expected:
                (drive / "received.bin").write_bytes(files[0].read_bytes())
                shutil.move(str(drive / "received.bin"), str(drive.parent / "received.uf2"))
                shutil.rmtree(drive)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_copy_waits_for_the_drive_to_disappear(tmp_path: Path) -> None:
    drive = fake_drive(tmp_path / "media")
    data = uf2.bin_to_uf2(os.urandom(3000), BASE, RP2040_FAMILY)
    thread = unmount_when_complete(drive, len(data))
    seen = []
    uf2.copy_to_drive(data, drive, "fw.uf2", progress=seen.append, disappear_timeout=10)
    thread.join(5)
    assert not drive.exists()
    assert (tmp_path / "media" / "received.uf2").read_bytes() == data
    assert sum(seen) == len(data)


def test_drive_that_stays_means_rejected_image(tmp_path: Path) -> None:
    drive = fake_drive(tmp_path)
    with pytest.raises(DeviceError, match="still there"):
        uf2.copy_to_drive(uf2.bin_to_uf2(b"x" * 10, BASE, 1), drive, disappear_timeout=0.3)


def test_drive_search(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="no UF2 drive"):
        uf2.wait_for_drive([tmp_path], timeout=0.2)
    fake_drive(tmp_path / "user", "RPI-RP2")
    assert uf2.wait_for_drive([tmp_path / "user"], timeout=0.2) == tmp_path / "user" / "RPI-RP2"
    assert uf2.board_id(tmp_path / "user" / "RPI-RP2") == "RPI-RP2"
    fake_drive(tmp_path / "user", "SECOND")
    with pytest.raises(DeviceError, match="several UF2 drives"):
        uf2.wait_for_drive([tmp_path / "user"], timeout=0.2)


def test_drive_appearing_late_is_waited_for(tmp_path: Path) -> None:
    threading.Timer(0.3, fake_drive, args=(tmp_path,)).start()
    assert uf2.wait_for_drive([tmp_path], timeout=5) == tmp_path / "RPI-RP2"


def pico_project(root: Path, image: bytes) -> Path:
    (root / "build").mkdir(parents=True)
    (root / "build" / "tinyml_fw.bin").write_bytes(image)
    return root


def test_tinyml_flash_rpi_pico_converts_and_copies(tmp_path: Path) -> None:
    image = os.urandom(7000)
    project = pico_project(tmp_path / "fw", image)
    drive = fake_drive(tmp_path / "media")
    expected = uf2.bin_to_uf2(image, BASE, RP2040_FAMILY)
    thread = unmount_when_complete(drive, len(expected))
    proc = run_cli("flash", project, "--board", "rpi-pico", "--drive", drive, "--allow-unsigned", "--wait", "10")
    thread.join(5)
    assert proc.returncode == 0, proc.stderr
    assert "via uf2" in proc.stdout and "RPI-RP2" in proc.stderr
    received = (tmp_path / "media" / "received.uf2").read_bytes()
    assert received == expected  # base 0x10000000 from the board file, RP2040 family id


def test_tinyml_flash_refuses_uf2_for_another_family(tmp_path: Path) -> None:
    (tmp_path / "other.uf2").write_bytes(uf2.bin_to_uf2(b"x" * 600, 0x2000, 0xADA52840))
    drive = fake_drive(tmp_path / "media")
    proc = run_cli("flash", tmp_path / "other.uf2", "--board", "rpi-pico", "--drive", drive, "--allow-unsigned")
    assert_clean_error(proc, "family 0xada52840")
    assert list(drive.glob("*.uf2")) == []


def test_tinyml_flash_without_drive_times_out_cleanly(tmp_path: Path) -> None:
    project = pico_project(tmp_path / "fw", b"\x01" * 600)
    (tmp_path / "empty").mkdir()
    proc = run_cli("flash", project, "--board", "rpi-pico", "--drive", tmp_path / "empty", "--allow-unsigned",
                   "--wait", "0.3")
    assert_clean_error(proc, "no UF2 drive", "BOOTSEL")


@pytest.fixture(scope="module")
def pico_elf(tmp_path_factory) -> tuple[Path, bytes]:
    """A linked Cortex-M0+ ELF placed in RP2040 flash, and objcopy's flat binary of it."""
    folder = tmp_path_factory.mktemp("pico")
    (folder / "main.c").write_text("int counter = 7;\nconst char tag[300] = \"tinyml\";\n"
                                   "int main(void) { return counter + tag[0]; }\n")
    elf = folder / "fw.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "--specs=picolibc.specs",
                    "--oslib=semihost", "--crt0=semihost", f"-Wl,--defsym=__flash={BASE:#x}",
                    "-Wl,--defsym=__flash_size=2M", "-Wl,--defsym=__ram=0x20000000",
                    "-Wl,--defsym=__ram_size=256K", str(folder / "main.c"), "-o", str(elf)], check=True)
    flat = folder / "fw.bin"
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(flat)], check=True)
    return elf, flat.read_bytes()


@pytest.mark.cross_compiler
def test_elf_to_uf2_places_load_segments_like_objcopy(pico_elf) -> None:
    elf, flat = pico_elf
    blocks = uf2.parse_uf2(uf2.elf_to_uf2(elf.read_bytes(), RP2040_FAMILY))
    assert blocks[0].address == BASE and all(b.family_id == RP2040_FAMILY for b in blocks)
    assert [b.address for b in blocks] == sorted({b.address for b in blocks})
    padded = flat.ljust(-(-len(flat) // 256) * 256, b"\x00")
    for block in blocks:  # every page holds what objcopy put at that address (RAM data at its load address)
        offset = block.address - BASE
        assert block.payload == padded[offset:offset + 256]
    assert max(b.address for b in blocks) + 256 >= BASE + len(flat)


@pytest.mark.cross_compiler
def test_elf_to_uf2_refuses_non_elf_and_unlinked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a 32-bit little-endian ELF"):
        uf2.elf_to_uf2(b"MZ" * 40, RP2040_FAMILY)
    (tmp_path / "a.c").write_text("int f(void) { return 1; }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mthumb", "-c", str(tmp_path / "a.c"), "-o", str(tmp_path / "a.o")],
                   check=True)
    with pytest.raises(InputError, match="no loadable segments"):
        uf2.elf_to_uf2((tmp_path / "a.o").read_bytes(), RP2040_FAMILY)


@pytest.mark.cross_compiler
def test_tinyml_flash_prefers_the_elf_for_uf2(tmp_path: Path, pico_elf) -> None:
    elf, flat = pico_elf
    project = tmp_path / "fw"
    (project / "build").mkdir(parents=True)
    shutil.copy(elf, project / "build" / "fw.elf")
    (project / "build" / "fw.bin").write_bytes(flat)
    drive = fake_drive(tmp_path / "media")
    expected = uf2.elf_to_uf2(elf.read_bytes(), RP2040_FAMILY)
    thread = unmount_when_complete(drive, len(expected))
    proc = run_cli("flash", project, "--board", "rpi-pico", "--drive", drive, "--allow-unsigned", "--wait", "10")
    thread.join(5)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "media" / "received.uf2").read_bytes() == expected
