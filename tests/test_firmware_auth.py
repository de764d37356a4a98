"""Provisioned firmware on the emulated boards (QEMU) proves its key exactly as the gateway checks
it: `tinyml provision` bakes the key in, the device answers the gateway line's challenge with an
AUTH_HELLO that verifies (all four emulated cores), and its run-mode results (replayed windows)
arrive as AUTH_RESULTs the gateway stores as authenticated (Cortex-M4F, RV32); the frames do not
verify with another key, and an unprovisioned build answers AUTH_CHALLENGE with ERROR 2."""

from __future__ import annotations

import dataclasses
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.device import auth
from tinyml.device import protocol as p
from tinyml.device.keystore import read_keys
from tinyml.device.link import open_link
from tinyml.device.qemu import EmulatedBoard
from tinyml.device.replay import replay_window
from tinyml.firmware.boards import load_board
from tinyml.firmware.render import render_project
from tinyml.gateway.identity import AuthConfig, Identity
from tinyml.gateway.ingest import Identified, LineState, ResultsRecord
from tinyml.hil import emulated_link
from tinyml.rundir import int8_model

BOARD = "qemu-mps2-an386"
EMULATED = ["qemu-mps2-an386", "qemu-mps3-an547", "qemu-riscv32", "qemu-xtensa-lx106"]
pytestmark = [pytest.mark.qemu, pytest.mark.cross_compiler]


def _render(run_dir: Path, out: Path, board: str = BOARD) -> None:
    proc = run_cli("firmware", "new", "--board", board, "--model", run_dir, "--out", out, "--sensor", "replay",
                   "--device-id", "fan-7")
    assert proc.returncode == 0, proc.stderr


def _build(out: Path, mode: str = "run") -> Path:
    build = subprocess.run(["make", "-s", f"MODE={mode}"], cwd=out, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return out / "build" / "firmware.elf"


def _session(link, line: LineState, key: bytes) -> None:
    """The line's challenge and the device's proof, as the gateway runs them."""
    hello = link.recv(10)
    assert isinstance(hello, p.Hello) and hello.device_id == "fan-7"
    claim = line.feed(p.encode(hello), time.time())
    assert not [r for r in claim if isinstance(r, Identified)] and line.claim is not None  # nothing trusted yet
    link.write_raw(line.take_outgoing())  # the line's AUTH_CHALLENGE
    proof = link.recv(10)
    assert isinstance(proof, p.AuthHello) and auth.verify(key, proof) and not auth.verify(bytes(32), proof)
    records = line.feed(p.encode(proof), time.time())
    assert [type(r) for r in records][0] is Identified and records[0].authenticated


@pytest.mark.parametrize("board", EMULATED)
def test_every_emulated_board_proves_its_provisioned_key(board: str, shared: Path, tmp_path: Path) -> None:
    out, keys = tmp_path / "fw", tmp_path / "device-keys.json"
    render_project(load_board(board), int8_model(shared / "models" / "vib_cnn_int8.tflite"), out, device_id="fan-7")
    assert run_cli("provision", out, "--keys", keys).returncode == 0
    elf = _build(out, "validate")
    key = read_keys(keys)["fan-7"]
    line = LineState("qemu", identity=Identity(AuthConfig(keys, "required"), {"fan-7": key}))
    with emulated_link(load_board(board), elf, 10.0) as link:
        _session(link, line, key)


@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-riscv32"])
def test_a_provisioned_board_proves_its_key_to_the_gateway_line(board: str, trained_run, tmp_path: Path) -> None:
    out, keys = tmp_path / "fw", tmp_path / "device-keys.json"
    _render(trained_run.run_dir, out, board)
    _build(out)
    proc = run_cli("provision", out, "--keys", keys)
    assert proc.returncode == 0, proc.stderr
    key = read_keys(keys)["fan-7"]
    header = out / "src" / "tinyml_device_key.h"
    assert stat.S_IMODE(header.stat().st_mode) == 0o600 and stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert key.hex() not in proc.stdout + proc.stderr and not (out / "build").exists()  # the stale image is gone
    elf = _build(out)
    line = LineState("qemu", identity=Identity(AuthConfig(keys, "required"), {"fan-7": key}))
    with emulated_link(load_board(board), elf, 5.0) as link:
        _session(link, line, key)
        results = [replay_window(link, np.full((256, 3), 0.01 * i, np.float32)) for i in range(3)]
    assert all(type(r) is p.AuthResult and auth.verify(key, r) for r in results)
    records = line.feed(b"".join(p.encode(r) for r in results), time.time())
    stored = [r for r in records if isinstance(r, ResultsRecord)]
    assert len(stored) == 1 and stored[0].authenticated and len(stored[0].results) == 3
    # a copy with its seq changed is refused by the line
    forged = p.encode(dataclasses.replace(results[-1], seq=results[-1].seq + 10))
    assert [r.refused for r in line.feed(forged, time.time()) if hasattr(r, "refused")] == [1]


def test_an_unprovisioned_board_answers_a_challenge_with_unknown_type(trained_run, tmp_path: Path) -> None:
    out = tmp_path / "fw"
    _render(trained_run.run_dir, out)
    elf = _build(out)
    with EmulatedBoard(load_board(BOARD), elf) as emu, open_link(emu.url, 115200, timeout=5.0,
                                                                connect_timeout=10) as link:
        assert isinstance(link.recv(10), p.Hello)
        answer = link.request(p.AuthChallenge(bytes(8)), p.Error, match=lambda m: True)
        assert answer.code == p.ERR_UNKNOWN_TYPE
        result = replay_window(link, np.zeros((256, 3), np.float32))
        assert type(result) is p.Result


def test_provision_refuses_a_loose_key_store_and_a_non_project(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"format": "tinyml-device-keys", "version": 1, "devices": {}}')
    keys.chmod(0o640)
    (tmp_path / "fw").mkdir()
    assert_clean_error(run_cli("provision", tmp_path / "fw", "--keys", keys), "not a tinyml firmware project")
