"""`tinyml monitor` against emulated devices on TCP and pty: results, noise, silence, unplugging."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.device.emulated_model import DeviceModel
from tinyml.device.emulator import EmulatedFleet, Faults


@pytest.fixture(scope="module")
def model(shared: Path) -> DeviceModel:
    return DeviceModel(shared / "models" / "vib_cnn_int8.tflite")


@pytest.fixture
def fleet(request: pytest.FixtureRequest, model: DeviceModel) -> Iterator[EmulatedFleet]:
    """One emulated device; tests pass EmulatedFleet keyword arguments through indirect parametrization."""
    options = {"rate": 40, **getattr(request, "param", {})}
    with EmulatedFleet(model, **options) as running:
        yield running


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_results_over_tcp(fleet: EmulatedFleet, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.json").write_text(json.dumps({"task": "classifier", "classes": ["ok", "wobble", "worn"]}))
    proc = run_cli("monitor", "--port", fleet.endpoints[0], "--json", "--count", "5", "--model", str(run_dir),
                   timeout=60)
    assert proc.returncode == 0, proc.stderr
    records = json_lines(proc.stdout)
    results = [r for r in records if r["event"] == "result"]
    assert len(results) == 5
    seqs = [r["seq"] for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert {r["device"] for r in results} == {"emu-000"}
    assert all(r["label_name"] == ["ok", "wobble", "worn"][r["label"]] for r in results)
    assert all(r["latency_unit"] == "us" and len(r["output"]) == 3 for r in results)
    assert any(r["event"] == "hello" and r["board"] == "emulated" for r in records)
    assert records[0] == {"event": "text", "device": fleet.endpoints[0],
                          "line": f"tinyml emulated device emu-000 boot {fleet.devices[0].boot_id:08x}"}
    summary = records[-1]
    assert summary["event"] == "summary" and summary["results"] == 5 and summary["bad_frames"] == 0
    assert "monitor: 5 results from 1 device(s), 0 bad frames" in proc.stderr


@pytest.mark.parametrize("fleet", [{"tcp_port": None, "pty": True}], indirect=True)
def test_human_lines_over_pty(fleet: EmulatedFleet) -> None:
    proc = run_cli("monitor", "--port", fleet.endpoints[0], "--count", "3", timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if " seq=" in ln]
    assert len(lines) == 3 and all(ln.startswith("emu-000 seq=") and "latency=" in ln for ln in lines)
    assert "emu-000 hello: board=emulated" in proc.stdout


@pytest.mark.parametrize("fleet", [{"faults": {0: Faults(garbage_every=2, bad_crc_every=3)}}], indirect=True)
def test_garbage_is_survived_and_counted(fleet: EmulatedFleet) -> None:
    proc = run_cli("monitor", "--port", fleet.endpoints[0], "--json", "--count", "12", timeout=60)
    assert proc.returncode == 0, proc.stderr
    summary = json_lines(proc.stdout)[-1]
    assert summary["results"] == 12
    assert summary["bad_frames"] >= 8
    assert set(summary["bad_reasons"]) <= {"cobs", "crc", "bad length"}
    assert f"{summary['bad_frames']} bad frames (" in proc.stderr


# the monitor process needs up to a second or two to start on a loaded machine: unplug later
UNPLUG = {"faults": {0: Faults(disconnect_after=2.5, disconnect_for=0.7)}}


@pytest.mark.parametrize("fleet", [UNPLUG], indirect=True)
def test_unplugged_device_is_a_clear_error(fleet: EmulatedFleet) -> None:
    proc = run_cli("monitor", "--port", fleet.endpoints[0], timeout=60)
    assert_clean_error(proc, "disconnected", "--reconnect")
    assert proc.returncode == 4
    assert "monitor: " in proc.stderr  # the summary is still printed


@pytest.mark.parametrize("fleet", [{**UNPLUG, "rate": 100}], indirect=True)
def test_reconnect_resumes_after_unplugging(fleet: EmulatedFleet) -> None:
    results_before_unplug = int(100 * (2.5 - (time.monotonic() - fleet.start_time)))
    proc = run_cli("monitor", "--port", fleet.endpoints[0], "--json", "--reconnect", "--count",
                   str(results_before_unplug + 40), "--timeout", "5", timeout=60)
    assert proc.returncode == 0, proc.stderr
    events = [r["event"] for r in json_lines(proc.stdout)]
    assert "disconnected" in events and "reconnected" in events
    assert events.index("reconnected") < len(events) - 1 - events[::-1].index("result")
    assert json_lines(proc.stdout)[-1]["reconnects"] == 1


@pytest.mark.parametrize("fleet", [{"faults": {0: Faults(reboot_every=0.5)}}], indirect=True)
def test_reboots_are_reported(fleet: EmulatedFleet) -> None:
    proc = run_cli("monitor", "--port", fleet.endpoints[0], "--count", "50", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "emu-000 rebooted: boot " in proc.stdout


@pytest.mark.parametrize("fleet", [{"rate": 0}], indirect=True)
def test_silent_device_times_out(fleet: EmulatedFleet) -> None:
    proc = run_cli("monitor", "--port", fleet.endpoints[0], "--timeout", "0.5", "--count", "1", timeout=60)
    assert_clean_error(proc, "no data from", "--baud")


def test_emulate_and_monitor_commands_together_on_a_pty(shared: Path) -> None:
    emu = subprocess.Popen([sys.executable, "-m", "tinyml", "emulate", "--model",
                            str(shared / "models" / "feat_ae_int8.tflite"), "--pty", "--rate", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        device, path = emu.stdout.readline().split()
        proc = run_cli("monitor", "--port", path, "--count", "4", "--json", timeout=60)
        assert proc.returncode == 0, proc.stderr
        results = [r for r in json_lines(proc.stdout) if r["event"] == "result"]
        assert len(results) == 4 and results[0]["device"] == device == "emu-000"
        assert all(r["label"] == 255 and r["label_name"] is None for r in results)  # no threshold known
    finally:
        emu.terminate()
        emu.communicate(timeout=10)


@pytest.mark.parametrize(("args", "needle"), [
    (["--port", "/dev/ttyNOPE7"], "serial port /dev/ttyNOPE7 not found"),
    (["--port", "socket://127.0.0.1:1"], "nothing is listening"),
    (["--port", "socket://nowhere"], "bad TCP address"),
    (["--port", "/dev/null", "--timeout", "0"], "--timeout must be positive"),
    (["--port", "/dev/null", "--count", "-1"], "--count must be >= 0"),
    (["--port", "/dev/null", "--model", "/nonexistent/run"], "model not found"),
])
def test_bad_inputs(args: list[str], needle: str) -> None:
    assert_clean_error(run_cli("monitor", *args, timeout=60), needle)
