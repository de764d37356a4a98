"""Sensor drivers without an emulated chip, against register-level models of the chips written
from their datasheets (tests/sensors/*_model.c) behind the bus API: the firmware's own driver and
sampler run on the host, configure the chip's rate and range registers, drain its FIFO and
deliver windows in the training data's units and channel order; a missing chip, a wrong
identity register and a FIFO overrun are reported as on the device."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cbuild import host_compile
from tinyml.firmware.boards import load_board
from tinyml.firmware.sensors import load_sensor, plan_sensor, sensor_config_header, sensors_dir
from tinyml.paths import template_dir

HERE = Path(__file__).parent / "sensors"
GNU11 = ("-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1")  # the drivers use GNU C as the firmware does
X = [0.0, 0.35, 0.5, 0.35, 0.0, -0.35, -0.5, -0.35]  # sensor_harness.c signal_at


def signal(k: int) -> list[float]:
    return [X[k % 8], -0.25, 1.0 + 0.0625 * (k % 3)]


def build(tmp: Path, sensor: str, board: str, fs: float, channels: list[str], options: dict, chip: str) -> Path:
    plan = plan_sensor(load_sensor(sensor), load_board(board),
                       {"mode": "raw", "window": 16, "channels": channels, "fs": fs}, options)
    (tmp / "tinyml_sensor_config.h").write_text(sensor_config_header(plan))
    exe = tmp / "harness"
    sources = [sensors_dir() / "tinyml_sensor.c", sensors_dir() / f"{plan.sensor.driver}.c",
               HERE / "bus_model.c", HERE / f"{chip}_model.c", HERE / "sensor_harness.c"]
    host_compile(sources, exe, flags=GNU11, extra=["-g"], sanitize=True, libs=["-lm"],
                 includes=[tmp, sensors_dir(), template_dir("common"), HERE])
    return exe


def run(exe: Path, window: int, channels: int, step_ms: int, steps: int, *fault: str) -> dict:
    proc = subprocess.run([str(exe), str(window), str(channels), str(step_ms), str(steps), *fault],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out: dict = {"windows": [], "errors": [], "rate": None, "lost": []}
    for line in proc.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "WINDOW":
            values = rest.split()
            out["windows"].append((int(values[0]), [float(v) for v in values[1:]]))
        elif kind == "ERROR":
            out["errors"].append(rest)
        elif kind == "LOST":
            out["lost"].append(int(rest))
        elif kind == "RATE":
            out["rate"] = float(rest)
        elif kind == "STATS":
            out["reads"], out["errors_count"], out["status"] = map(int, rest.split())
    return out


CASES = {  # name: sensor, board, bus option, chip model, fs, lsb in g
    "adxl345-i2c": ("adxl345", "nucleo-f446re", "i2c1", "adxl345", 100.0, 1 / 256),
    "adxl345-spi": ("adxl345", "nucleo-f446re", "spi1", "adxl345", 400.0, 1 / 256),
    "mpu6050": ("mpu6050", "nucleo-f446re", "i2c1", "mpu6050", 200.0, 1 / 8192),
    "lis3dh": ("lis3dh", "nucleo-f446re", "i2c1", "lis3dh", 400.0, 0.002),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_driver_reads_the_fifo_at_the_model_rate_in_training_units_and_order(case: str, tmp_path: Path) -> None:
    sensor, board, bus, chip, fs, lsb = CASES[case]
    # the model was trained on z, x (m/s^2): the driver must reorder and scale
    exe = build(tmp_path, sensor, board, fs, ["z", "x"], {"bus": bus, "unit": "m/s2", "channels": "z,x"}, chip)
    out = run(exe, 16, 2, 1, 1000)  # one simulated second, the firmware polls every ms
    assert out["rate"] == pytest.approx(fs)
    assert out["errors"] == [] and out["status"] == 0
    assert out["reads"] == pytest.approx(fs, abs=2)          # every sample of the second, none twice
    g = 9.80665
    for w, (_, values) in enumerate(out["windows"]):
        for t in range(16):
            want = signal(16 * w + t)
            assert values[2 * t] == pytest.approx(want[2] * g, abs=lsb * g * 1.01), (w, t)
            assert values[2 * t + 1] == pytest.approx(want[0] * g, abs=lsb * g * 1.01), (w, t)


@pytest.mark.parametrize("case", sorted(CASES))
def test_missing_chip_and_wrong_identity_are_reported(case: str, tmp_path: Path) -> None:
    sensor, board, bus, chip, fs, _ = CASES[case]
    exe = build(tmp_path, sensor, board, fs, ["x", "y", "z"], {"bus": bus}, chip)
    absent = run(exe, 16, 3, 10, 250, "absent")   # 2.5 s: the driver retries every second
    assert absent["windows"] == [] and absent["status"] == 1 and absent["errors_count"] == 3
    assert absent["lost"]  # a sliding run loop reads its next window whole
    spi = bus.startswith("spi")
    assert absent["errors"] == [f"{sensor}: no answer on {bus} (MISO reads 0xff)" if spi
                                else f"{sensor}: no answer on {bus} at {load_sensor(sensor).i2c_address:#04x} (NACK)"]
    wrong = run(exe, 16, 3, 10, 50, "wrong_id")
    assert wrong["status"] == 2 and len(wrong["errors"]) == 1
    assert wrong["errors"][0].startswith(f"{sensor}: identity register reads 0x")
    assert wrong["errors"][0].endswith(f", expected {load_sensor(sensor).identity['value']:#04x}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_fifo_overrun_restarts_the_window_without_a_gap(case: str, tmp_path: Path) -> None:
    sensor, board, bus, chip, fs, lsb = CASES[case]
    exe = build(tmp_path, sensor, board, fs, ["x"], {"bus": bus}, chip)
    depth = 170 if sensor == "mpu6050" else 32
    stall = math.ceil((depth + 8) / fs * 1000)            # long enough to overflow the FIFO
    out = run(exe, 16, 1, 1, 3000, f"stall_ms={stall}@500")
    assert out["errors"] == [f"{sensor}: FIFO overrun (samples lost)" if sensor != "mpu6050"
                             else f"{sensor}: FIFO overflow (samples lost)"]
    assert out["errors_count"] == 1 and out["status"] == 0    # windows complete again afterwards
    assert len(out["lost"]) == 1 and 500 + stall <= out["lost"][0] < 500 + stall + 10  # the run loop restarts
    after = [(t, v) for t, v in out["windows"] if t > 500 + stall]
    assert len(after) >= 3
    for _, values in after:  # consecutive samples of the signal: no gap inside a window
        k0 = next(k for k in range(8) if all(abs(values[i] - X[(k + i) % 8]) <= lsb * 1.01 for i in range(16)))
        assert k0 is not None


@pytest.mark.parametrize("case", ["adxl345-i2c", "lis3dh"])
def test_sliding_windows_restarted_mid_hop_hold_only_consecutive_samples(case: str, tmp_path: Path) -> None:
    """A sliding run loop (a window, then a hop's new frames) that restarts while a hop is half read asks for a whole
    window into another place: the sampler must not count the frames it took for the hop given up."""
    sensor, board, bus, chip, fs, lsb = CASES[case]
    exe = build(tmp_path, sensor, board, fs, ["x", "z"], {"bus": bus, "channels": "x,z"}, chip)
    out = run(exe, 16, 2, 1, 20000, "hop=4", "restart_every=397")  # 50 restarts, at every phase of a hop
    assert out["errors"] == [] and len(out["windows"]) > 100
    period = 24  # X repeats every 8 samples, z every 3
    for t, values in out["windows"]:
        frames = [(values[2 * i], values[2 * i + 1]) for i in range(16)]
        assert any(all(abs(x - signal(k + i)[0]) <= lsb * 1.01 and abs(z - signal(k + i)[2]) <= lsb * 1.01
                       for i, (x, z) in enumerate(frames)) for k in range(period)), t


def test_tmp102_conversion_rate_and_identity(tmp_path: Path) -> None:
    exe = build(tmp_path, "tmp102", "nucleo-f446re", 1 / 60, ["temp"], {"speedup": "120"}, "tmp10x")
    out = run(exe, 4, 1, 10, 410)  # 4.1 s at 2 samples/s from 0.5 s after start, the chip converting at 4 Hz
    assert out["rate"] == 4.0 and out["errors"] == []
    assert len(out["windows"]) == 2 and out["reads"] == 8
    for _, values in out["windows"]:
        assert all(v == pytest.approx(21.5, abs=0.7) and (v * 16) == int(v * 16) for v in values)
    wrong = run(exe, 4, 1, 10, 50, "wrong_id")
    assert wrong["errors"] == ["tmp102: identity register reads 0x7ff0, expected 0x5000"]


@pytest.mark.parametrize(("sensor", "fs", "bus", "needle"), [
    ("adxl345", 1600.0, "i2c1", "on i2c (i2c1) can be read at most at 800 Hz"),
    ("adxl345", 1000.0, "spi1", "its FIFO runs at 6.25, 12.5"),
    ("mpu6050", 300.0, "i2c1", "1000 Hz / (1 + d)"),
    ("lis3dh", 1000.0, "i2c1", "nearest: 1344 Hz, 400 Hz"),
    ("mpu6050", 100.0, "spi1", "spi1 of nucleo-f446re is spi; sensor mpu6050 speaks i2c"),
])
def test_rates_and_buses_the_chip_cannot_do_are_refused(sensor: str, fs: float, bus: str, needle: str) -> None:
    from tinyml.errors import InputError

    with pytest.raises(InputError) as info:
        plan_sensor(load_sensor(sensor), load_board("nucleo-f446re"),
                    {"mode": "raw", "window": 16, "channels": ["x", "y", "z"], "fs": fs}, {"bus": bus})
    assert needle in info.value.one_line()


def test_mpu6050_low_pass_follows_the_rate(tmp_path: Path) -> None:
    for fs, code in ((1000.0, 1), (200.0, 2), (50.0, 4), (10.0, 6)):
        plan = plan_sensor(load_sensor("mpu6050"), load_board("nucleo-f446re"),
                           {"mode": "raw", "window": 16, "channels": ["x"], "fs": fs}, {})
        assert plan.filter_code == code, fs
        assert plan.rate_code == round(1000 / fs) - 1


def test_gcc_is_here() -> None:
    assert shutil.which("gcc")


@pytest.mark.parametrize(("sensor", "board", "step"), [("nrf52-temp", "nrf52840-dk", 0.0),
                                                       ("rp2040-temp", "rpi-pico", 3.3 / 4096 / 0.001721)])
def test_onchip_temperature_drivers_against_register_models(sensor: str, board: str, step: float,
                                                            tmp_path: Path) -> None:
    plan = plan_sensor(load_sensor(sensor), load_board(board),
                       {"mode": "features", "window": 4, "channels": ["temp"], "fs": 1 / 60}, {"speedup": "600"})
    (tmp_path / "tinyml_sensor_config.h").write_text(sensor_config_header(plan))
    exe = tmp_path / "harness"
    sources = [sensors_dir() / "tinyml_sensor.c", sensors_dir() / f"{plan.sensor.driver}.c",
               HERE / "bus_model.c", HERE / "onchip_model.c", HERE / "sensor_harness.c"]
    host_compile(sources, exe, flags=GNU11, libs=["-lm"],
                 extra=["-DTINYML_MMIO(addr)=(*nrf_temp_reg(addr))", "-include", "stdint.h",
                        "-include", str(HERE / "nrf_temp_model.h")],
                 includes=[tmp_path, sensors_dir(), template_dir("common"), HERE, HERE / "sdk"])
    out = run(exe, 4, 1, 10, 210)  # 2.1 s at 10 samples/s, the first 0.1 s after start
    assert out["errors"] == [] and out["status"] == 0 and out["reads"] == 20
    assert len(out["windows"]) == 5
    for _, values in out["windows"]:  # the k-th measurement is 21.5 + 0.25 (k % 4), to half an ADC step
        assert values == pytest.approx([21.5, 21.75, 22.0, 22.25], abs=step / 2 + 1e-4)


SDK_TEMPLATES = {"esp-idf", "pico-sdk"}


def _served(sensor: str) -> list[tuple[str, str]]:
    """(board, bus) pairs the sensor can be rendered for: every board bus of its kind, or its on-chip board."""
    from tinyml.firmware.boards import list_boards

    s = load_sensor(sensor)
    pairs = []
    for name in list_boards():
        board = load_board(name)
        if "onchip" in s.buses and board.hardware.get("onchip_temperature") == s.onchip:
            pairs.append((name, "onchip"))
        pairs += [(name, bus) for bus, spec in board.buses.items() if spec["kind"] in s.buses]
    return pairs


CROSS = [(s, b, bus) for s in ("adxl345", "mpu6050", "lis3dh", "tmp102", "tmp105", "nrf52-temp", "rp2040-temp",
                               "esp32-temp") for b, bus in _served(s)]


@pytest.mark.cross_compiler
@pytest.mark.parametrize(("sensor", "board_name", "bus"), CROSS, ids=[f"{s}-{b}-{x}" for s, b, x in CROSS])
def test_driver_and_bus_compile_for_every_core_they_serve(sensor: str, board_name: str, bus: str,
                                                          tmp_path: Path) -> None:
    """Warning-free with the board's own compiler and flags; the SDK boards against the stand-in
    headers in tests/sensors/sdk (their real SDKs are not installable here)."""
    board = load_board(board_name)
    if shutil.which(board.cc) is None:
        pytest.skip(f"{board.cc} not installed")
    s = load_sensor(sensor)
    fs = {"acceleration": max(r for r, _ in s.rate_choices()) / 8}.get(s.kind, 1 / 60)
    fs = min((r for r, _ in s.rate_choices() if r >= fs), default=fs) if s.sampling == "fifo" else fs
    options = {} if bus == "onchip" else {"bus": bus}
    plan = plan_sensor(s, board, {"mode": "raw", "window": 16, "channels": list(s.channels)[:3], "fs": fs}, options)
    (tmp_path / "tinyml_sensor_config.h").write_text(sensor_config_header(plan))
    from tinyml.firmware.sensors import sensor_sources

    sdk = [HERE / "sdk"] if board.template in SDK_TEMPLATES else []
    for source in [f for f in sensor_sources(plan) if f.suffix == ".c"]:
        host_compile([source], "/dev/null", obj=True, cc=board.cc, includes=[tmp_path, sensors_dir(),
                     template_dir("common"), *sdk], flags=(*board.cflags, "-std=gnu11", "-Os", "-Wall", "-Wextra",
                                                          "-Werror", "-ffreestanding"))
