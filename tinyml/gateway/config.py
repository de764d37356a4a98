"""The gateway's settings: gateway.toml merged with command-line options, checked up front.

A bad file or value is refused at start with one line that names the key, so a gateway
never runs half-configured. What a result means (class names, which label is an anomaly,
the score threshold and the drift baseline) comes from a training run's model.json
(``tinyml.rundir.Labels``), mapped to devices by device-id glob or by model hash.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import tomllib

from tinyml.errors import InputError
from tinyml.gateway.clock import DevicesConfig, parse_zone
from tinyml.gateway.drift import DriftConfig
from tinyml.gateway.evidence import EvidenceConfig
from tinyml.gateway.identity import AUTH_MODES, AuthConfig
from tinyml.gateway.limits import IdLimits
from tinyml.gateway.rules import RuleConfig
from tinyml.gateway.shards import IngestConfig
from tinyml.gateway.store import RetentionLimits
from tinyml.rundir import Labels, read_labels

PASSWORD_ENV = "TINYML_MQTT_PASSWORD"
RETENTION_KEYS = {"max_age_days", "max_results", "max_db_mb"}
TOP_KEYS = {"site", "db", "ports", "http", "baud", "mqtt", "retention", "rules", "drift", "models", "evidence",
            "limits", "auth", "ingest", "devices"}
AUTH_KEYS = {"keys", "mode", "ports"}
MQTT_KEYS = {"url", "username", "password", "password_env", "tls", "ca", "cert", "key", "insecure",
             "client_id", "keepalive", "topic_prefix", "protocol", "batch"}
MQTT_PROTOCOLS = ("5", "3.1.1")


@dataclass(frozen=True)
class ModelRoute:
    info: Labels
    devices: tuple[str, ...] = ()
    model_hash: str = ""

    def matches(self, device: str, model_hash: str) -> bool:
        if self.model_hash and model_hash.lower() == self.model_hash.lower():
            return True
        return any(fnmatch.fnmatchcase(device, pattern) for pattern in self.devices)


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False
    client_id: str = ""
    keepalive: int = 30
    topic_prefix: str = "tinyml"
    protocol: str = "5"  # "3.1.1" for brokers without MQTT 5
    batch: bool = False  # one .../results message per device per commit (tinyml/gateway/batching.py)

    def redacted(self) -> str:
        """The broker address for logs: never the password."""
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    ports: tuple[str, ...]
    db: Path = Path("gateway.db")
    site: str = "default"
    http: tuple[str, int] | None = None
    baud: int = 115200
    mqtt: MqttConfig | None = None
    retention: RetentionLimits = field(default_factory=RetentionLimits)
    rules: RuleConfig = field(default_factory=RuleConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    models: tuple[ModelRoute, ...] = ()
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    limits: IdLimits = field(default_factory=IdLimits)  # device ids per port, in total, new per minute
    auth: AuthConfig = field(default_factory=AuthConfig)  # key store and per-port policy (identity.py)
    ingest: IngestConfig = field(default_factory=IngestConfig)  # reader processes (shards.py)
    devices: DevicesConfig = field(default_factory=DevicesConfig)  # the clock TIME frames give (clock.py)

    def __post_init__(self) -> None:
        silent = self.rules.silent_seconds
        if silent is not None and self.limits.state_expiry_s <= silent:
            raise InputError(f"[limits] state_expiry_s = {self.limits.state_expiry_s:g} must be longer than "
                             f"[rules] silent_seconds = {silent:g}",
                             "an expired device could not be reported silent; raise state_expiry_s")
        for port, _ in self.auth.ports:
            if port not in self.ports:
                raise InputError(f"[auth.ports] names {port!r}, which is not one of the gateway's ports",
                                 "use the port exactly as in ports = [...] or --port")

    def keys(self) -> dict[str, bytes]:
        """The device keys of ``[auth] keys`` (none without a key store); refuses a loose or bad file."""
        from tinyml.device.keystore import read_keys

        return {} if self.auth.keys is None else read_keys(self.auth.keys)

    def model_for(self, device: str, model_hash: str) -> Labels:
        for route in self.models:
            if route.matches(device, model_hash):
                return route.info
        return Labels()


def _positive(value: Any, scale: float, kind: type = float) -> Any:
    """A retention limit in its unit, or None (absent or 0: no limit)."""
    if value in (None, 0):
        return None
    if float(value) < 0:
        raise ValueError(f"{value} is negative")
    return kind(float(value) * scale)


def route_for_run(path: Path, *, every_device: bool = False) -> ModelRoute:
    """A route for the devices running RUN's int8 model (matched by HELLO model hash), or for
    every device when ``every_device``: class names and thresholds straight from a run directory."""
    from tinyml.rundir import MODEL_INT8, open_model
    from tinyml.signing import sha256_file

    info = read_labels(path)
    run = open_model(path, bare=False)
    model_hash = ""
    if (run.run_dir / MODEL_INT8).is_file():
        model_hash = sha256_file(run.tflite_file())[:16]  # a stale int8 model is refused, not matched
    if not model_hash and not every_device:
        raise InputError(f"{run.run_dir} has no {MODEL_INT8} to match devices by",
                         "quantize the run first, or give one --model only (it then serves every device)")
    return ModelRoute(info, ("*",) if every_device else (), model_hash)


def project_model(folder: Path) -> Path | None:
    """The trained model of FOLDER/tinyml.toml (``tinyml run``'s OUT/model), if there is one."""
    from tinyml.project.config import PROJECT_FILE, read_project
    from tinyml.rundir import MODEL_JSON

    if not (folder / PROJECT_FILE).is_file():
        return None
    from tinyml.project.stages import run_dir

    try:
        path = run_dir(read_project(folder))
    except InputError:
        return None  # a broken project file is `tinyml run`'s to report, not the gateway's
    return path if (path / MODEL_JSON).is_file() else None


def parse_http(value: str) -> tuple[str, int]:
    """``127.0.0.1:PORT`` or ``PORT``; only loopback addresses are accepted."""
    host, _, port = value.rpartition(":")
    host = host or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        raise InputError(f"HTTP endpoint {value!r} is not a loopback address",
                         "the status endpoint binds to 127.0.0.1 only; put a reverse proxy in front")
    try:
        number = int(port)
    except ValueError:
        raise InputError(f"bad HTTP port in {value!r}", "use 127.0.0.1:8080") from None
    if not 0 <= number <= 65535:
        raise InputError(f"HTTP port {number} out of range", "use 1..65535 (0 picks a free one)")
    return host.strip("[]"), number


def parse_mqtt_url(url: str, options: dict[str, Any] | None = None) -> MqttConfig:
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...``, plus [mqtt] options."""
    opts = dict(options or {})
    unknown = set(opts) - MQTT_KEYS
    if unknown:
        raise InputError(f"unknown [mqtt] keys {sorted(unknown)}", f"known keys: {sorted(MQTT_KEYS)}")
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise InputError(f"bad MQTT URL {_redact_url(url)!r}", "use mqtt://host:1883 or mqtts://host:8883")
    tls = parts.scheme == "mqtts" or bool(opts.get("tls", False))
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise InputError(f"bad port in MQTT URL {_redact_url(url)!r}", "use mqtt://host:1883") from None
    password = unquote(parts.password) if parts.password else opts.get("password")
    password_env = opts.get("password_env", PASSWORD_ENV)
    if password is None and os.environ.get(password_env):
        password = os.environ[password_env]
    username = unquote(parts.username) if parts.username else opts.get("username")
    protocol = str(opts.get("protocol", "5"))
    if protocol not in MQTT_PROTOCOLS:
        raise InputError(f"unsupported MQTT protocol {protocol!r}", 'use protocol = "5" or "3.1.1"')
    batch = opts.get("batch", False)
    if not isinstance(batch, bool):
        raise InputError(f"[mqtt] batch = {batch!r} must be true or false", "write batch = true (without quotes)")
    for key in ("ca", "cert", "key"):
        if opts.get(key) and not Path(opts[key]).is_file():
            raise InputError(f"MQTT TLS file {opts[key]} ({key}) not found", "check the [mqtt] section")
    try:
        return MqttConfig(host=parts.hostname, port=port, username=username, password=password, tls=tls,
                          ca=opts.get("ca"), cert=opts.get("cert"), key=opts.get("key"),
                          insecure=bool(opts.get("insecure", False)), client_id=str(opts.get("client_id", "")),
                          keepalive=int(opts.get("keepalive", 30)),
                          topic_prefix=str(opts.get("topic_prefix", "tinyml")), protocol=protocol, batch=batch)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad [mqtt] value: {exc}", "check the [mqtt] section") from None


def password_in_url_warning(url: str | None, *, option: str = "--mqtt") -> str | None:
    """A warning when a command-line URL carries a password: any local user can read it in
    /proc/PID/cmdline and shell history. The URL is not refused (it works), only flagged."""
    if not url or urlsplit(url).password is None:
        return None
    return (f"warning: the password in {option} {_redact_url(url)} is visible to other local users "
            f"(/proc/PID/cmdline, shell history); set ${PASSWORD_ENV} or put it in a file "
            "(gateway.toml [mqtt] password, mode 600) instead")


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _line_of(path: Path | None, section: str, key: str | None = None) -> str:
    """``path:line`` of ``key`` in ``[section]`` (or of the section header), for error messages."""
    if path is None:
        return "the configuration"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return str(path)
    inside = False
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text.startswith("["):
            inside = text.strip("[] ") == section
            if inside and key is None:
                return f"{path}:{number}"
        elif inside and key is not None and text.split("=", 1)[0].strip().strip('"') == key:
            return f"{path}:{number}"
    return str(path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _type_ok(value: Any, annotation: str) -> bool:
    """A TOML value against a settings field's annotation (``int``, ``float | None``, ``str``)."""
    kinds = {k.strip() for k in annotation.split("|")}
    if isinstance(value, bool):
        return "bool" in kinds
    if isinstance(value, int):
        return bool(kinds & {"int", "float"})
    if isinstance(value, float):
        return "float" in kinds
    return type(value).__name__ in kinds


def _section(cls: type, data: Any, name: str, path: Path | None = None) -> Any:
    """A settings dataclass from one TOML table; a wrong key, type or value names its line."""
    if not isinstance(data, dict):
        raise InputError(f"[{name}] must be a table", f"see docs/gateway.md for the [{name}] keys")
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise InputError(f"unknown [{name}] keys {sorted(unknown)} ({_line_of(path, name, sorted(unknown)[0])})",
                         f"known keys: {sorted(known)}")
    for key, value in data.items():
        annotation = str(known[key].type)
        if not _type_ok(value, annotation):
            names = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}
            wanted = " or ".join(names.get(k.strip(), k.strip()) for k in annotation.split("|")
                                 if k.strip() != "None")
            raise InputError(f"[{name}] {key} = {value!r} at {_line_of(path, name, key)} must be {wanted}",
                             f"write it without quotes: {key} = {value.strip()}"
                             if isinstance(value, str) and _is_number(value)
                             else f"see docs/gateway.md for the [{name}] keys")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad [{name}] settings at {_line_of(path, name)}: {exc}",
                         f"see docs/gateway.md for the [{name}] keys") from None


def _routes(items: Any, base: Path) -> tuple[ModelRoute, ...]:
    if not isinstance(items, list):
        raise InputError("[[models]] must be an array of tables", "write [[models]] once per model")
    routes = []
    for item in items:
        if not isinstance(item, dict) or not (item.get("run") or item.get("model_json")):
            raise InputError("every [[models]] entry needs `run` (a training run directory)",
                             'e.g. run = "runs/fan" and devices = ["fan-*"]')
        unknown = set(item) - {"run", "model_json", "devices", "model_hash"}
        if unknown:
            raise InputError(f"unknown [[models]] keys {sorted(unknown)}", "known: run, devices, model_hash")
        devices = item.get("devices", [])
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise InputError("[[models]] devices must be a list of device-id patterns", 'e.g. ["fan-*"]')
        if not devices and not item.get("model_hash"):
            raise InputError("a [[models]] entry needs `devices` or `model_hash`",
                             "say which devices run this model")
        path = Path(item.get("run") or item["model_json"])
        info = read_labels(path if path.is_absolute() else base / path)
        routes.append(ModelRoute(info, tuple(devices), str(item.get("model_hash", ""))))
    return tuple(routes)


def _auth(data: Any, base: Path, path: Path | None, keys: Path | None, mode: str | None) -> AuthConfig:
    """``[auth]`` (keys, mode, ports) with the command line's --keys / --auth on top."""
    if not isinstance(data, dict) or set(data) - AUTH_KEYS:
        raise InputError(f"bad [auth] section ({_line_of(path, 'auth')})", f"known keys: {', '.join(sorted(AUTH_KEYS))}")
    ports = data.get("ports", {})
    if not isinstance(ports, dict) or not all(isinstance(v, str) for v in ports.values()):
        raise InputError(f"[auth.ports] must map ports to modes ({_line_of(path, 'auth.ports')})",
                         f'e.g. "/dev/ttyUSB0" = "optional"; modes: {", ".join(AUTH_MODES)}')
    store = keys or data.get("keys")
    if store is not None and not isinstance(store, str | Path):
        raise InputError(f"[auth] keys must be a file name ({_line_of(path, 'auth', 'keys')})",
                         'e.g. keys = "device-keys.json"')
    store_path = None if store is None else Path(store) if keys or Path(store).is_absolute() else base / store
    try:
        return AuthConfig(store_path, mode or str(data.get("mode", "optional")), tuple(ports.items()))
    except ValueError as exc:
        raise InputError(f"bad [auth] settings ({_line_of(path, 'auth')}): {exc}",
                         'mode = "required" or "optional"; required needs keys = "FILE" (`tinyml provision`)') from None


def _devices(data: Any, path: Path | None) -> DevicesConfig:
    """``[devices]``, its time zone checked up front."""
    devices = _section(DevicesConfig, data, "devices", path)
    try:
        parse_zone(devices.time_zone)
    except ValueError as exc:
        raise InputError(f"[devices] time_zone at {_line_of(path, 'devices', 'time_zone')}: {exc}",
                         'use the zone the training data\'s timestamps were written in: an IANA name such as '
                         '"Europe/Berlin", "UTC", or a fixed offset such as "+01:00"') from None
    return devices


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"config file {path} not found", "check --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}", "fix the syntax") from None
    except OSError as exc:
        raise InputError(f"cannot read config file {path}: {exc.strerror}", "check --config") from None
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise InputError(f"unknown keys {sorted(unknown)} in {path}", f"known keys: {sorted(TOP_KEYS)}")
    return data


def load(config_path: Path | None = None, *, ports: tuple[str, ...] = (), db: Path | None = None,
         mqtt_url: str | None = None, site: str | None = None, http: str | None = None,
         models: tuple[Path, ...] = (), keys: Path | None = None, auth: str | None = None,
         shards: int | None = None) -> GatewayConfig:
    """Merge gateway.toml (when given) with command-line options; options win. ``models`` are
    run directories whose devices are found by model hash (one alone serves every device)."""
    data = read_toml(config_path) if config_path else {}
    base = config_path.parent if config_path else Path(".")
    all_ports = tuple(ports) or tuple(data.get("ports", ()))
    if not all_ports:
        raise InputError("no serial port given", "pass --port PORT (repeatable) or ports = [...] in the config")
    if not all(isinstance(p, str) and p for p in all_ports):
        raise InputError("ports must be strings", 'e.g. ports = ["/dev/ttyUSB0", "socket://127.0.0.1:7000"]')
    site_name = site or str(data.get("site", "default"))
    if not site_name or any(c in site_name for c in "/+#"):
        raise InputError(f"bad site name {site_name!r}", "a site name cannot be empty or contain / + #")
    retention = data.get("retention", {})
    if not isinstance(retention, dict) or set(retention) - RETENTION_KEYS:
        raise InputError("bad [retention] section", f"known keys: {', '.join(sorted(RETENTION_KEYS))}")
    mqtt_section = data.get("mqtt", {})
    if not isinstance(mqtt_section, dict):
        raise InputError("[mqtt] must be a table", "see docs/gateway.md")
    url = mqtt_url or mqtt_section.get("url")
    http_value = http or data.get("http")
    try:
        baud = int(data.get("baud", 115200))
        limits = RetentionLimits(max_age_s=_positive(retention.get("max_age_days", 30), 86400.0),
                                 max_results=_positive(retention.get("max_results"), 1, int),
                                 max_bytes=_positive(retention.get("max_db_mb"), 1e6, int))
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad number in {config_path}: {exc}", "baud and [retention] take numbers") from None
    ingest = data.get("ingest", {})
    if shards is not None and isinstance(ingest, dict):
        ingest = {**ingest, "shards": shards}
    return GatewayConfig(
        ports=all_ports, db=Path(db or data.get("db", "gateway.db")), site=site_name,
        http=parse_http(str(http_value)) if http_value else None, baud=baud,
        mqtt=parse_mqtt_url(url, {k: v for k, v in mqtt_section.items() if k != "url"}) if url else None,
        retention=limits,
        rules=_section(RuleConfig, data.get("rules", {}), "rules", config_path),
        drift=_section(DriftConfig, data.get("drift", {}), "drift", config_path),
        evidence=_section(EvidenceConfig, data.get("evidence", {}), "evidence", config_path),
        limits=_section(IdLimits, data.get("limits", {}), "limits", config_path),
        auth=_auth(data.get("auth", {}), base, config_path, keys, auth),
        ingest=_section(IngestConfig, ingest, "ingest", config_path),
        devices=_devices(data.get("devices", {}), config_path),
        models=tuple(route_for_run(Path(m), every_device=len(models) == 1) for m in models)
        + _routes(data.get("models", []), base))
