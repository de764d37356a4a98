"""The demo's sensor step: an emulated TMP105 -> run-mode firmware -> gateway alert -> evidence.

The firmware (rendered with ``--sensor tmp105``, built with ``make MODE=run``) runs on QEMU's
mps2-an386 with a TMP105 on its I2C bus and reads it through its own bit-banged I2C driver;
the host plays a normal temperature into the chip over QMP, then a runaway ramp, while the
gateway stores the device's RESULT frames, raises the anomaly alert and asks the firmware for
its last raw windows (evidence, kept in the database for ``tinyml gateway export``). Everything started
here is stopped here; the database stays in ``workdir``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from tinyml.device.emulated_sensor import TemperatureDriver, i2c_device_args, normal, ramp
from tinyml.device.qemu import EmulatedBoard
from tinyml.device.qmp import Qmp
from tinyml.errors import DeviceError
from tinyml.firmware.boards import load_board
from tinyml.gateway.config import GatewayConfig, ModelRoute
from tinyml.gateway.rules import RuleConfig
from tinyml.gateway.service import Gateway
from tinyml.rundir import read_labels

BOARD = "qemu-mps2-an386"


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0] or 0)
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet
    finally:
        conn.close()


def _wait(db: Path, sql: str, at_least: int, timeout: float, what: str, gateway: threading.Thread) -> None:
    deadline = time.monotonic() + timeout
    while _count(db, sql) < at_least:
        if time.monotonic() > deadline or not gateway.is_alive():
            raise DeviceError(f"the emulated TMP105 demo saw no {what} within {timeout:g} s",
                              "the machine may be very busy: run `make demo` again")
        time.sleep(0.2)


def temperature_alert(run_dir: Path, elf: Path, workdir: Path, *, timeout: float = 180.0) -> list[str]:
    """Normal temperature until the first normal RESULT, then a ramp until the gateway's alert;
    returns summary lines."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "gateway.db"
    db.unlink(missing_ok=True)
    rules = RuleConfig(anomaly_k=1, anomaly_n=1, anomaly_clear_k=0, silent_seconds=None)
    done = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "qmp"
        with EmulatedBoard(load_board(BOARD), elf, i2c_device_args(sock)) as emu:
            config = GatewayConfig(ports=(emu.url,), db=db, site="demo", rules=rules,
                                   models=(ModelRoute(read_labels(run_dir), ("*",)),))
            gateway = threading.Thread(target=asyncio.run, args=(_run_until(Gateway(config), done),), daemon=True)
            gateway.start()
            driver = None
            try:
                # QEMU answers QMP once its serial line is connected: the gateway's connection boots it
                driver = TemperatureDriver(Qmp(sock, timeout=60).connect(), normal(level=24.0)).start()
                _wait(db, "SELECT count(*) FROM results WHERE anomaly = 0", 1, timeout, "normal result", gateway)
                driver.profile = ramp(driver.now(), normal(level=24.0, seed=2))
                ramp_at = time.monotonic()
                _wait(db, "SELECT count(*) FROM alerts WHERE rule = 'anomalies'", 1, timeout, "anomaly alert",
                      gateway)
                ramp_s = time.monotonic() - ramp_at
                # the alert made the gateway ask the device for its last raw windows (evidence)
                _wait(db, "SELECT count(*) FROM evidence_windows", 1, 60.0, "evidence windows", gateway)
                time.sleep(0.5)  # the rest of the ring's windows follow the first within milliseconds
            finally:
                if driver is not None:
                    driver.stop()
                    driver.qmp.close()
                done.set()
                gateway.join(30)
    results = _count(db, "SELECT count(*) FROM results")
    anomalies = _count(db, "SELECT count(*) FROM results WHERE anomaly = 1")
    evidence = _count(db, "SELECT count(*) FROM evidence_windows")
    return [f"{results} RESULT frames from the TMP105 read over the firmware's I2C driver, {anomalies} anomalous",
            f"gateway alert 'anomalies' {ramp_s:.0f} s after the ramp began; database {db}",
            f"{evidence} raw TMP105 window(s) sent by the firmware as evidence for the alert"]


async def _run_until(gateway: Gateway, done: threading.Event) -> None:
    stop = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            await asyncio.sleep(0.1)
        stop.set()

    watcher = asyncio.create_task(watch())
    await gateway.run(stop)
    watcher.cancel()
