"""Timestamps as loggers write them, turned into seconds since the epoch (UTC) by numpy, not row by row.

Accepted without options: numbers (seconds; numbers of 1e11 and more are epoch milliseconds) and ISO 8601
``YYYY-MM-DD[T ]HH:MM[:SS[.fff…]]`` with an optional zone (``Z``, ``±HH:MM``, ``±HHMM``). ``--time-format``
forces ``s``, ``ms`` or a ``strptime`` pattern such as ``%d.%m.%Y %H:%M``. A column is either all naive
(taken as written, no zone conversion) or all zoned (converted to UTC, so a daylight-saving offset change
is no clock fault); a mix of both is refused, because the order of its rows is unknowable.

A naive ISO column (the usual log) goes through numpy's own datetime64 parser in one call; zoned and
unusual columns are decoded from the characters' code points with array arithmetic (a few passes over a
[rows, width] integer view), which is also what names the line of an unreadable time.
"""

from __future__ import annotations

import calendar
import datetime as dt
import warnings

import numpy as np

from tinyml.data.csvtable import decimals, text
from tinyml.errors import InputError

NUMERIC_FORMATS = ("s", "ms")
EPOCH_MS_FROM = 1e11  # 1973 in ms, 5138 AD in s: larger numbers are milliseconds
ISO_TRIED = "numbers (s or ms) and ISO 8601 YYYY-MM-DD[T ]HH:MM[:SS[.fff]][Z|+HH:MM]"
FORMAT_HINT = "pass --time-format with a strptime pattern (e.g. '%d.%m.%Y %H:%M:%S'), or s or ms for numbers"


def parse_times(cells: list[str] | np.ndarray, *, fmt: str | None = None, where: str = "",
                first_line: int = 2) -> np.ndarray:
    """Seconds since 1970-01-01 (UTC for zoned times) as float64; row i is CSV line ``first_line + i``.
    ``cells``: str, or a numpy ``S``/``U`` array (a column of ``tinyml/data/csvtable.py``)."""
    cells = cells if isinstance(cells, np.ndarray) else np.asarray(cells, dtype=str)
    if fmt is not None and fmt not in NUMERIC_FORMATS:
        return _strptime([text(c) for c in cells.tolist()], fmt, where, first_line)
    numbers = _numbers(cells)
    if numbers is not None:
        scale = 1e-3 if fmt == "ms" or (fmt is None and np.nanmedian(np.abs(numbers)) >= EPOCH_MS_FROM) else 1.0
        return numbers * scale
    if fmt is not None:
        i = next(i for i, c in enumerate(cells) if not _is_number(c))
        raise InputError(f"{where}: cannot read time {text(cells[i]).strip()[:40]!r} at line {first_line + i} "
                         f"as --time-format {fmt}", FORMAT_HINT)
    return _iso(cells, where, first_line)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _numbers(cells: np.ndarray) -> np.ndarray | None:
    if len(cells) and not _is_number(cells[0]):
        return None  # the usual case, decided without a pass over the column
    try:
        return decimals(cells)
    except ValueError:
        return None


def _iso(cells: np.ndarray, where: str, first_line: int) -> np.ndarray:
    whole = _numpy_iso(cells)
    if whole is not None:
        return whole
    a = np.strings.strip(cells)
    unit = 4 if a.dtype.kind == "U" else 1
    n, width = len(a), a.dtype.itemsize // unit
    lens = np.strings.str_len(a).astype(np.int64)
    if width < 10:
        return _fallback(a, np.ones(n, bool), where, first_line, np.zeros(n), lens, np.zeros(n))
    c = a.view(np.uint32 if unit == 4 else np.uint8).reshape(n, width)
    offset_min, zoned, body = _zones(c, lens)
    if zoned.any() and not zoned.all():
        i, j = int(np.flatnonzero(~zoned)[0]), int(np.flatnonzero(zoned)[0])
        raise InputError(f"{where}: mixed time zones: line {first_line + i} ({text(a[i])!r}) has none, "
                         f"line {first_line + j} ({text(a[j])!r}) has one",
                         "export every time in one zone (UTC is best), or every time without a zone")
    seconds, ok = _fast_iso(c, body, width)
    seconds -= offset_min * 60.0
    if not ok.all():
        seconds = _fallback(a, ~ok, where, first_line, seconds, body, offset_min)
    return seconds


def _numpy_iso(cells: np.ndarray) -> np.ndarray | None:
    """numpy's own ISO 8601 parser over the whole column, for the usual naive ``YYYY-MM-DD…`` log; None
    (the arithmetic path below, which checks zones and names a bad row) on a zone, a word numpy would read
    ('now', 'NaT'), spaces or anything it refuses."""
    if not len(cells) or cells.dtype.kind not in "SU":
        return None
    unit = np.uint8 if cells.dtype.kind == "S" else np.uint32
    width = cells.dtype.itemsize // np.dtype(unit).itemsize
    if width < 10:
        return None
    head = cells.view(unit).reshape(len(cells), width)[:, :5].astype(np.int64) - 48
    if not (np.all((head[:, :4] >= 0) & (head[:, :4] <= 9)) and np.all(head[:, 4] == ord("-") - 48)):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns, then converts, on a zone: that is not for here
            when = cells.astype("datetime64[us]")
    except (ValueError, Warning):
        return None
    if np.isnat(when).any():
        return None
    return when.astype(np.int64) / 1e6


def _zones(c: np.ndarray, lens: np.ndarray):
    """Per row: the UTC offset in minutes, whether it has a zone, and the length without the zone."""
    rows, width = np.arange(len(c)), c.shape[1]
    same = bool(len(lens)) and bool(np.all(lens == lens[0]))  # one length (the usual log): whole columns
    def at(pos: np.ndarray) -> np.ndarray:
        if same:
            p = int(pos[0])
            return c[:, p].astype(np.int32) if 0 <= p < width else np.zeros(len(c), np.int32)
        return c[rows, np.clip(pos, 0, width - 1)].astype(np.int32) * (pos >= 0)
    digit = lambda pos: at(pos) - 48  # noqa: E731
    sign_at = lambda pos: (at(pos) == ord("+")) | (at(pos) == ord("-"))  # noqa: E731
    z = at(lens - 1) == ord("Z")
    colon = (at(lens - 3) == ord(":")) & sign_at(lens - 6) & (lens - 6 >= 16)
    plain = ~colon & sign_at(lens - 5) & (lens - 5 >= 16)
    sign = np.where(colon, at(lens - 6), at(lens - 5))
    hh = np.where(colon, digit(lens - 5) * 10 + digit(lens - 4), digit(lens - 4) * 10 + digit(lens - 3))
    mm = digit(lens - 2) * 10 + digit(lens - 1)
    zoned = z | colon | plain
    offset = np.where(colon | plain, (hh * 60 + mm) * np.where(sign == ord("-"), -1, 1), 0)
    body = lens - np.where(z, 1, np.where(colon, 6, np.where(plain, 5, 0)))
    return offset.astype(np.float64), zoned, body


def _fast_iso(c: np.ndarray, body: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Seconds and a mask of the rows in the common form; other rows are left to numpy's own parser."""
    n = len(c)
    d = (np.minimum(c, 255) if c.dtype.itemsize > 1 else c).astype(np.int16)
    d -= 48  # characters minus '0': the digits are exactly the values 0..9 (as uint16, <= 9)
    if width < 16:  # short strings: the fixed positions read as non-digits
        d = np.concatenate([d, np.full((n, 16 - width), -48, np.int16)], axis=1)
    zero = np.zeros(n, np.int16)
    def col(j: int) -> np.ndarray:
        return d[:, j] if j < width else zero
    def num(j: int, k: int) -> np.ndarray:
        out = np.zeros(n, np.int32)
        for p in range(j, j + k):
            out = out * 10 + col(p)
        return out
    digits_ok = np.all(d[:, [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15]].view(np.uint16) <= 9, axis=1)
    def sep(p: int, chars: str) -> np.ndarray:
        out = np.zeros(n, bool)
        for ch in chars:
            out |= col(p) == ord(ch) - 48
        return out
    ok = digits_ok & sep(4, "-") & sep(7, "-") & sep(10, "T ") & sep(13, ":") & (body >= 16)
    has_s = body >= 19
    ok &= ~has_s | (sep(16, ":") & (col(17) >= 0) & (col(17) <= 9) & (col(18) >= 0) & (col(18) <= 9))
    ok &= (body == 16) | (body == 19) | ((body >= 21) & sep(19, ".,"))
    frac = np.zeros(n)
    for p in range(20, width):
        inside = p < body
        ok &= ~inside | ((col(p) >= 0) & (col(p) <= 9))
        frac += np.where(inside, col(p), 0) * 10.0 ** (19 - p)
    y, m, day = num(0, 4), num(5, 2), num(8, 2)
    hh, mi, ss = num(11, 2), num(14, 2), np.where(has_s, num(17, 2), 0)
    ok &= (m >= 1) & (m <= 12) & (day >= 1) & (hh < 24) & (mi < 60) & (ss < 61)
    ok &= day <= _month_days(y, np.clip(m, 1, 12))
    days = _days_from_civil(y, np.clip(m, 1, 12), day)
    seconds = days * 86400.0 + hh * 3600 + mi * 60 + ss + frac
    return np.where(ok, seconds, np.nan), ok


def _month_days(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    return np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[m] + (leap & (m == 2))


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm, vectorised)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _fallback(a: np.ndarray, todo: np.ndarray, where: str, first_line: int, seconds: np.ndarray,
              body: np.ndarray, offset_min: np.ndarray) -> np.ndarray:
    """Rows outside the common form (a date alone, hours only…) through numpy's ISO parser, else an error."""
    out = seconds.copy()
    for i in np.flatnonzero(todo):
        cell = text(a[i])[: int(body[i])]
        try:
            value = np.datetime64(cell, "us")
        except ValueError:
            value = np.datetime64("NaT")
        if np.isnat(value) or not cell[:1].isdigit():  # numpy also reads 'now' and 'today'; a log does not
            raise InputError(f"{where}: cannot read time {text(a[i])[:40]!r} at line {first_line + int(i)} "
                             f"(tried {ISO_TRIED})", FORMAT_HINT)
        out[i] = value.astype(np.int64) / 1e6 - offset_min[i] * 60.0
    return out


def _strptime(cells: list[str], fmt: str, where: str, first_line: int) -> np.ndarray:
    """An explicit pattern, one row at a time (the flexible, slower path): repeated strings parse once."""
    seen: dict[str, float] = {}
    out = np.empty(len(cells))
    zoned: bool | None = None
    for i, cell in enumerate(cells):
        text = cell.strip()
        if text not in seen:
            try:
                when = dt.datetime.strptime(text, fmt)
            except ValueError:
                raise InputError(f"{where}: cannot read time {text[:40]!r} at line {first_line + i} "
                                 f"with --time-format {fmt!r}", FORMAT_HINT) from None
            aware = when.tzinfo is not None
            if zoned is not None and aware != zoned:
                raise InputError(f"{where}: mixed time zones: line {first_line + i} ({text!r}) "
                                 f"{'has a zone' if aware else 'has none'} and earlier lines do not agree",
                                 "export every time in one zone (UTC is best), or every time without a zone")
            zoned = aware
            seen[text] = when.timestamp() if aware else calendar.timegm(when.timetuple()) + when.microsecond / 1e6
        out[i] = seen[text]
    return out


def iso(seconds: float) -> str:
    """A time for people and JSON: ISO 8601 to the millisecond, no zone (UTC when the source had one)."""
    if not np.isfinite(seconds):
        return ""
    return str(np.datetime64(int(round(seconds * 1000)), "ms")).replace(".000", "")
