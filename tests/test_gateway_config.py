"""Bad gateway configuration and options: one clear line each, non-zero exit, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import assert_clean_error, run_cli
from tinyml.device.endpoints import listen_tcp
from tinyml.errors import InputError
from tinyml.gateway.config import load, parse_mqtt_url

PORT = ["--port", "socket://127.0.0.1:9"]


@pytest.mark.parametrize("text, needle", [
    ("site = 'a'\n[rules\n", "not valid toml"),
    ("colour = 'red'\n", "unknown keys"),
    ("[rules]\nanomaly_k = 60\n", "bad [rules]"),
    ("[rules]\nanomaly_kk = 2\n", "unknown [rules] keys"),
    ("[drift]\nmethod = 'chi2'\n", "bad [drift]"),
    ("[mqtt]\nurl = 'http://x'\n", "bad mqtt url"),
    ("[mqtt]\nurl = 'mqtt://h'\nca = 'missing.pem'\n", "not found"),
    ("[mqtt]\nurl = 'mqtt://h'\ncolour = 1\n", "unknown [mqtt] keys"),
    ("[mqtt]\nurl = 'mqtt://h'\nprotocol = '4'\n", "unsupported mqtt protocol"),
    ("[retention]\nmax_db_mb = -1\n", "bad number"),
    ("[[models]]\ndevices = ['a']\n", "needs `run`"),
    ("[[models]]\nrun = 'nowhere'\ndevices = ['a']\n", "not found"),
    ("[retention]\nmax_age_days = 'old'\n", "bad number"),
    ("http = '0.0.0.0:8080'\n", "not a loopback"),
    ("site = 'a/b'\n", "bad site name"),
])
def test_bad_config_files_are_refused_with_one_line(tmp_path, text, needle):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(text)
    with pytest.raises(InputError) as err:
        load(cfg, ports=("socket://127.0.0.1:9",))
    line = err.value.one_line()
    assert needle in line.lower() and "(hint: " in line and "\n" not in line


def test_a_bad_config_file_stops_the_command_with_one_line(tmp_path):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text("[rules]\nanomaly_k = 60\n")
    proc = run_cli("gateway", "run", *PORT, "--db", str(tmp_path / "g.db"), "--config", str(cfg), timeout=60)
    assert_clean_error(proc, "bad [rules]")
    assert not (tmp_path / "g.db").exists()  # refused before touching anything


@pytest.mark.parametrize("args, needle", [
    ([], "no serial port"),
    (["--port", "rfc2217://host:1"], "unsupported port url"),
    (["--port", "socket://nohostport"], "bad port url"),
    ([*PORT, "--config", "/nonexistent/gateway.toml"], "not found"),
    ([*PORT, "--http", "10.0.0.1:80"], "not a loopback"),
    ([*PORT, "--mqtt", "mqtt://user:hunter2@host:notaport"], "bad port in mqtt url"),
    ([*PORT, "--db", "/proc/gateway.db"], "not writable"),
])
def test_bad_options_are_refused_with_one_line(tmp_path, args, needle):
    proc = run_cli("gateway", "run", *args, cwd=tmp_path, timeout=60)
    assert_clean_error(proc, needle)
    assert "hunter2" not in proc.stderr + proc.stdout


def test_http_port_in_use_is_a_clear_error(tmp_path):
    with listen_tcp(0) as busy:
        port = busy.getsockname()[1]
        proc = run_cli("gateway", "run", *PORT, "--db", str(tmp_path / "g.db"), "--http", f"127.0.0.1:{port}",
                       timeout=60)
    assert_clean_error(proc, "cannot serve http")


def test_model_json_routes_devices_to_their_meaning(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.json").write_text(json.dumps({"task": "anomaly", "classes": ["normal", "anomaly"],
                                                "threshold": 0.4, "score_baseline": [0.1, 0.2]}))
    cfg = tmp_path / "gateway.toml"
    cfg.write_text("site = 'plant'\nports = ['socket://127.0.0.1:5']\n[[models]]\nrun = 'run'\n"
                   "devices = ['fan-*']\n[[models]]\nrun = 'run/model.json'\nmodel_hash = 'AABB'\n")
    config = load(cfg)
    assert config.site == "plant" and config.ports == ("socket://127.0.0.1:5",)
    assert config.model_for("fan-7", "").threshold == 0.4
    assert config.model_for("pump-1", "aabb").score_baseline == (0.1, 0.2)
    assert config.model_for("pump-1", "cc").task == "unknown"


def test_mqtt_password_comes_from_url_or_environment_and_is_never_in_repr(monkeypatch):
    monkeypatch.setenv("TINYML_MQTT_PASSWORD", "s3cret-env")
    cfg = parse_mqtt_url("mqtt://gw@127.0.0.1:1884")
    assert (cfg.username, cfg.password, cfg.port) == ("gw", "s3cret-env", 1884)
    assert "s3cret" not in repr(cfg) and "s3cret" not in cfg.redacted()
    cfg = parse_mqtt_url("mqtts://gw:p%40ss@broker")
    assert (cfg.password, cfg.port, cfg.tls) == ("p@ss", 8883, True)


def test_the_gateway_imports_no_training_stack():
    code = ("import sys, tinyml.cli.gateway, tinyml.gateway.service, tinyml.gateway.status; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'matplotlib', 'scipy', 'tflite_micro', 'ai_edge_litert')); print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
