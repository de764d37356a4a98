"""Log lines that device data cannot forge.

Device ids, port errors and broker replies come from outside; a newline or an ANSI escape in
one of them would start a fake log line or repaint the operator's terminal. The filter below
escapes C0/C1 control characters in every argument (and the message) of the gateway's logger,
so each record stays one honest line whatever a device sends.
"""

from __future__ import annotations

import logging
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    r"""``text`` with control characters shown as ``\xNN`` (printable text, including non-ASCII, kept)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _safe(arg: object) -> object:
    if isinstance(arg, (int, float)) or arg is None:
        return arg
    return escape_controls(str(arg))


class ControlCharFilter(logging.Filter):
    """Escapes control characters in a record's message and arguments before it is formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = escape_controls(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _safe(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(_safe(a) for a in record.args)
        return True


def install(logger: logging.Logger) -> None:
    """Add the filter to ``logger`` once."""
    if not any(isinstance(f, ControlCharFilter) for f in logger.filters):
        logger.addFilter(ControlCharFilter())
