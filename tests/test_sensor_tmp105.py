"""The emulated TMP105 end to end: QEMU's tmp105 on the mps2-an386 SBCon I2C bus, read by the
firmware's own bit-banged I2C driver in run mode, its temperature set over QMP.

A temperature autoencoder (32-sample windows, trained on synthetic data) runs on the emulated
Cortex-M4F; the host plays a normal noisy temperature, then a runaway ramp, and the gateway
stores the RESULT frames and raises the anomaly alert. No device at the address (NACK), a
device of another kind at the address (wrong identity register) and a rate the chip cannot do
are reported clearly on the device (ERROR 7, HEARTBEAT counters) and on the host.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tests.test_gateway_e2e import GatewayProcess, count, query, wait_until
from tinyml.device import protocol as p
from tinyml.device.emulated_sensor import TemperatureDriver, i2c_device_args, normal, ramp
from tinyml.device.link import open_link
from tinyml.device.qemu import EmulatedBoard
from tinyml.device.qmp import Qmp
from tinyml.firmware.boards import load_board

BOARD = "qemu-mps2-an386"
SPEEDUP = "180"  # one sample a minute in the training data -> 3 samples a second on the device

pytestmark = [pytest.mark.qemu, pytest.mark.cross_compiler]


@pytest.fixture(scope="module")
def temp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tmp105")
    data, run = base / "temp.npz", base / "run"
    for args in (("data", "synth", "temperature", "--out", data, "--window", "32", "--seed", "1"),
                 ("train", data, "--model", "autoencoder", "--out", run, "--seed", "1", "--quiet"),
                 ("quantize", run, "--tolerance", "0.05")):
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
    return run


@pytest.fixture(scope="module")
def firmware(temp_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fw") / "fw"
    proc = run_cli("firmware", "new", "--board", BOARD, "--model", temp_run, "--out", out,
                   "--sensor", "tmp105", "--sensor-option", f"speedup={SPEEDUP}")
    assert proc.returncode == 0, proc.stderr
    assert "reads tmp105 on i2c0 at 3 Hz" in proc.stdout
    build = subprocess.run(["make", "-s", "MODE=run"], cwd=out, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return out / "build" / "firmware.elf"


@contextmanager
def emulated(elf: Path, device: str | None) -> Iterator[tuple[EmulatedBoard, Qmp]]:
    """The firmware on QEMU with ``device`` at 0x48 on the I2C bus (None: nothing there). QEMU
    serves QMP only once the serial line is connected (wait=on), so connect the QMP after it."""
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "qmp"
        extra = i2c_device_args(sock, device) if device else ()
        with EmulatedBoard(load_board(BOARD), elf, extra) as emu:
            qmp = Qmp(sock, timeout=60)
            try:
                yield emu, qmp
            finally:
                qmp.close()


def test_temperature_fault_raises_the_gateway_alert(firmware: Path, temp_run: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"[rules]\nanomaly_k = 2\nanomaly_n = 3\nanomaly_clear_k = 0\nsilent_seconds = 600\n"
                   f"[[models]]\nrun = '{temp_run}'\ndevices = ['*']\n")
    with emulated(firmware, "tmp105") as (emu, qmp):
        gw = GatewayProcess(tmp_path, [emu.url], "--config", str(cfg))
        # the guest boots when the gateway connects; its first sample comes one period after
        driver = TemperatureDriver(qmp.connect(), normal(level=24.0)).start()
        try:
            results = "SELECT count(*) FROM results"
            wait_until(lambda: count(gw.db, results) >= 2, 240, "two results at normal temperature")
            normal_labels = [r[0] for r in query(gw.db, "SELECT label FROM results ORDER BY seq")]
            assert count(gw.db, "SELECT count(*) FROM alerts") == 0
            fault_from = count(gw.db, results)
            driver.profile = ramp(driver.now(), normal(level=24.0, seed=2))
            wait_until(lambda: count(gw.db, "SELECT count(*) FROM alerts WHERE rule='anomalies'") == 1, 240,
                       "the anomaly alert")
            labels = [r[0] for r in query(gw.db, "SELECT label FROM results ORDER BY seq")]
            device = query(gw.db, "SELECT device, board FROM devices")
        finally:
            driver.stop()
            assert gw.stop() == 0, gw.text()
        assert driver.error is None
    assert normal_labels[:2] == [0, 0], normal_labels
    assert labels[fault_from:].count(1) >= 2, labels
    assert device == [("qemu-mps2-an386", "qemu-mps2-an386")]


def _first(link, kind: type, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        event = link.recv(max(0.1, deadline - time.monotonic()))
        if isinstance(event, kind):
            return event, seen
        if event is not None:
            seen.append(event)
    raise AssertionError(f"no {kind.__name__}; got {seen}")


@pytest.mark.parametrize(("device", "status", "needle"), [
    (None, 1, "tmp105: no answer at I2C address 0x48 on i2c0 (NACK)"),
    ("at24c-eeprom", 2, "tmp105: identity register reads 0xffff, expected 0x5000"),  # an erased EEPROM
])
def test_missing_or_wrong_sensor_is_reported(firmware: Path, device: str | None, status: int, needle: str) -> None:
    with emulated(firmware, device) as (emu, _), open_link(emu.url, 115200, timeout=1.0, connect_timeout=10) as link:
        error, _ = _first(link, p.Error)
        assert (error.code, error.message) == (p.ERR_SENSOR, needle)
        beat, seen = _first(link, p.Heartbeat, 30)
        assert beat.sensor_status == status and beat.sensor_errors >= 1 and beat.sensor_reads == 0
        assert beat.results == 0
        # one ERROR per new status, not one per retry (the driver retries every second)
        assert not any(isinstance(e, p.Error) for e in seen)


def test_monitor_explains_a_missing_sensor(firmware: Path) -> None:
    with emulated(firmware, None) as (emu, _):
        proc = subprocess.Popen([sys.executable, "-m", "tinyml", "monitor", "--port", emu.url], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if "heartbeat" in line:
                    break
        finally:
            proc.kill()
            proc.wait(10)
    out = "".join(lines)
    assert "sensor error: tmp105: no answer at I2C address 0x48 on i2c0 (NACK) (hint: check the wiring" in out
    assert "sensor=no answer (NACK) reads=0" in out


def test_rates_and_channels_the_sensor_cannot_do_are_refused(temp_run: Path, trained_run, tmp_path: Path) -> None:
    fast = run_cli("firmware", "new", "--board", BOARD, "--model", temp_run, "--out", tmp_path / "a",
                   "--sensor", "tmp105", "--sensor-option", "speedup=600")
    assert_clean_error(fast, "sensor tmp105 cannot sample at 10 Hz", "at most 3.33 times a second")
    assert not (tmp_path / "a").exists()
    three = run_cli("firmware", "new", "--board", BOARD, "--model", trained_run.run_dir, "--out", tmp_path / "b",
                    "--sensor", "tmp105")
    assert_clean_error(three, "has 1 channel(s) (temp); the model was trained on 3")
    nobus = run_cli("firmware", "new", "--board", "qemu-riscv32", "--model", temp_run, "--out", tmp_path / "c",
                    "--sensor", "tmp105")
    assert_clean_error(nobus, "board qemu-riscv32 has no i2c bus")
    typo = run_cli("firmware", "new", "--board", BOARD, "--model", temp_run, "--out", tmp_path / "d",
                   "--sensor", "tmp106")
    assert_clean_error(typo, "unknown sensor 'tmp106'")
    option = run_cli("firmware", "new", "--board", BOARD, "--model", temp_run, "--out", tmp_path / "e",
                     "--sensor", "tmp105", "--sensor-option", "adress=0x49")
    assert_clean_error(option, "unknown sensor option 'adress'", "address")
