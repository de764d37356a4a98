"""esptool's flasher stub on the emulated ESP32 loader: upload, stub answers, and the default esptool path."""

from __future__ import annotations

import hashlib
import os
import struct
import time
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tests.test_esp_rom import (
    FLASH_SIZE,
    SHORT_TIMEOUTS,
    esptool,
    signed_idf_build,  # noqa: F401 (a fixture)
    tinyml_flash,
)
from tinyml.device.esp_rom import CHIPS, OPS, EspRomServer, Faults, RomLoader, data_checksum

IRAM, DRAM = CHIPS["esp32"].iram[0] + 0x28000, CHIPS["esp32"].dram[0] + 0x30000


def request(loader: RomLoader, name: str, data: bytes = b"", checksum: int = 0) -> list[bytes]:
    return loader.handle(struct.pack("<BBHI", 0, OPS[name], len(data), checksum) + data)


def upload(loader: RomLoader, address: int, code: bytes, block: int = 0x1800) -> list[bytes]:
    """MEM_BEGIN + MEM_DATA blocks, as esptool uploads a segment; returns every answer."""
    blocks = -(-len(code) // block)
    answers = request(loader, "MEM_BEGIN", struct.pack("<IIII", len(code), blocks, block, address))
    for seq in range(blocks):
        part = code[seq * block:(seq + 1) * block]
        answers += request(loader, "MEM_DATA", struct.pack("<IIII", len(part), seq, 0, 0) + part, data_checksum(part))
    return answers


def start_stub(loader: RomLoader) -> list[bytes]:
    code = os.urandom(0x2000)
    upload(loader, IRAM, code)
    upload(loader, DRAM, os.urandom(300))
    return request(loader, "MEM_END", struct.pack("<II", 0, IRAM + 0x1000))


# --- the state machine on its own ------------------------------------------------------------

def test_uploaded_stub_greets_and_answers_as_the_stub() -> None:
    loader = RomLoader(bytearray(os.urandom(0x10000)))
    answers = start_stub(loader)
    assert answers[1] == b"OHAI" and len(answers) == 2
    assert answers[0][8:] == b"\x00\x00\x00\x00"  # MEM_END is still answered by the ROM: 4 status bytes
    assert loader.stub_running and len(loader.ram) == 2
    syncs = request(loader, "SYNC", b"\x07\x07\x12\x20" + b"\x55" * 32)
    assert len(syncs) == 8 and all(struct.unpack_from("<I", s, 4)[0] == 0 for s in syncs)  # 0: "stub running"
    md5 = request(loader, "SPI_FLASH_MD5", struct.pack("<IIII", 0x100, 0x1000, 0, 0))[0]
    assert md5[8:] == hashlib.md5(loader.flash[0x100:0x1100]).digest() + b"\x00\x00"  # raw digest, 2 status bytes


@pytest.mark.parametrize("segment, entry", [
    (0x3FF00000, None),       # not RAM: MEM_BEGIN is refused
    (IRAM, DRAM + 4),         # entry point outside the uploaded code
    (DRAM, DRAM + 4),         # code in data RAM cannot run
])
def test_rom_refuses_uploads_it_cannot_run(segment: int, entry: int | None) -> None:
    loader = RomLoader(bytearray(0x10000))
    answers = upload(loader, segment, os.urandom(100))
    if entry is not None:
        answers = request(loader, "MEM_END", struct.pack("<II", 0, entry))
    assert answers[0][8:] == b"\x01\x0f\x00\x00"  # "invalid RAM binary address"
    assert not loader.stub_running and b"OHAI" not in answers


def test_overwritten_code_no_longer_runs() -> None:
    loader = RomLoader(bytearray(0x10000))
    upload(loader, IRAM, os.urandom(0x1000))
    upload(loader, IRAM + 0x800, os.urandom(0x1000))  # overlaps the first segment's second half
    assert list(loader.ram) == [IRAM + 0x800]
    assert request(loader, "MEM_END", struct.pack("<II", 0, IRAM + 4))[0][8:] == b"\x01\x0f\x00\x00"


def test_settings_take_the_rom_or_the_stub_argument_size() -> None:
    """esptool's SPI_ATTACH carries an extra word for the ROM only; a wrong size is refused."""
    loader = RomLoader(bytearray(0x10000))
    assert request(loader, "SPI_ATTACH", bytes(8))[0][8:] == b"\x00\x00\x00\x00"
    assert request(loader, "SPI_ATTACH", bytes(4))[0][8:] == b"\x01\x05\x00\x00"
    start_stub(loader)
    assert request(loader, "SPI_ATTACH", bytes(4))[0][8:] == b"\x00\x00"
    assert request(loader, "SPI_ATTACH", bytes(8))[0][8:] == b"\xc0\x00"
    assert request(loader, "CHANGE_BAUDRATE", struct.pack("<II", 921600, 115200))[0][8:] == b"\x00\x00"


def test_ram_block_checksum_and_size_are_checked() -> None:
    loader = RomLoader(bytearray(0x10000))
    request(loader, "MEM_BEGIN", struct.pack("<IIII", 100, 1, 0x1800, IRAM))
    block = os.urandom(100)
    bad = request(loader, "MEM_DATA", struct.pack("<IIII", 100, 0, 0, 0) + block, data_checksum(block) ^ 1)[0]
    assert bad[8:] == b"\x01\x07\x00\x00"
    early_end = request(loader, "MEM_END", struct.pack("<II", 0, IRAM))[0]
    assert early_end[8:] == b"\x01\x0e\x00\x00"  # "invalid RAM binary size": the segment is incomplete


def test_stub_only_commands_are_unknown_to_the_rom_and_errors_use_stub_codes() -> None:
    loader = RomLoader(bytearray(b"\xff" * 0x10000))
    assert request(loader, "ERASE_REGION", struct.pack("<II", 0, 0x1000))[0][8:] == b"\x01\x05\x00\x00"
    start_stub(loader)
    assert request(loader, "ERASE_REGION", struct.pack("<II", 0x800, 0x1000))[0][8:] == b"\xc0\x00"  # unaligned
    assert request(loader, "FLASH_DEFL_DATA", struct.pack("<IIII", 1, 0, 0, 0) + b"x")[0][8:] == b"\xc6\x00"


def test_read_flash_sends_one_packet_per_acknowledgement_then_the_digest() -> None:
    loader = RomLoader(bytearray(os.urandom(0x10000)))
    start_stub(loader)
    answers = request(loader, "READ_FLASH", struct.pack("<IIII", 0x1234, 10000, 4096, 64))
    assert answers[0][8:] == b"\x00\x00" and answers[1] == loader.flash[0x1234:0x1234 + 4096]
    assert loader.handle(b"\x00" * 8) != [] and loader._read is None  # not an ack: the read ends early
    answers = request(loader, "READ_FLASH", struct.pack("<IIII", 0x1234, 10000, 4096, 64))
    received = answers[1]
    while len(received) < 10000:
        (packet,) = loader.handle(struct.pack("<I", len(received)))
        received += packet
    (digest,) = loader.handle(struct.pack("<I", len(received)))
    assert received == loader.flash[0x1234:0x1234 + 10000] and digest == hashlib.md5(received).digest()


def test_leaving_the_stub_returns_to_the_rom() -> None:
    loader = RomLoader(bytearray(b"\xff" * 0x10000))
    start_stub(loader)
    request(loader, "FLASH_BEGIN", struct.pack("<IIIII", 0, 0, 0x4000, 0, 0))
    assert request(loader, "FLASH_END", struct.pack("<I", 0))[0][8:] == b"\x00\x00"  # answered by the stub
    assert not loader.stub_running
    start_stub(loader)
    assert request(loader, "RUN_USER_CODE") == [] and not loader.stub_running


# --- real esptool, default (stub) path --------------------------------------------------------

def preloaded_flash(tmp_path: Path) -> tuple[Path, bytes]:
    save = tmp_path / "flash.bin"
    content = os.urandom(FLASH_SIZE)
    save.write_bytes(content)
    return save, content


@pytest.mark.timeout(120)
def test_esptool_stub_read_flash_round_trip(tmp_path: Path) -> None:
    save, content = preloaded_flash(tmp_path)
    out = tmp_path / "read.bin"
    with EspRomServer(save=save) as server:
        proc = esptool(server.endpoint, "read-flash", "0x1234", "20000", str(out), stub=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_bytes() == content[0x1234:0x1234 + 20000]


@pytest.mark.timeout(120)
def test_esptool_stub_erase_region_and_erase_flash(tmp_path: Path) -> None:
    save, content = preloaded_flash(tmp_path)
    with EspRomServer(save=save) as server:
        proc = esptool(server.endpoint, "erase-region", "0x3000", "0x2000", stub=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        flash = server.flash_bytes()
        assert flash[0x3000:0x5000] == b"\xff" * 0x2000
        assert flash[:0x3000] == content[:0x3000] and flash[0x5000:] == content[0x5000:]
        proc = esptool(server.endpoint, "erase-flash", stub=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert server.flash_bytes() == b"\xff" * FLASH_SIZE


@pytest.mark.timeout(120)
def test_resident_stub_is_found_by_the_next_session(tmp_path: Path) -> None:
    """--after no-reset-stub leaves the stub running: the next SYNC is answered with 0 and esptool
    reuses it. tinyml uses it even under --no-stub: the stub would refuse the ROM's SPI_ATTACH form."""
    data = os.urandom(7000)
    (tmp_path / "a.bin").write_bytes(data)
    with EspRomServer() as server:
        first = esptool(server.endpoint, "--after", "no-reset-stub", "write-flash", "0x20000", str(tmp_path / "a.bin"),
                        stub=True)
        assert first.returncode == 0 and server.loader.stub_running, first.stdout + first.stderr
        flashed = run_cli("flash", tmp_path / "a.bin", "--board", "esp32-devkitc", "--port", server.endpoint,
                          "--before", "no-reset", "--after", "no-reset-stub", "--no-stub", "--address", "0x30000",
                          "--allow-unsigned", "--verbose", timeout=120)
        assert flashed.returncode == 0, flashed.stderr
        verified = esptool(server.endpoint, "verify-flash", "0x20000", str(tmp_path / "a.bin"),
                           "0x30000", str(tmp_path / "a.bin"), stub=True)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Stub flasher is already running" in flashed.stdout
    assert "Stub flasher is already running" in verified.stdout and "digest matched" in verified.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spec, needle", [
    ("upload-corrupt", "Failed to write to target RAM"),  # checksum error on a RAM block: no resend
    ("upload-stall", "Serial data stream stopped"),       # no answer during the upload
])
def test_stub_upload_faults_end_in_clean_error(tmp_path: Path, spec: str, needle: str) -> None:
    cfg = tmp_path / "esptool.cfg"
    cfg.write_text(SHORT_TIMEOUTS)
    (tmp_path / "a.bin").write_bytes(os.urandom(3000))
    with EspRomServer(faults=Faults.parse(spec)) as server:
        start = time.monotonic()
        proc = esptool(server.endpoint, "write-flash", "0x10000", str(tmp_path / "a.bin"),
                       env={"ESPTOOL_CFGFILE": str(cfg)}, timeout=45, stub=True)
        elapsed = time.monotonic() - start
        assert server.flash_bytes() == b"\xff" * FLASH_SIZE
    assert elapsed < 30
    assert proc.returncode != 0 and needle in proc.stdout + proc.stderr, proc.stdout + proc.stderr


# --- tinyml flash, default (stub) path --------------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("faults, needle", [
    (Faults(upload_corrupt=1), "Checksum error"),
    # esptool alone would wait for the greeting forever; tinyml bounds the wait
    (Faults(no_ohai=True), "Failed to start stub flasher"),
])
def test_tinyml_flash_stub_upload_failure_is_clean(signed_idf_build, faults: Faults,  # noqa: F811
                                                   needle: str) -> None:
    project, _, pub = signed_idf_build
    with EspRomServer(faults=faults) as server:
        start = time.monotonic()
        proc = tinyml_flash(project, server.endpoint, "--pubkey", pub, stub=True)
        assert time.monotonic() - start < 30
        assert server.flash_bytes() == b"\xff" * FLASH_SIZE
    assert_clean_error(proc, "flasher stub", needle, "--no-stub")
    assert proc.returncode == 4


@pytest.mark.timeout(120)
def test_stub_over_a_pty(tmp_path: Path) -> None:
    data = os.urandom(30000)
    (tmp_path / "a.bin").write_bytes(data)
    with EspRomServer(tcp_port=None, pty=True) as server:
        proc = esptool(server.endpoint, "write-flash", "0x40000", str(tmp_path / "a.bin"), stub=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        back = esptool(server.endpoint, "read-flash", "0x40000", "30000", str(tmp_path / "b.bin"), stub=True)
        assert back.returncode == 0, back.stdout + back.stderr
    assert (tmp_path / "b.bin").read_bytes() == data
