"""Whole output tensors over the protocol: RESULT carries the head, OUTPUT_REQ/OUTPUT the rest.

ToyCar's autoencoder has 640 outputs, more than a RESULT frame holds (484), so these tests
prove the tail is fetched and compared byte for byte: on the real firmware booted on QEMU
mps2-an386, on the Python emulated device, through a corrupting line, and with a tampered
firmware whose only wrong output byte lies in the tail.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.test_validate import CorruptingProxy, qemu_pids
from tinyml.device import protocol as p
from tinyml.device.emulator import EmulatedFleet
from tinyml.device.endpoints import listen_tcp, socket_url
from tinyml.device.link import Link, open_link, read_output
from tinyml.device.qemu import CONNECT_TIMEOUT_S, EmulatedBoard
from tinyml.errors import DeviceError
from tinyml.firmware.boards import load_board
from tinyml.firmware.build import ELF_NAME, build_project
from tinyml.firmware.render import render_project
from tinyml.hil import MAX_ATTEMPTS, DeviceSession, ValidationInputs, prepare_inputs, validate
from tinyml.rundir import Int8Model, int8_model

pytestmark = [pytest.mark.qemu, pytest.mark.cross_compiler]

BOARD = "qemu-mps2-an386"
OUTPUTS = 640
TAMPERED_BYTE = 600  # beyond the RESULT head (484 bytes)


@pytest.fixture(scope="module")
def toycar(shared: Path) -> tuple[Path, Int8Model, ValidationInputs, bytes]:
    """The ToyCar model, its fixed input plus seeded random inputs, and TFLM's published output."""
    models = shared / "models"
    model = int8_model(models / "toycar_ad_int8.tflite")
    fixed = np.fromfile(models / "toycar_ad_int8.input.bin", np.int8)[None, :]
    tests = ValidationInputs(np.concatenate([fixed, prepare_inputs(model, None, None, 5, seed=3).x]), None,
                             "fixed + random")
    return models / "toycar_ad_int8.tflite", model, tests, (models / "toycar_ad_int8.tflm_output.bin").read_bytes()


@pytest.fixture(scope="module")
def toycar_elf(toycar, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = toycar[1]
    out = render_project(load_board(BOARD), model, tmp_path_factory.mktemp("toycar") / "fw")
    build_project(out)
    return out / ELF_NAME


def infer(link: Link, data: bytes, seq: int) -> p.Result:
    for off in range(0, len(data), p.MAX_INPUT_CHUNK):
        link.request(p.Input(off, data[off:off + p.MAX_INPUT_CHUNK]), p.Ack)
    return link.request(p.Infer(seq), p.Result, match=lambda m: m.seq == seq)


def assert_unknown_type_is_final(link: Link) -> None:
    """An intact frame of a type the device does not know (a newer host's) gets ERROR 2, not "resend"."""
    head = bytes([p.VERSION, 0x42]) + bytes(4)
    link.write_raw(b"\x00" + p.cobs_encode(head + p.crc16(head).to_bytes(2, "little")) + b"\x00")
    answer = link.recv()
    assert isinstance(answer, p.Error) and answer.code == p.ERR_UNKNOWN_TYPE, answer


def test_toycar_whole_output_matches_tflm_on_m4(toycar, toycar_elf: Path) -> None:
    _, model, tests, _ = toycar
    assert model.output_bytes == OUTPUTS > p.MAX_OUTPUT
    report = validate(load_board(BOARD), model, tests, elf=toycar_elf)
    assert report.inputs == 6 and report.output_bytes_compared == 6 * OUTPUTS
    assert report.mismatches == 0, report.first_mismatches
    assert report.retries == 0 and report.bad_frames == 0


def test_device_serves_the_tail_and_refuses_what_it_does_not_hold(toycar, toycar_elf: Path) -> None:
    """The firmware's OUTPUT answers, and its ERROR 4 (not the last seq) and ERROR 3 (bad offset)."""
    _, _, tests, expect = toycar
    with EmulatedBoard(load_board(BOARD), toycar_elf) as emu, \
            open_link(emu.url, timeout=2.0, connect_timeout=CONNECT_TIMEOUT_S) as link:
        assert isinstance(link.recv(10.0), p.Hello)  # booted: no request is lost (and answered twice)
        with pytest.raises(DeviceError, match="error 4: no output for this seq") as exc:
            link.request(p.OutputReq(0, p.MAX_OUTPUT), p.Output)  # no result yet
        assert "no longer holds the result" in exc.value.hint
        result = infer(link, tests.x[0].tobytes(), seq=41)
        assert len(result.output) == p.MAX_OUTPUT
        assert link.output(result, OUTPUTS) == expect  # head + tail == TFLM's published output
        last = link.request(p.OutputReq(41, OUTPUTS - 1), p.Output)
        assert (last.seq, last.offset, last.data) == (41, OUTPUTS - 1, expect[-1:])
        with pytest.raises(DeviceError, match="error 4: no output for this seq"):
            link.request(p.OutputReq(40, p.MAX_OUTPUT), p.Output)
        with pytest.raises(DeviceError, match="error 3: offset outside the output tensor") as exc:
            link.request(p.OutputReq(41, OUTPUTS), p.Output)
        assert "offset" in exc.value.hint
        infer(link, tests.x[1].tobytes(), seq=42)  # a new result replaces the old one
        with pytest.raises(DeviceError, match="error 4"):
            link.request(p.OutputReq(41, p.MAX_OUTPUT), p.Output)
        assert_unknown_type_is_final(link)
        link.send(p.Exit(0))


def test_tail_is_fetched_through_a_garbled_line(toycar, toycar_elf: Path) -> None:
    _, model, tests, _ = toycar
    board = load_board(BOARD)
    with EmulatedBoard(board, toycar_elf) as emu:
        proxy = CorruptingProxy(emu.port, every_down=401, every_up=1409)
        report = validate(board, model, tests, port=f"socket://127.0.0.1:{proxy.port}", timeout=0.3)
    assert proxy.flipped["down"] > 0 and proxy.flipped["up"] > 0
    assert report.output_bytes_compared == 6 * OUTPUTS and report.mismatches == 0
    assert report.retries > 0 and report.bad_frames > 0
    assert not qemu_pids(str(toycar_elf.parent))


def test_a_wrong_byte_in_the_tail_is_found_and_pointed_at(toycar, tmp_path: Path) -> None:
    """A firmware whose last layer has one wrong bias, for output 600: only the tail differs."""
    _, model, tests, _ = toycar
    board = load_board(BOARD)
    out = render_project(board, model, tmp_path / "fw")
    source = (out / "model" / "model.c").read_text()
    bias = re.search(rf"int32_t model_bias\d+\[{OUTPUTS}\] = \{{([^}}]*)\}}", source)
    assert bias is not None
    values = [int(v) for v in bias.group(1).replace("\n", " ").split(",") if v.strip()]
    assert len(values) == OUTPUTS
    values[TAMPERED_BYTE] += 1_000_000 if values[TAMPERED_BYTE] < 0 else -1_000_000
    (out / "model" / "model.c").write_text(
        source[:bias.start(1)] + ", ".join(map(str, values)) + source[bias.end(1):])
    build_project(out)
    report = validate(board, model, tests, elf=out / ELF_NAME)
    assert report.output_bytes_compared == 6 * OUTPUTS
    assert report.mismatches == report.mismatched_inputs > 0  # one wrong byte per affected input
    assert {m["first_byte"] for m in report.first_mismatches} == {TAMPERED_BYTE}
    first = report.first_mismatches[0]
    assert first["device"][TAMPERED_BYTE] != first["reference"][TAMPERED_BYTE]
    assert f"output byte {TAMPERED_BYTE}: device {first['device'][TAMPERED_BYTE]}" in "\n".join(report.summary())


def test_emulated_device_serves_the_whole_output(toycar) -> None:
    path, model, tests, expect = toycar
    with EmulatedFleet(path, rate=0) as fleet:
        report = validate(load_board(BOARD), model, tests, port=fleet.endpoints[0])
        with open_link(fleet.endpoints[0], timeout=2.0) as link:
            link.request(p.HelloReq(), p.Hello)
            with pytest.raises(DeviceError, match="error 4: no output for this seq"):
                link.request(p.OutputReq(0, 0), p.Output)
            result = infer(link, tests.x[0].tobytes(), seq=7)
            assert link.output(result, OUTPUTS) == expect
            chunk = link.request(p.OutputReq(7, 0), p.Output)  # any offset, up to a frame's worth
            assert chunk.data == expect[:p.MAX_OUTPUT_CHUNK]
            with pytest.raises(DeviceError, match="error 3: offset 640 outside the 640-byte output"):
                link.request(p.OutputReq(7, OUTPUTS), p.Output)
            with pytest.raises(DeviceError, match="error 4"):
                link.request(p.OutputReq(8, 0), p.Output)
            assert_unknown_type_is_final(link)
    assert report.output_bytes_compared == 6 * OUTPUTS and report.mismatches == 0


def test_cli_reports_every_output_byte_compared(toycar, tmp_path: Path) -> None:
    path = toycar[0]
    with EmulatedFleet(path, rate=0) as fleet:
        proc = run_cli("validate", "--board", BOARD, "--model", path, "--limit", "3", "--port", fleet.endpoints[0],
                       "--report", tmp_path / "report.json")
    assert proc.returncode == 0, proc.stderr
    assert f"mismatches: 0 of {3 * OUTPUTS} output bytes" in proc.stdout
    assert json.loads((tmp_path / "report.json").read_text())["output_bytes_compared"] == 3 * OUTPUTS


def test_firmware_without_output_req_gets_a_rebuild_hint(tmp_path: Path) -> None:
    """Firmware from before OUTPUT_REQ judged it a bad frame (ERROR 1): the host resends, then says why."""
    listener = listen_tcp(0)
    head = p.Result(3, 1, 0, 0, p.LATENCY_US, 0, 0.0, (0,) * p.MAX_OUTPUT)

    def old_device() -> None:
        conn, _ = listener.accept()
        decoder = p.Decoder()
        with conn:
            while data := conn.recv(4096):
                for event in decoder.feed(data):
                    if isinstance(event, p.OutputReq):
                        conn.sendall(p.encode(p.Error(p.ERR_BAD_FRAME, "bad frame")))

    threading.Thread(target=old_device, daemon=True).start()
    with listener, open_link(socket_url(listener.getsockname()[1]), timeout=1.0) as link:
        session = DeviceSession(link, 0.5)
        with pytest.raises(DeviceError, match="no OUTPUT from the device after 8 tries") as exc:
            session.output(head, OUTPUTS)
    assert "rebuild and flash" in exc.value.hint and session.device_rx_errors == MAX_ATTEMPTS


def test_read_output_refuses_a_device_that_sends_too_much() -> None:
    head = p.Result(5, 1, 0, 0, p.LATENCY_US, 0, 0.0, (1,) * 10)
    with pytest.raises(DeviceError, match="carries 10 output bytes, the device's HELLO said 8"):
        read_output(head, 8, lambda req, accept: pytest.fail("nothing to ask"))
    too_long = p.Output(5, 10, bytes(6))
    with pytest.raises(DeviceError, match="runs past the 12-byte output"):
        read_output(head, 12, lambda req, accept: too_long if accept(too_long) else pytest.fail("not accepted"))
    # stale or foreign answers are not taken for the chunk asked for
    asked: list[p.OutputReq] = []

    def device(req: p.OutputReq, accept) -> p.Message:
        asked.append(req)
        assert not accept(p.Output(4, req.offset, b"\x09")) and not accept(p.Output(5, req.offset + 1, b"\x09"))
        assert not accept(p.Ack(p.Input.TYPE, 0))
        return p.Output(5, req.offset, b"\xff")

    assert read_output(head, 12, device) == bytes([1] * 10 + [0xFF, 0xFF])
    assert asked == [p.OutputReq(5, 10), p.OutputReq(5, 11)]
