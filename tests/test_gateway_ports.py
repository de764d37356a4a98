"""A gateway port that will not open says what it waits for: a missing device, a busy one,
or a TCP endpoint nobody serves yet. Real ports: a pty held by pyserial, a closed TCP port."""

from __future__ import annotations

import asyncio
import logging
import os

import serial

from tinyml.device.endpoints import free_tcp_port, open_pty, socket_url
from tinyml.gateway.ports import Intake, open_port, read_port, waiting_for


def _failure(url: str) -> Exception:
    try:
        asyncio.run(open_port(url, 115200)).close()
    except (OSError, serial.SerialException) as exc:
        return exc
    raise AssertionError(f"{url} opened")


def test_missing_busy_and_unserved_ports_are_told_apart(tmp_path):
    missing = str(tmp_path / "ttyUSB9")
    text = waiting_for(missing, _failure(missing))
    assert "does not exist" in text and "plugged in" in text

    master, slave, name = open_pty()
    holder = serial.Serial(name, exclusive=True)
    try:
        text = waiting_for(name, _failure(name))
        assert "busy" in text and "released" in text and "does not exist" not in text
    finally:
        holder.close()
        os.close(master)
        os.close(slave)

    url = socket_url(free_tcp_port())
    assert "nothing listens on 127.0.0.1" in waiting_for(url, _failure(url))


def test_read_port_logs_what_it_waits_for_once_per_reason(tmp_path, caplog):
    url = str(tmp_path / "ttyUSB9")

    async def main():
        stop = asyncio.Event()
        intake = Intake()
        task = asyncio.create_task(read_port(url, 115200, intake, stop))
        await asyncio.sleep(1.0)  # several retries (backoff starts at 0.2 s)
        stop.set()
        await task
        return intake.take()

    with caplog.at_level(logging.WARNING, logger="tinyml.gateway"):
        states = asyncio.run(main())
    warnings = [r.getMessage() for r in caplog.records if r.name == "tinyml.gateway"]
    assert len(warnings) == 1 and "waiting for the device to be plugged in" in warnings[0], warnings
    assert [(s.connected, "plugged in" in s.error) for s in states] == [(False, True)]  # one record per reason
    assert len(states) == 1 and not states[0].connected and "does not exist" in states[0].error
