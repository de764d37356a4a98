"""Sensors as data: every data file loads and names an existing driver, plans are checked against
the board and the model (rates, channels, buses, options) with clear refusals, [sensor] in
tinyml.toml, and the HEARTBEAT sensor fields keep the short form readable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyml.device import protocol as p
from tinyml.errors import InputError
from tinyml.firmware.boards import list_boards, load_board
from tinyml.firmware.sensors import (
    list_sensors,
    load_sensor,
    parse_options,
    plan_sensor,
    sensor_config_header,
)
from tinyml.project.config import read_project

TEMP = {"mode": "features", "window": 32, "channels": ["temp"], "fs": 1 / 60}


def vib(fs: float, channels: tuple[str, ...] = ("x", "y", "z")) -> dict:
    return {"mode": "raw", "window": 256, "channels": list(channels), "fs": fs}


def test_every_sensor_file_loads_with_its_driver() -> None:
    names = list_sensors()
    assert {"tmp105", "tmp102", "replay"} <= set(names)
    for name in names:
        s = load_sensor(name)
        assert s.name == name and s.verified, name


def test_every_board_bus_names_an_existing_bus_file() -> None:
    from tinyml.firmware.sensors import buses_dir

    for name in list_boards():
        for bus_name, bus in load_board(name).buses.items():
            assert (buses_dir() / f"{bus['driver']}.c").is_file(), (name, bus_name)


def test_polled_sensor_rate_and_header() -> None:
    plan = plan_sensor(load_sensor("tmp102"), load_board("qemu-mps2-an386"), TEMP, {"speedup": "120"})
    assert plan.rate_hz == pytest.approx(2.0) and plan.rate_code == 0xA0  # the 4 Hz conversion rate
    header = sensor_config_header(plan)
    assert "#define TINYML_SENSOR_PERIOD_US 500000u" in header
    assert "#define TINYML_BUS_BASE 0x4002a000u" in header and "#define TINYML_SENSOR_I2C_ADDRESS 0x48u" in header
    with pytest.raises(InputError, match="converts at most 8 times a second"):
        plan_sensor(load_sensor("tmp102"), load_board("qemu-mps2-an386"), TEMP, {"speedup": "600"})


@pytest.mark.parametrize(("options", "needle"), [
    ({"address": "0x40"}, "cannot answer at I2C address 0x40"),
    ({"address": "x"}, "is not a number"),
    ({"bus": "spi9"}, "has no bus 'spi9'"),
    ({"unit": "K"}, "cannot report in 'K'"),
    ({"range": "4"}, "has no selectable range"),
    ({"speedup": "-1"}, "speedup must be positive"),
    ({"speedup": "nan"}, "not a finite number"),
    ({"channels": "temp,temp"}, "names 2 channel(s)"),
])
def test_bad_options_are_refused(options: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        plan_sensor(load_sensor("tmp105"), load_board("qemu-mps2-an386"), TEMP, options)


def test_option_syntax() -> None:
    assert parse_options(["range=4", "unit = m/s2"]) == {"range": "4", "unit": "m/s2"}
    with pytest.raises(InputError, match="is not KEY=VALUE"):
        parse_options(["range"])
    with pytest.raises(InputError, match="did you mean 'range'"):
        parse_options(["rang=4"])
    with pytest.raises(InputError, match="unknown sensor 'tmp1o5'; did you mean 'tmp105'"):
        load_sensor("tmp1o5")
    with pytest.raises(InputError, match="is not a sensor"):
        load_sensor("../boards/x")


def test_replay_takes_the_models_channels() -> None:
    plan = plan_sensor(load_sensor("replay"), load_board("qemu-riscv32"), vib(2560.0), {})
    assert plan.channel_names == ["x", "y", "z"] and plan.bus_name == "host"
    assert "#define TINYML_SENSOR_NATIVE_CHANNELS 3u" in sensor_config_header(plan)


def test_sensor_section_in_tinyml_toml(tmp_path: Path) -> None:
    base = ('[project]\nname = "t"\n[data]\nsynth = "temperature"\n[train]\nmodel = "autoencoder"\n'
            '[firmware]\nboard = "qemu-mps2-an386"\n')
    path = tmp_path / "tinyml.toml"
    path.write_text(base + '[sensor]\nname = "tmp105"\nspeedup = 180\n')
    project = read_project(path)
    assert (project.sensor, project.sensor_options) == ("tmp105", {"speedup": "180"})
    path.write_text(base + '[sensor]\nname = "tmp107"\n')
    with pytest.raises(InputError, match=r"tinyml.toml:\d+: unknown sensor 'tmp107'"):
        read_project(path)
    path.write_text(base + '[sensor]\nname = "tmp105"\nsped = 3\n')
    with pytest.raises(InputError, match="unknown key 'sped' in \\[sensor\\]"):
        read_project(path)
    path.write_text(base.replace('[firmware]\nboard = "qemu-mps2-an386"\n', "") + '[sensor]\nname = "tmp105"\n')
    with pytest.raises(InputError, match="needs a \\[firmware\\] section"):
        read_project(path)


def test_heartbeat_sensor_fields_are_optional_and_versioned_by_length() -> None:
    short = p.Heartbeat(1, 2, 3, 4)
    assert len(short.payload()) == 16 and p.Decoder().feed(p.encode(short)) == [short]
    full = p.Heartbeat(1, 2, 3, 4, sensor_reads=5, sensor_errors=6, sensor_status=1)
    assert len(full.payload()) == 25 and p.Decoder().feed(p.encode(full)) == [full]
    assert "sensor_reads" not in p.message_to_dict(short)
    with pytest.raises(InputError, match="come together"):
        p.Heartbeat(1, 2, 3, 4, sensor_reads=5).payload()
    # a body with a partial sensor tail is a bad frame, not a short heartbeat
    body = bytes([1, 7]) + full.payload()[:20]
    frame = b"\x00" + p.cobs_encode(body + p.crc16(body).to_bytes(2, "little")) + b"\x00"
    assert p.Decoder().feed(frame) == [p.BadFrame(p.BAD_LENGTH, len(body) + 2)]


def test_replay_message_limits() -> None:
    msg = p.Replay.of(7, [1.5, -2.0])
    assert p.Decoder().feed(p.encode(msg)) == [msg] and msg.values == (1.5, -2.0)
    with pytest.raises(InputError, match="1 to 126 float32 values"):
        p.encode(p.Replay.of(0, [0.0] * 127))
    with pytest.raises(InputError, match="1 to 126"):
        p.encode(p.Replay(0, b"\x00\x00\x00"))
