"""Who may speak for a device id, and on which port (issue 16, part 1; docs/security.md).

Shared by every port reader, like the id budget (limits.py). A device id whose key is in the key
store (tinyml/device/keystore.py) is accepted only from a line that proved the key for the
current boot (AUTH_HELLO answering this line's challenge, docs/protocol.md); a device id without
a key is accepted only where the port's policy is ``optional``, and is marked unauthenticated in
the store and in MQTT messages. A device id bound to one connected port is refused on another
port that cannot prove it. Every refusal is counted per reason and logged once per port connection,
device and reason; the first one also becomes an ``identity`` alert on the claimed id (cleared by
the processor when the port disconnects).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("tinyml.gateway")
AUTH_MODES = ("optional", "required")
MAX_LOGGED = 4096  # distinct (port, device, reason) refusals remembered for log-once; then per (port, reason)


@dataclass(frozen=True)
class AuthConfig:
    """gateway.toml ``[auth]``: the key store, the policy for all ports and per-port exceptions."""

    keys: Path | None = None
    mode: str = "optional"
    ports: tuple[tuple[str, str], ...] = ()  # (port, mode)

    def __post_init__(self) -> None:
        for mode in (self.mode, *(m for _, m in self.ports)):
            if mode not in AUTH_MODES:
                raise ValueError(f"auth mode {mode!r} is not one of {', '.join(AUTH_MODES)}")
        if self.keys is None and "required" in (self.mode, *(m for _, m in self.ports)):
            raise ValueError('auth = "required" needs a key store (keys = "device-keys.json")')

    def mode_for(self, port: str) -> str:
        return dict(self.ports).get(port, self.mode)


@dataclass(frozen=True)
class Refused:
    """The first refusal of a claim on a port: the processor raises it as an ``identity`` alert."""

    port: str
    device: str
    reason: str
    at: float


@dataclass
class Identity:
    config: AuthConfig = field(default_factory=AuthConfig)
    keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    refused: Counter[str] = field(default_factory=Counter)  # refusals per reason
    bound: dict[str, str] = field(default_factory=dict)  # device id -> the connected port speaking for it
    _logged: set[tuple[str, str, str]] = field(default_factory=set)

    def key(self, device: str) -> bytes | None:
        return self.keys.get(device)

    def required(self, port: str) -> bool:
        return self.config.mode_for(port) == "required"

    def holder(self, device: str, port: str) -> str | None:
        """The other connected port ``device`` is bound to, if any."""
        holder = self.bound.get(device)
        return holder if holder is not None and holder != port else None

    def bind(self, device: str, port: str) -> None:
        self.bound[device] = port

    def release(self, port: str) -> None:
        """``port`` disconnected: the ids it spoke for may appear on another port now, and its next
        connection's refusals are logged (and alerted) again."""
        for device in [d for d, p in self.bound.items() if p == port]:
            del self.bound[device]
        self._logged = {entry for entry in self._logged if entry[0] != port}

    def refuse(self, port: str, device: str, reason: str, now: float) -> Refused | None:
        """Count a refusal; log it and return an alert record the first time for this port,
        device and reason (ids without a key share one entry per port and reason: a flood of
        invented ids cannot fill the log or the alerts)."""
        self.refused[reason] += 1
        who = device if device in self.keys or device in self.bound else ""
        entry = (port, who, reason)
        if entry in self._logged or len(self._logged) >= MAX_LOGGED:
            return None
        self._logged.add(entry)
        log.warning("port %s: device id %s refused: %s (further refusals are counted, not logged)",
                    port, device[:64], reason)
        return Refused(port, device, reason, now)
