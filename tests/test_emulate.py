"""Emulated devices: the protocol as firmware speaks it, TFLM-exact answers, and every fault."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.device import protocol as p
from tinyml.device.emulated_model import DeviceModel
from tinyml.device.emulator import EmulatedFleet, Faults
from tinyml.device.endpoints import listen_tcp
from tinyml.device.link import Link, open_link
from tinyml.errors import DeviceError, InputError
from tinyml.model.interpreters import dequantize, io_quantization, tflm_run
from tinyml.signing import sha256_file


@pytest.fixture(scope="module")
def vib_model(shared: Path) -> DeviceModel:
    return DeviceModel(shared / "models" / "vib_cnn_int8.tflite")


@pytest.fixture(scope="module")
def ae_model(shared: Path) -> DeviceModel:
    return DeviceModel(shared / "models" / "feat_ae_int8.tflite")


def run_inference(link: Link, data: bytes, seq: int) -> p.Result:
    """What `tinyml validate` does: INPUT chunks (each ACKed), then INFER."""
    for off in range(0, len(data), 256):
        ack = link.request(p.Input(off, data[off:off + 256]), p.Ack, timeout=2.0)
        assert ack.value == off + len(data[off:off + 256])
    return link.request(p.Infer(seq), p.Result, timeout=2.0, match=lambda m: m.seq == seq)


def collect(link: Link, seconds: float) -> list[p.Event]:
    events, end = [], time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        event = link.recv_event(left)
        if event is not None:
            events.append(event)
    return events


@pytest.mark.parametrize("name", ["vib_cnn_int8", "feat_ae_int8", "toycar_ad_int8"])
def test_input_infer_answers_exactly_what_tflm_computes(shared: Path, name: str) -> None:
    models = shared / "models"
    tflite = (models / f"{name}.tflite").read_bytes()
    data = (models / f"{name}.input.bin").read_bytes()
    with EmulatedFleet(models / f"{name}.tflite", rate=0) as fleet, open_link(fleet.endpoints[0], timeout=2) as link:
        hello = link.request(p.HelloReq(), p.Hello)
        assert hello.model_hash == hashlib.sha256(tflite).digest()[:8]
        assert hello.input_bytes == len(data)
        assert hello.output_bytes == len((models / f"{name}.tflm_output.bin").read_bytes())
        result = run_inference(link, data, seq=1234)
    expect = (models / f"{name}.tflm_output.bin").read_bytes()
    assert bytes(v & 0xFF for v in result.output) == expect[:p.MAX_OUTPUT]  # larger tensors send their head
    assert result.latency_unit == p.LATENCY_US and result.latency > 0


def test_run_mode_results_are_classifier_decisions_of_tflm_outputs(vib_model: DeviceModel) -> None:
    q = io_quantization(vib_model.tflite)
    with EmulatedFleet(vib_model, rate=50) as fleet, open_link(fleet.endpoints[0], timeout=2) as link:
        results = [e for e in collect(link, 0.6) if isinstance(e, p.Result)]
    assert len(results) >= 10
    seqs = [r.seq for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert len({r.boot_id for r in results}) == 1
    pool = {o.output for o in vib_model.normal_pool}
    for r in results:
        assert r.output in pool
        out = np.array(r.output, np.int8)
        assert r.label == int(np.argmax(out))
        assert r.score == pytest.approx(float(dequantize(out, q.out_scale, q.out_zp)[r.label]), rel=1e-6)
    # the pool itself is TFLM's answer to its inputs: spot-check one against the reference interpreter
    x = np.random.default_rng(0).integers(-128, 128, (1, *q.in_shape), dtype=np.int8)
    assert vib_model.infer(x.tobytes()).output == tuple(tflm_run(vib_model.tflite, x)[0])


def test_frame_faults_cost_exactly_the_frames_they_hit(vib_model: DeviceModel) -> None:
    # silent at first, so the host is connected before result 0; then stopped, so it sees all
    faults = Faults(garbage_every=2, truncate_every=5, bad_crc_every=7, silence_after=0, silence_for=0.3)
    events: list[p.Event] = []
    with EmulatedFleet(vib_model, rate=100, faults={0: faults}) as fleet, \
            open_link(fleet.endpoints[0], timeout=2) as link:
        events += collect(link, 0.8)
        fleet.stop()
        with pytest.raises(DeviceError, match="disconnected"):
            while True:
                events.append(link.recv_event(2.0))
        stats = link.stats()
    produced = fleet.devices[0].seq
    assert produced > 20
    lost = {s for s in range(produced) if (s + 1) % 5 == 0 or (s + 1) % 7 == 0}
    garbage = {s for s in range(produced) if (s + 1) % 2 == 0}
    truncated = {s for s in range(produced) if (s + 1) % 5 == 0}
    assert sorted(e.seq for e in events if isinstance(e, p.Result)) == sorted(set(range(produced)) - lost)
    # each garbage burst and damaged frame is one bad frame, except that garbage right after a
    # truncated frame (which has no closing 0x00) joins it; the very last chunk may be unjudged
    expect = len(garbage) + len(lost) - len(garbage & truncated)
    assert expect - 1 <= stats["bad_frames"] <= expect
    assert set(stats["bad_reasons"]) <= {p.BAD_COBS, p.BAD_CRC, p.BAD_LENGTH}


def test_reboot_restarts_seq_under_a_new_boot_id(vib_model: DeviceModel) -> None:
    with EmulatedFleet(vib_model, rate=40, faults={0: Faults(reboot_every=0.4)}) as fleet, \
            open_link(fleet.endpoints[0], timeout=2) as link:
        events = [e for e in collect(link, 1.3) if isinstance(e, (p.Result, p.Hello))]
    boots = []
    for e in events:
        if not boots or boots[-1][0] != e.boot_id:
            boots.append((e.boot_id, []))
        if isinstance(e, p.Result):
            boots[-1][1].append(e.seq)
    assert len(boots) >= 3
    for _, seqs in boots[1:]:  # after each reboot: HELLO, then seq from 0
        assert seqs[:3] == [0, 1, 2]
    assert fleet.devices[0].stats.reboots >= 2


def test_silence_then_recovery(vib_model: DeviceModel) -> None:
    with EmulatedFleet(vib_model, rate=50, faults={0: Faults(silence_after=0.5, silence_for=0.6)}) as fleet, \
            open_link(fleet.endpoints[0], timeout=2) as link:
        stamps = [(e.timestamp_ms / 1000, e.seq) for e in collect(link, 1.5) if isinstance(e, p.Result)]
    assert any(t < 0.5 for t, _ in stamps) and any(t > 1.15 for t, _ in stamps)
    assert not [t for t, _ in stamps if 0.55 < t < 1.05]
    seqs = [s for _, s in stamps]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # a hung device loses no sequence numbers


def test_disconnect_refuses_then_comes_back(vib_model: DeviceModel) -> None:
    # away for 3 s: the refusal below must come while the device is away, also on a loaded machine
    with EmulatedFleet(vib_model, rate=20, faults={0: Faults(disconnect_after=0.3, disconnect_for=3.0)}) as fleet:
        with open_link(fleet.endpoints[0], timeout=2) as link:
            assert isinstance(link.recv(1.0), p.Hello)
            with pytest.raises(DeviceError, match="disconnected"):
                collect(link, 2.0)
        with pytest.raises(DeviceError, match="nothing is listening"):
            open_link(fleet.endpoints[0])
        with open_link(fleet.endpoints[0], timeout=2, connect_timeout=6.0) as link:
            assert isinstance(link.recv(1.0), p.Hello)
        assert fleet.devices[0].stats.disconnects == 1


def test_drift_switches_a_device_to_the_drifted_inputs(ae_model: DeviceModel) -> None:
    normal = {np.float32(o.score) for o in ae_model.normal_pool}
    drifted = {np.float32(o.score) for o in ae_model.drifted_pool}
    assert np.median(list(drifted)) > 2 * np.median(list(normal))  # the drift is visible in the scores
    with EmulatedFleet(ae_model, count=2, rate=50, faults={1: Faults(drift_after=0.4)}) as fleet, \
            open_link(fleet.endpoints[0], timeout=2) as l0, open_link(fleet.endpoints[1], timeout=2) as l1:
        time.sleep(0.8)
        steady = [e for e in collect(l0, 0.2) if isinstance(e, p.Result)]
        moved = [e for e in collect(l1, 0.2) if isinstance(e, p.Result)]
    assert steady and moved
    assert all(np.float32(r.score) in normal for r in steady)
    late = [r for r in moved if r.timestamp_ms > 500]
    assert late and all(np.float32(r.score) in drifted for r in late)
    assert all(r.label == p.LABEL_UNDECIDED for r in moved)  # a bare .tflite has no threshold


def test_pty_devices_greet_and_stream(vib_model: DeviceModel) -> None:
    with EmulatedFleet(vib_model, count=2, tcp_port=None, pty=True, rate=30) as fleet:
        assert all(path.startswith("/dev/pts/") for path in fleet.endpoints)
        with open_link(fleet.endpoints[1], timeout=2) as link:
            # opening a port flushes what the device printed before (its boot HELLO): ask again
            assert link.request(p.HelloReq(), p.Hello).device_id == "emu-001"
            events = collect(link, 0.5)
    seqs = [e.seq for e in events if isinstance(e, p.Result)]
    assert len(seqs) >= 5 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_bad_host_frames_get_error_answers_and_exit_ends_the_fleet(vib_model: DeviceModel) -> None:
    codes = []
    with EmulatedFleet(vib_model, rate=0, on_exit=codes.append) as fleet, \
            open_link(fleet.endpoints[0], timeout=2) as link:
        link.write_raw(b"\x00\x05\x80\x81\x00")
        assert link.request(p.HelloReq(), p.Error).code == p.ERR_BAD_FRAME
        with pytest.raises(DeviceError, match="error 3"):
            link.request(p.Input(760, bytes(16)), p.Ack)
        with pytest.raises(DeviceError, match="error 4"):
            link.request(p.Ack(1, 2), p.Ack)
        assert fleet.devices[0].stats.rx_errors == 1
        link.send(p.Exit(3))
        assert fleet.wait(3)
    assert codes == [3] and fleet.exit_code == 3


def test_output_never_exceeds_the_line_rate(vib_model: DeviceModel) -> None:
    baud = 9600
    with EmulatedFleet(vib_model, rate=float("inf"), baud=baud) as fleet, \
            open_link(fleet.endpoints[0], timeout=2) as link:
        collect(link, 1.0)
        elapsed = time.monotonic() - fleet.start_time
        received = link.stats()["bytes_in"]
    greeting = len(fleet.devices[0].greeting())
    assert 0 < received <= baud / 10 * elapsed + greeting + 64


def test_run_dir_results_carry_class_labels(trained_run) -> None:  # noqa: ANN001 - conftest fixture
    with EmulatedFleet(trained_run.run_dir, rate=0) as fleet, open_link(fleet.endpoints[0], timeout=2) as link:
        model = fleet.model
        assert model.info.task == "classifier" and len(model.info.classes) == 3
        x = np.random.default_rng(1).integers(-128, 128, model.input_bytes, dtype=np.int8)
        result = run_inference(link, x.tobytes(), 5)
    expect = tflm_run(model.tflite, x.reshape(1, *model.quant.in_shape))[0]
    assert result.output == tuple(expect) and result.label == int(np.argmax(expect))
    assert {o.label for o in model.normal_pool} <= {0, 1, 2}


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"count": 0}, "--count must be between"),
    ({"rate": -1}, "--rate must be >= 0"),
    ({"tcp_port": None}, "exactly one of"),
    ({"faults": {3: Faults()}}, "fault schedule for device 3"),
])
def test_fleet_rejects_bad_arguments(vib_model: DeviceModel, kwargs: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        EmulatedFleet(vib_model, **kwargs)
    with pytest.raises(InputError, match="garbage_every"):
        Faults(garbage_every=-1)


# ---- the command line ----

def start_emulate(*args: str) -> tuple[subprocess.Popen, list[str]]:
    """`tinyml emulate ARGS` in the background, and the endpoint lines it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "tinyml", "emulate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    count = int(args[args.index("--count") + 1]) if "--count" in args else 1
    lines = [proc.stdout.readline().strip() for _ in range(count)]
    return proc, lines


def test_cli_serves_devices_and_exits_with_the_exit_frame_code(shared: Path) -> None:
    proc, lines = start_emulate("--model", str(shared / "models" / "vib_cnn_int8.tflite"), "--count", "2",
                                "--tcp", "0", "--rate", "20", "--garbage-every", "3", "--fault-device", "1")
    try:
        assert [ln.split()[0] for ln in lines] == ["emu-000", "emu-001"]
        with open_link(lines[1].split()[1], timeout=3) as link:
            assert isinstance(link.recv(3), p.Hello)
            collect(link, 0.5)
            assert link.stats()["bad_frames"] >= 2
            link.send(p.Exit(7))
        assert proc.wait(10) == 7
    finally:
        proc.kill()
        proc.communicate()


def test_cli_stops_cleanly_on_sigterm_and_on_duration(shared: Path) -> None:
    model = str(shared / "models" / "feat_ae_int8.tflite")
    proc, lines = start_emulate("--model", model, "--pty")
    try:
        assert lines[0].startswith("emu-000 /dev/pts/")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.communicate()
    done = run_cli("emulate", "--model", model, "--tcp", "0", "--duration", "0.5s", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("emu-000 socket://127.0.0.1:")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_cli_esp_rom_option_serves_the_rom_loader(stop: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tinyml", "emulate", "--esp-rom", "--tcp", "0",
                             "--flash-size", "2MB"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "2048 KiB flash" in line and "socket://127.0.0.1:" in line
        proc.send_signal(stop)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.communicate()


@pytest.fixture
def busy_port() -> int:
    with listen_tcp(0) as s:
        yield s.getsockname()[1]


def test_cli_bad_inputs(tmp_path: Path, shared: Path, busy_port: int) -> None:
    model = str(shared / "models" / "vib_cnn_int8.tflite")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"this is not a flatbuffer at all, just text" * 10)
    cases = [
        (["--tcp", "0"], "--model is required"),
        (["--model", str(tmp_path / "missing.tflite"), "--tcp", "0"], "model not found"),
        (["--model", str(corrupt), "--tcp", "0"], "not a TensorFlow Lite model"),
        (["--model", str(tmp_path), "--tcp", "0"], "not a tinyml run directory"),
        (["--model", model, "--tcp", str(busy_port)], f"cannot listen on 127.0.0.1:{busy_port}"),
        (["--model", model], "exactly one of --tcp PORT and --pty"),
        (["--model", model, "--tcp", "0", "--pty"], "exactly one of"),
        (["--model", model, "--tcp", "0", "--rate", "fast"], "--rate 'fast' is not a number"),
        (["--model", model, "--tcp", "0", "--count", "2", "--drift-device", "2"], "device index 2 does not exist"),
        (["--model", model, "--tcp", "0", "--reboot-every", "soon"], "is not a duration"),
        (["--model", model, "--tcp", "0", "--garbage-every", "-2"], "garbage_every must be >= 0"),
        (["--esp-rom", "--tcp", "0", "--flash-size", "huge"], "is not a size"),
    ]
    for args, needle in cases:
        assert_clean_error(run_cli("emulate", *args, timeout=60), needle)


def test_pty_disconnect_closes_the_port_and_announces_a_new_one(vib_model: DeviceModel) -> None:
    announced: list[str] = []
    faults = {0: Faults(disconnect_after=0.3, disconnect_for=0.3)}
    with EmulatedFleet(vib_model, tcp_port=None, pty=True, rate=20, faults=faults,
                       announce=announced.append) as fleet:
        old = fleet.endpoints[0]
        with open_link(old, timeout=2) as link:
            assert link.request(p.HelloReq(), p.Hello).device_id == "emu-000"
            with pytest.raises(DeviceError, match="disconnected"):
                collect(link, 2.0)
        deadline = time.monotonic() + 3
        while not announced and time.monotonic() < deadline:
            time.sleep(0.05)
        assert announced == [f"emu-000 {fleet.endpoints[0]}"]
        with open_link(fleet.endpoints[0], timeout=2) as link:
            assert link.request(p.HelloReq(), p.Hello).device_id == "emu-000"


def test_tinyml_validate_passes_against_an_emulated_device(shared: Path, tmp_path: Path) -> None:
    model = shared / "models" / "feat_ae_int8.tflite"
    with EmulatedFleet(model, rate=5) as fleet:  # results in run mode too: validate must pick its own
        proc = run_cli("validate", "--board", "qemu-mps2-an386", "--model", str(model), "--port",
                       fleet.endpoints[0], "--limit", "12", "--report", str(tmp_path / "report.json"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["inputs"] == 12 and report["mismatches"] == 0


def test_anomaly_run_dir_decides_by_the_threshold(shared: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "model_int8.tflite").write_bytes((shared / "models" / "feat_ae_int8.tflite").read_bytes())
    (run / "model.json").write_text(json.dumps({"task": "anomaly", "classes": ["normal", "runaway"],
                                                "threshold": 1.5}))
    # one temperature channel, 64-sample windows, standardised: the AE's 64 inputs
    (run / "preprocess.json").write_text(json.dumps({"mode": "raw", "window": 64, "channels": ["temp"],
                                                     "fs": 1 / 60, "mean": [40.0], "std": [5.0]}))
    # what `tinyml quantize` records: the int8 model it wrote and what it was made from
    (run / "quantization.json").write_text(json.dumps({
        "wrote": {"model_int8.tflite": sha256_file(run / "model_int8.tflite")},
        "made_from": {"preprocess.json": sha256_file(run / "preprocess.json")}}))
    model = DeviceModel(run)
    outcomes = model.normal_pool + model.drifted_pool
    assert {o.label for o in outcomes} == {0, 1}  # synthetic temperature windows give both decisions
    assert all(o.label == int(o.score > 1.5) for o in outcomes)
    with EmulatedFleet(model, rate=0) as fleet, open_link(fleet.endpoints[0], timeout=2) as link:
        x = np.full(64, 100, np.int8)  # far from anything normal
        result = run_inference(link, x.tobytes(), 1)
    q = model.quant
    mse = float(np.mean((dequantize(x, q.in_scale, q.in_zp)
                         - dequantize(np.array(result.output, np.int8), q.out_scale, q.out_zp)) ** 2))
    assert result.score == pytest.approx(mse, rel=1e-6) and result.label == int(mse > 1.5)
