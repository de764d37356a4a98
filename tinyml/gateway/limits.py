"""How many device ids the gateway accepts, from where and how fast (issue 16, part 2).

Set in gateway.toml ``[limits]`` (per_port, total, new_per_min). Device ids come from HELLO frames, which any serial line can send. Without limits one line
sending 20,000 HELLOs with distinct ids created 20,000 device rows and 88 MB of state. The
budget below is shared by every port: a HELLO whose id is new is admitted only while its port
holds fewer than ``per_port`` ids, the gateway fewer than ``total``, and fewer than ``new_per_min``
new ids arrived in the last minute. A refused HELLO is ignored (the line stays unidentified or
keeps its previous id), counted per reason, and logged once per port and reason. Which port may
speak for an id at all (keys, one port per id) is tinyml/gateway/identity.py's concern.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("tinyml.gateway")
WINDOW_S = 60.0


@dataclass(frozen=True)
class IdLimits:
    per_port: int = 16       # distinct ids one port may bring in this gateway's lifetime
    total: int = 4096        # ids the gateway tracks (known from the database included)
    new_per_min: int = 120   # new ids per minute, all ports together
    state_expiry_s: float = 3600.0  # a device idle this long has its in-memory state dropped (the store keeps it)

    def __post_init__(self) -> None:
        for name in ("per_port", "total", "new_per_min", "state_expiry_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class IdBudget:
    """Admits or refuses device ids; one instance is shared by all port readers."""

    def __init__(self, limits: IdLimits = IdLimits(), known: Iterable[str] = ()):
        self.limits = limits
        self.known = set(known)
        self.by_port: defaultdict[str, set[str]] = defaultdict(set)
        self.recent: deque[float] = deque()
        self.refused: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()

    def admit(self, port: str, device: str, now: float) -> bool:
        """True when ``device`` may speak on ``port`` (and records it); False, counted, when refused."""
        seen = self.by_port[port]
        if device in seen:
            return True
        reason = self._refusal(seen, device, now)
        if reason is not None:
            self.refused[reason] += 1
            if (port, reason) not in self._logged:
                self._logged.add((port, reason))
                log.warning("port %s: device id %s refused: %s (further refusals are counted, not logged)",
                            port, device[:64], reason)
            return False
        if device not in self.known:
            self.known.add(device)
            self.recent.append(now)
        seen.add(device)
        return True

    def _refusal(self, seen: set[str], device: str, now: float) -> str | None:
        if len(seen) >= self.limits.per_port:
            return f"more than {self.limits.per_port} device ids on one port"
        if device in self.known:
            return None
        if len(self.known) >= self.limits.total:
            return f"the gateway already tracks {self.limits.total} device ids"
        while self.recent and now - self.recent[0] > WINDOW_S:
            self.recent.popleft()
        if len(self.recent) >= self.limits.new_per_min:
            return f"more than {self.limits.new_per_min} new device ids in a minute"
        return None
