"""The C codec (firmware_templates/common/tinyml_proto.c) against the same vectors as Python.

The codec is compiled on the host with strict warnings and driven by a small harness that
decodes byte streams and re-encodes every message; its output is compared field by field
with the Python codec. It must also compile warning-free for every target toolchain.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.cbuild import STRICT, host_compile
from tinyml.device import protocol as p
from tinyml.paths import template_dir

VECTORS = Path(__file__).parent / "vectors" / "protocol"
COMMON = template_dir("common")
CROSS = {
    "arm-none-eabi-gcc": ["-mcpu=cortex-m4", "-mthumb", "-Os"],
    "riscv64-unknown-elf-gcc": ["--specs=picolibc.specs", "-march=rv32imc", "-misa-spec=2.2", "-mabi=ilp32", "-Os"],
    "xtensa-lx106-elf-gcc": ["--specs=/usr/lib/xtensa-lx106-elf/picolibc.specs", "-Os"],
}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("proto") / "codec_harness"
    host_compile([VECTORS / "codec_harness.c", COMMON / "tinyml_proto.c"], exe, includes=[COMMON])
    return exe


def run_harness(exe: Path, streams: list[bytes]) -> list[list[str]]:
    """One list of output lines (END excluded but kept as the last item) per stream."""
    out = subprocess.run([str(exe)], input="".join(s.hex() + "\n" for s in streams),
                         capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    groups, current = [], []
    for line in out:
        current.append(line)
        if line.startswith("END "):
            groups.append(current)
            current = []
    assert len(groups) == len(streams)
    return groups


def python_view(stream: bytes) -> list[str]:
    """What the harness prints for a stream, computed with the Python codec (text lines omitted)."""
    decoder = p.Decoder()
    lines = []
    for event in decoder.feed(stream):
        if isinstance(event, p.BadFrame):
            lines.append(f"BAD {event.reason}")
        elif not isinstance(event, p.Text):
            lines.append(f"MSG {p.encode(event).hex()} {harness_fields(event)}")
    lines.append(f"END frames={decoder.frames} bad={decoder.bad_frames} text={decoder.text_bytes}")
    return lines


def harness_fields(msg: p.Message) -> str:
    parts = [str(msg.TYPE)]
    for name, value in p.message_to_dict(msg).items():
        if name == "type":
            continue
        if name in ("score", "fs"):
            value = struct.pack("<f", value)[::-1].hex()
        elif name == "output":
            value = ",".join(map(str, value))
        elif isinstance(value, str) and name not in ("model_hash", "data", "nonce", "mac"):
            value = value.encode().hex()
        parts.append(f"{name}={value}")
    return ";".join(parts)


def test_c_codec_decodes_and_reencodes_every_golden_message(harness: Path) -> None:
    vectors = json.loads((VECTORS / "messages.json").read_text())
    groups = run_harness(harness, [bytes.fromhex(v["hex"]) for v in vectors])
    for vector, lines in zip(vectors, groups, strict=True):
        msg = p.message_from_dict(vector["message"])
        assert lines == [f"MSG {vector['hex']} {harness_fields(msg)}", "END frames=1 bad=0 text=0"], vector["name"]


def test_c_codec_judges_golden_streams_like_python(harness: Path) -> None:
    vectors = json.loads((VECTORS / "streams.json").read_text())
    groups = run_harness(harness, [bytes.fromhex(v["hex"]) for v in vectors])
    for vector, lines in zip(vectors, groups, strict=True):
        expect = vector["expect"]
        got = [ln for ln in lines if ln != "TEXT"]
        kinds = [ln.split(" ", 1)[1] if ln.startswith("BAD") else ln.split(" ")[2].split(";")[0]
                 for ln in got[:-1]]
        want = [e["bad"] if "bad" in e else str(p.MESSAGE_NAMES[e["type"]].TYPE) for e in expect["events"]]
        assert kinds == want, vector["name"]
        assert got[-1] == f"END frames={expect['frames']} bad={expect['bad_frames']} text={expect['text_bytes']}"


def test_c_and_python_agree_on_corrupted_random_streams(harness: Path) -> None:
    rnd = random.Random(1234)
    vectors = [p.message_from_dict(v["message"]) for v in json.loads((VECTORS / "messages.json").read_text())]
    streams = []
    for _ in range(300):
        stream = bytearray()
        for _ in range(rnd.randint(1, 6)):
            frame = bytearray(p.encode(rnd.choice(vectors)))
            if rnd.random() < 0.5:
                for _ in range(rnd.randint(1, 3)):
                    frame[rnd.randrange(len(frame))] = rnd.randrange(256)
            if rnd.random() < 0.2:
                frame = frame[:rnd.randrange(len(frame))]
            if rnd.random() < 0.2:
                frame += rnd.choice([b"dbg line\r\n", b"x" * rnd.randint(500, 1100), b"\n",
                                     bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 600)))])
            stream += frame
        streams.append(bytes(stream) + b"\x00")
    # Python reports text per line, C per chunk: compare everything else
    for stream, lines in zip(streams, run_harness(harness, streams), strict=True):
        assert [ln for ln in lines if ln != "TEXT"] == python_view(stream), stream.hex()


@pytest.mark.parametrize("compiler", sorted(CROSS))
@pytest.mark.cross_compiler
def test_c_codec_compiles_warning_free_for_targets(compiler: str, tmp_path: Path) -> None:
    assert shutil.which(compiler), f"{compiler} is part of the toolchain CI installs"
    proc = subprocess.run([compiler, *STRICT, *CROSS[compiler], "-c", str(COMMON / "tinyml_proto.c"),
                           "-o", str(tmp_path / "proto.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_c_decoder_is_memory_safe_on_random_input(tmp_path: Path) -> None:
    """Random bytes, near-frames and over-long chunks through the codec under ASan and UBSan."""
    exe = tmp_path / "codec_harness_asan"
    host_compile([VECTORS / "codec_harness.c", COMMON / "tinyml_proto.c"], exe, includes=[COMMON],
                 extra=["-O1", "-g"], sanitize=True)
    rnd = random.Random(99)
    frames = [bytes.fromhex(v["hex"]) for v in json.loads((VECTORS / "messages.json").read_text())]
    streams = [bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 3000))) for _ in range(40)]
    streams += [bytes([0]) + bytes(rnd.randrange(1, 256) for _ in range(n)) + bytes([0]) for n in (514, 515, 516, 2000)]
    for frame in frames:  # every prefix and single-byte change of a long frame
        streams += [frame[:k] + b"\x00" for k in range(0, len(frame), 7)]
        streams += [frame[:k] + bytes([frame[k] ^ 0xFF]) + frame[k + 1:] for k in range(1, len(frame) - 1, 11)]
    proc = subprocess.run([str(exe)], input="".join(s.hex() + "\n" for s in streams), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "runtime error" not in proc.stderr and "AddressSanitizer" not in proc.stderr
    assert proc.stdout.count("END ") == len(streams)


def test_c_encoder_refuses_what_a_frame_cannot_carry(tmp_path: Path) -> None:
    exe = tmp_path / "encode_limits"
    host_compile([VECTORS / "encode_limits.c", COMMON / "tinyml_proto.c"], exe, includes=[COMMON],
                 sanitize=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


EMULATED = {  # compiler flags and emulator command (semihosting console on stderr) per target
    "cortex-m4f (mps2-an386)": (
        ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
         "-Wl,--defsym=__flash=0x0", "-Wl,--defsym=__flash_size=4M", "-Wl,--defsym=__ram=0x20000000",
         "-Wl,--defsym=__ram_size=4M"],
        ["qemu-system-arm", "-M", "mps2-an386"]),
    "rv32imc (virt)": (
        ["riscv64-unknown-elf-gcc", "-march=rv32imc", "-misa-spec=2.2", "-mabi=ilp32", "-mcmodel=medany",
         "-Wl,--defsym=__flash=0x80000000", "-Wl,--defsym=__flash_size=1M", "-Wl,--defsym=__ram=0x80100000",
         "-Wl,--defsym=__ram_size=1M"],
        ["qemu-system-riscv32", "-M", "virt", "-bios", "none"]),
}


@pytest.mark.parametrize("target", sorted(EMULATED))
@pytest.mark.qemu
@pytest.mark.cross_compiler
def test_c_codec_on_emulated_targets_matches_the_host(target: str, harness: Path, tmp_path: Path) -> None:
    """The same vectors decoded and re-encoded by the codec running on an emulated MCU."""
    streams = [bytes.fromhex(v["hex"]) for name in ("messages.json", "streams.json")
               for v in json.loads((VECTORS / name).read_text())]
    (tmp_path / "streams.inc").write_text("".join(f'"{s.hex()}\\n",\n' for s in streams))
    compile_cmd, emulator = EMULATED[target]
    elf = tmp_path / "harness.elf"
    subprocess.run([*compile_cmd, *STRICT, "-Os", "--specs=picolibc.specs", "--oslib=semihost", "--crt0=semihost",
                    "-I", str(COMMON), "-I", str(tmp_path), '-DHARNESS_INPUT="streams.inc"',
                    str(VECTORS / "codec_harness.c"), str(COMMON / "tinyml_proto.c"), "-o", str(elf)],
                   check=True, capture_output=True, text=True)
    run = subprocess.run([*emulator, "-display", "none", "-serial", "none", "-monitor", "none",
                          "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    host = subprocess.run([str(harness)], input="".join(s.hex() + "\n" for s in streams), capture_output=True,
                          text=True, timeout=60, check=True).stdout
    assert run.stderr == host
    assert run.stderr.count("END ") == len(streams)
