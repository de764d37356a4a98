"""The emulated ESP32 ROM loader, driven by the real, unmodified esptool."""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.device.esp_rom import (
    EspRomServer,
    Faults,
    RomLoader,
    SlipDecoder,
    data_checksum,
    load_flash,
    nor_program,
    serve,
    slip_encode,
)
from tinyml.errors import InputError

FLASH_SIZE = 4 * 1024 * 1024


def esptool(port: str, *args: str, env: dict | None = None, timeout: float = 90,
            stub: bool = False, chip: str = "esp32") -> subprocess.CompletedProcess:
    """Unmodified esptool in a child process, as a user would run it (through the ROM unless ``stub``)."""
    argv = [sys.executable, "-m", "esptool", "--chip", chip, "--before", "no-reset", "--after", "no-reset",
            *([] if stub else ["--no-stub"]), "-p", port, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def fake_idf_build(root: Path, seed: int = 1, stub: bool = True) -> dict[int, bytes]:
    """An ESP-IDF-like build folder: three regions and the flasher_args.json that places them."""
    rng = random.Random(seed)
    regions = {
        0x1000: bytes(rng.getrandbits(8) for _ in range(600)) + b"\x00" * 6000,  # partly compressible
        0x8000: b"\xaa\x50" + bytes(rng.getrandbits(8) for _ in range(200)) + b"\xff" * 2870,
        0x10000: b"".join(struct.pack("<I", rng.getrandbits(12)) for _ in range(9000)),
    }
    names = {0x1000: "bootloader/bootloader.bin", 0x8000: "partition_table/partition-table.bin",
             0x10000: "tinyml_app.bin"}
    build = root / "build"
    for offset, name in names.items():
        (build / name).parent.mkdir(parents=True, exist_ok=True)
        (build / name).write_bytes(regions[offset])
    (build / "flasher_args.json").write_text(json.dumps({
        "write_flash_args": ["--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "40m"],
        "flash_settings": {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"},
        "flash_files": {f"{o:#x}": n for o, n in names.items()},
        "extra_esptool_args": {"after": "hard_reset", "before": "default_reset", "stub": stub, "chip": "esp32"},
    }))
    return regions


def assert_flash_holds(flash: bytes, regions: dict[int, bytes]) -> None:
    assert len(flash) == FLASH_SIZE
    for offset, data in regions.items():
        assert flash[offset:offset + len(data)] == data, f"region {offset:#x} differs"
    # nothing outside the written regions (rounded to sectors) was touched
    untouched = flash[0x20000:]
    assert untouched == b"\xff" * len(untouched)


# --- the codec and the state machine on their own ---------------------------------------

def test_slip_round_trip_escapes_end_and_esc() -> None:
    packet = bytes([0x00, 0xC0, 0xDB, 0x01, 0xC0, 0xDB, 0xDC])
    frame = slip_encode(packet)
    assert frame[0] == frame[-1] == 0xC0 and 0xC0 not in frame[1:-1]
    decoder = SlipDecoder()
    # fed one byte at a time, with noise before the frame
    out = [p for b in b"noise" + frame + frame for p in decoder.feed(bytes([b]))]
    assert out == [packet, packet]


def test_slip_bad_escape_drops_only_that_frame() -> None:
    decoder = SlipDecoder()
    good = slip_encode(b"\x00\x08abc")
    assert decoder.feed(b"\xc0\x00\xdb\x01\xc0" + good) == [b"\x00\x08abc"]


def test_overlong_packet_is_dropped_not_buffered() -> None:
    decoder = SlipDecoder()
    assert decoder.feed(b"\xc0" + b"\x01" * 70000 + b"\xc0") == []
    assert decoder.feed(slip_encode(b"\x00\x08ok")) == [b"\x00\x08ok"]


def test_nor_programming_only_clears_bits() -> None:
    assert nor_program(b"\xff\xff", b"\x12\x34") == b"\x12\x34"
    assert nor_program(b"\x0f\xf0", b"\xff\x3c") == b"\x0f\x30"  # unerased: the old zeros stay


def test_rom_rejects_bad_checksum_and_wrong_sequence() -> None:
    loader = RomLoader(bytearray(b"\xff" * 0x10000))
    begin = struct.pack("<IIII", 0x1000, 1, 0x400, 0x2000)
    reply = loader.handle(struct.pack("<BBHI", 0, 0x02, len(begin), 0) + begin)[0]
    assert reply[-4:-2] == b"\x00\x00"
    block = bytes(range(256)) * 4
    payload = struct.pack("<IIII", len(block), 0, 0, 0) + block
    bad = loader.handle(struct.pack("<BBHI", 0, 0x03, len(payload), data_checksum(block) ^ 1) + payload)[0]
    assert bad[-4:-2] == b"\x01\x07"  # checksum error, nothing written
    assert loader.flash[0x2000:0x2400] == b"\xff" * 0x400
    skipped = struct.pack("<IIII", len(block), 5, 0, 0) + block
    out_of_order = loader.handle(struct.pack("<BBHI", 0, 0x03, len(skipped), data_checksum(block)) + skipped)[0]
    assert out_of_order[-4:-2] == b"\x01\x05"
    ok = loader.handle(struct.pack("<BBHI", 0, 0x03, len(payload), data_checksum(block)) + payload)[0]
    assert ok[-4:-2] == b"\x00\x00" and loader.flash[0x2000:0x2400] == block


def test_md5_answer_is_hex_of_flash_region() -> None:
    loader = RomLoader(bytearray(os.urandom(0x4000)))
    request = struct.pack("<IIII", 0x100, 0x1000, 0, 0)
    reply = loader.handle(struct.pack("<BBHI", 0, 0x13, len(request), 0) + request)[0]
    assert reply[8:40].decode() == hashlib.md5(loader.flash[0x100:0x1100]).hexdigest()


@pytest.mark.parametrize("spec, message", [("explode", "unknown ESP ROM fault"), ("drop:x", "bad count")])
def test_bad_fault_spec_is_an_input_error(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Faults.parse(spec)


def test_fault_spec_counts_and_flags() -> None:
    assert Faults.parse("drop:2, corrupt,no-sync") == Faults(drop=2, corrupt=1, no_sync=True)


@pytest.mark.parametrize("size", [0, 1000, 3 * 1024 * 1024])
def test_bad_flash_size_is_refused(size: int) -> None:
    with pytest.raises(InputError, match="power of two"):
        load_flash(None, size)


def test_saved_flash_of_other_size_is_refused(tmp_path: Path) -> None:
    save = tmp_path / "flash.bin"
    save.write_bytes(b"\xff" * 4096)
    with pytest.raises(InputError, match="not the flash size"):
        load_flash(save, FLASH_SIZE)


def test_bad_save_path_and_port_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot keep the flash image"):
        EspRomServer(save=tmp_path)
    with pytest.raises(InputError, match="cannot keep the flash image"):
        EspRomServer(save=tmp_path / "missing" / "flash.bin")
    with pytest.raises(InputError, match="out of range"):
        EspRomServer(tcp_port=70000)


def test_busy_tcp_port_is_a_clean_error() -> None:
    with EspRomServer() as first, pytest.raises(InputError, match="cannot listen"):
        serve(first.port, pty=False, announce=lambda line: None)


# --- real esptool against the emulated loader ------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("stub", [False, True])
@pytest.mark.parametrize("compress", ["--compress", "--no-compress"])
def test_esptool_writes_and_verifies_multi_region_image(tmp_path: Path, compress: str, stub: bool) -> None:
    """Byte for byte, through the ROM (--no-stub) or esptool's default: its flasher stub."""
    regions = fake_idf_build(tmp_path)
    build = tmp_path / "build"
    save = tmp_path / "flash.bin"
    with EspRomServer(save=save) as server:
        proc = esptool(server.endpoint, "write-flash", compress, "--flash-size", "4MB",
                       "0x1000", str(build / "bootloader/bootloader.bin"),
                       "0x8000", str(build / "partition_table/partition-table.bin"),
                       "0x10000", str(build / "tinyml_app.bin"), stub=stub)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not server.loader.stub_running  # --after no-reset leaves the stub for the ROM loader
    out = proc.stdout
    assert "Connected to ESP32" in out and "MAC:" in out
    assert ("Stub flasher running." in out) == stub
    assert out.count("Hash of data verified.") == 3
    assert ("compressed)" in out) == (compress == "--compress")
    assert_flash_holds(save.read_bytes(), regions)


@pytest.mark.timeout(120)
def test_esptool_and_tinyml_flash_over_a_pty(tmp_path: Path) -> None:
    data, other = os.urandom(5000), os.urandom(3000)
    (tmp_path / "app.bin").write_bytes(data)
    (tmp_path / "merged.bin").write_bytes(other)
    with EspRomServer(tcp_port=None, pty=True) as server:
        assert server.endpoint.startswith("/dev/")
        proc = esptool(server.endpoint, "write-flash", "0x20000", str(tmp_path / "app.bin"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # a real device node: tinyml checks nobody else holds it, then flashes a single image
        flashed = run_cli("flash", tmp_path / "merged.bin", "--board", "esp32-devkitc", "--port", server.endpoint,
                          "--address", "0x30000", "--before", "no-reset", "--no-stub", "--allow-unsigned")
        assert flashed.returncode == 0, flashed.stderr
        flash = server.flash_bytes()
    assert flash[0x20000:0x20000 + len(data)] == data
    assert flash[0x30000:0x30000 + len(other)] == other


@pytest.mark.timeout(120)
def test_saved_flash_is_loaded_again(tmp_path: Path) -> None:
    save = tmp_path / "flash.bin"
    data = os.urandom(4096)
    (tmp_path / "a.bin").write_bytes(data)
    with EspRomServer(save=save) as server:
        assert esptool(server.endpoint, "write-flash", "0x3000", str(tmp_path / "a.bin")).returncode == 0
    with EspRomServer(save=save) as server:  # a second session starts from the saved image
        proc = esptool(server.endpoint, "verify-flash", "0x3000", str(tmp_path / "a.bin"))
        assert proc.returncode == 0 and "verification successful" in proc.stdout.lower(), proc.stdout


SHORT_TIMEOUTS = "[esptool]\ntimeout = 0.5\nconnect_attempts = 2\n"


FAULT_CASES = [
    ("drop:2", True, ""),                       # lost bytes: loader says "invalid message", esptool resends
    ("corrupt:2", True, ""),                    # flipped byte: checksum error, esptool resends
    ("bad-checksum", False, "checksum"),        # every block refused: esptool gives up
    ("stall", False, ""),                       # no answer any more: esptool times out
    ("no-sync", False, "Failed to connect"),    # never in download mode
    ("corrupt-flash", False, "MD5"),            # written wrong: the MD5 verify step catches it
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stub, spec, succeeds, needle",
                         [(False, *case) for case in FAULT_CASES]
                         + [(True, *case) for case in FAULT_CASES if case[0] != "no-sync"])  # sync precedes the stub
def test_each_fault_ends_in_retry_or_clean_error(tmp_path: Path, stub: bool, spec: str, succeeds: bool,
                                                 needle: str) -> None:
    """The same faults strike flash data whether the ROM or the flasher stub receives it."""
    cfg = tmp_path / "esptool.cfg"
    cfg.write_text(SHORT_TIMEOUTS)
    data = os.urandom(6000)
    (tmp_path / "app.bin").write_bytes(data)
    with EspRomServer(faults=Faults.parse(spec)) as server:
        start = time.monotonic()
        proc = esptool(server.endpoint, "write-flash", "--no-compress", "0x10000", str(tmp_path / "app.bin"),
                       env={"ESPTOOL_CFGFILE": str(cfg)}, timeout=45, stub=stub)
        elapsed = time.monotonic() - start
        written = server.flash_bytes()[0x10000:0x10000 + len(data)] == data
    assert elapsed < 45
    assert (proc.returncode == 0) == succeeds, proc.stdout + proc.stderr
    assert written == succeeds
    assert ("Stub flasher running." in proc.stdout) == (stub and spec != "no-sync")
    assert needle.lower() in (proc.stdout + proc.stderr).lower()


# --- tinyml flash against the emulated loader ------------------------------------------------

@pytest.fixture()
def signed_idf_build(tmp_path: Path) -> tuple[Path, dict[int, bytes], Path]:
    project = tmp_path / "fw"
    regions = fake_idf_build(project)
    key = tmp_path / "release.key"
    assert run_cli("keygen", "--out", key).returncode == 0
    assert run_cli("sign", project, "--key", key, "--board", "esp32-devkitc").returncode == 0
    return project, regions, key.with_name("release.key.pub")


def tinyml_flash(project: Path, port: str, *extra: str, stub: bool = False) -> subprocess.CompletedProcess:
    return run_cli("flash", project, "--board", "esp32-devkitc", "--port", port, "--before", "no-reset",
                   "--after", "no-reset", *([] if stub else ["--no-stub"]), "--connect-attempts", "2", *extra,
                   timeout=120)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("compress, stub", [([], False), (["--no-compress"], False), ([], True)])
def test_tinyml_flash_writes_esp_idf_build(signed_idf_build, tmp_path: Path, compress: list[str],
                                           stub: bool) -> None:
    project, regions, pub = signed_idf_build
    save = tmp_path / "flash.bin"
    with EspRomServer(save=save) as server:
        proc = tinyml_flash(project, server.endpoint, "--pubkey", pub, "--verbose", *compress, stub=stub)
        assert proc.returncode == 0, proc.stderr
    assert "MD5-verified" in proc.stdout
    assert ("Stub flasher running." in proc.stdout) == stub
    assert proc.stdout.count("Hash of data verified.") == 3  # esptool's own log, one per region
    assert "tinyml_app.bin @ 0x00010000" in proc.stderr  # the progress bar names the region
    assert_flash_holds(save.read_bytes(), regions)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("faults, code, needles", [
    (Faults(no_sync=True), 4, ("cannot connect", "hold BOOT")),           # the manual BOOT procedure
    (Faults(corrupt_flash=True), 5, ("verification failed", "MD5")),      # esptool's MD5 check
])
def test_tinyml_flash_device_failures_are_clean(signed_idf_build, faults: Faults, code: int,
                                                needles: tuple[str, ...]) -> None:
    project, _, pub = signed_idf_build
    with EspRomServer(faults=faults) as server:
        proc = tinyml_flash(project, server.endpoint, "--pubkey", pub)
    assert_clean_error(proc, *needles)
    assert proc.returncode == code


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stub", [False, True])
@pytest.mark.parametrize("chip, board", [("esp32s3", "esp32-s3-devkitc-1"), ("esp32c3", "esp32-c3-devkitm-1")])
def test_newer_chips_identified_by_security_info(tmp_path: Path, chip: str, board: str, stub: bool) -> None:
    """ESP32-S3/C3 ROMs answer GET_SECURITY_INFO with their chip id; esptool picks the right class
    (and the right flasher stub)."""
    merged = tmp_path / "merged.bin"
    merged.write_bytes(os.urandom(40000))
    with EspRomServer(chip=chip) as server:
        proc = run_cli("flash", merged, "--board", board, "--port", server.endpoint, "--before", "no-reset",
                       "--after", "no-reset", *([] if stub else ["--no-stub"]), "--allow-unsigned", "--verbose",
                       timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert server.flash_bytes()[:40000] == merged.read_bytes()  # a merged image goes to 0x0
    assert ("Stub flasher running." in proc.stdout) == stub


@pytest.mark.timeout(120)
def test_wrong_chip_on_the_port_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "merged.bin").write_bytes(os.urandom(4096))
    with EspRomServer(chip="esp32") as server:
        proc = run_cli("flash", tmp_path / "merged.bin", "--board", "esp32-c3-devkitm-1", "--port", server.endpoint,
                       "--before", "no-reset", "--no-stub", "--allow-unsigned", "--connect-attempts", "1",
                       timeout=120)
    assert_clean_error(proc, "This chip is ESP32, not ESP32-C3", "--board")


def test_unknown_emulated_chip_is_refused() -> None:
    with pytest.raises(InputError, match="does not know chip"):
        EspRomServer(chip="esp8266")


@pytest.mark.timeout(120)
def test_build_that_records_no_stub_flashes_through_the_rom(tmp_path: Path) -> None:
    """ESP-IDF's extra_esptool_args (stub false, reset modes) are honoured when no option overrides them."""
    regions = fake_idf_build(tmp_path / "fw", stub=False)
    with EspRomServer() as server:
        proc = run_cli("flash", tmp_path / "fw", "--board", "esp32-devkitc", "--port", server.endpoint,
                       "--after", "no-reset", "--allow-unsigned", timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert_flash_holds(server.flash_bytes(), regions)


@pytest.mark.timeout(120)
def test_tinyml_flash_refuses_tampered_esp_build(signed_idf_build) -> None:
    project, _, pub = signed_idf_build
    app = project / "build" / "tinyml_app.bin"
    data = bytearray(app.read_bytes())
    data[1234] ^= 0x01
    app.write_bytes(bytes(data))
    with EspRomServer() as server:
        proc = tinyml_flash(project, server.endpoint, "--pubkey", pub)
        assert server.flash_bytes() == b"\xff" * FLASH_SIZE  # nothing was written
    assert_clean_error(proc, "build/tinyml_app.bin has changed")


def test_emulate_entry_point_announces_endpoint_and_stops(tmp_path: Path) -> None:
    """`serve` as `tinyml emulate --esp-rom` runs it: one line naming the endpoint, then serving."""
    script = ("import sys; from pathlib import Path; from tinyml.device.esp_rom import serve; "
              "serve(0, False, 1048576, Path(sys.argv[1]), 'drop:1')")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "f.bin")], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "1024 KiB flash" in line and "socket://127.0.0.1:" in line
        endpoint = line.split(" on ")[1].strip()
        (tmp_path / "a.bin").write_bytes(os.urandom(3000))
        result = esptool(endpoint, "write-flash", "--no-compress", "0x0", str(tmp_path / "a.bin"))
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (tmp_path / "f.bin").read_bytes()[:3000] == (tmp_path / "a.bin").read_bytes()
