"""The time the gateway gives its devices: TIME frames in the clock of the training data.

Why: a run-mode device whose features keep state across windows (``daily_cycle``) needs each window's
time of day, as the training data's timestamps gave it. Loggers mostly write local wall time, and a
naive timestamp is taken as written, so the device must be told the gateway's clock in that zone
(``[devices] time_zone``: an IANA name, which follows daylight saving, or a fixed offset); a log with
zoned timestamps was converted to UTC, the default. The line sends TIME when a device identifies and
again every ``TIME_EVERY_S`` (ingest.py ``LineState``).
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from tinyml.device import protocol

TIME_EVERY_S = 3600.0
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")


@dataclass(frozen=True, kw_only=True)
class DevicesConfig:
    """``[devices]``: the zone whose wall time the training data's timestamps were written in."""

    time_zone: str = "UTC"


def parse_zone(text: str) -> tzinfo:
    """An IANA zone name (``Europe/Berlin``, ``UTC``) or a fixed offset (``+01:00``, ``-0530``);
    ValueError saying why not."""
    fixed = _OFFSET.fullmatch(text)
    if fixed:
        sign, hours, minutes = fixed.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        if offset > timedelta(hours=14) or int(minutes) >= 60:
            raise ValueError(f"offset {text} is not a UTC offset (-14:00 to +14:00)")
        return timezone(-offset if sign == "-" else offset)
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {text!r}") from None


class DeviceClock:
    """The time now as the training data's timestamps give it: seconds since the epoch of the wall time
    in the configured zone (the epoch's own seconds for UTC)."""

    def __init__(self, config: DevicesConfig):
        self.zone = parse_zone(config.time_zone)

    def seconds(self, now: float) -> int:
        offset = datetime.fromtimestamp(now, self.zone).utcoffset() or timedelta()
        return int(now + offset.total_seconds())

    def frame(self, now: float) -> bytes:
        return protocol.encode(protocol.Time(self.seconds(now) & 0xFFFFFFFF))
