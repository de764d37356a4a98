"""A CSV file as columns of numpy strings, located in one byte buffer by numpy (no per-row Python objects).

Why: a logger's million-row export must import as fast as pandas reads it, and splitting it into a list
of str per row costs seconds. The fast path takes what loggers write: ASCII, no quotes, one field count on
every line, no blank lines; a column is then a fixed-width ``bytes`` array cut out of the buffer. Any other
file, and every malformed one, goes through Python's csv module (``_rows``), which is also what names the
line of a malformed row in the error.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml.errors import InputError

BOM = b"\xef\xbb\xbf"
SLOW_BYTES = (b'"', b"\x00", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")  # quotes, NUL, other line breaks
POWERS = np.array([float(10**k) for k in range(23)])  # exact doubles


@dataclass(frozen=True)
class Table:
    """The header and one numpy string array per column (``S`` from the fast path, ``U`` from the csv module)."""
    header: list[str]
    columns: list[np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0


def read_table(path: Path) -> Table:
    """Every field of ``path`` (header on line 1); malformed files fail naming the line (hint: re-export)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}", "check the file") from exc
    raw = raw[len(BOM):] if raw.startswith(BOM) else raw
    table = _fast(raw) if raw and raw.isascii() and not any(c in raw for c in SLOW_BYTES) else None
    return table if table is not None else _rows(raw, path)


def _fast(raw: bytes) -> Table | None:
    """Columns cut out of the buffer, or None when the file is not the plain kind (see the module docstring)."""
    data = np.frombuffer(raw, np.uint8)
    newline = np.flatnonzero(data == 10)
    if b"\r" in raw and not np.all(data[np.minimum(np.flatnonzero(data == 13) + 1, len(data) - 1)] == 10):
        return None  # CRLF only: every CR right before a LF
    ends = newline if raw.endswith(b"\n") else np.append(newline, len(raw))
    starts = np.concatenate([[0], newline + 1])[: len(ends)]
    ends = ends - (data[np.maximum(ends - 1, 0)] == 13) * (ends > starts)  # CRLF: the CR is no field text
    if len(ends) < 2 or np.any(ends <= starts):
        return None  # no data rows, or a blank line: the csv module's path says which
    commas = np.flatnonzero(data == 44)
    fields = raw.count(b",", 0, int(ends[0])) + 1
    if len(commas) != len(ends) * (fields - 1):
        return None
    inner = commas.reshape(len(ends), fields - 1)
    # as many commas as lines times the header's, each line's share inside it: every line has the header's count
    if fields > 1 and (np.any(inner[:, 0] < starts) or np.any(inner[:, -1] >= ends)):
        return None
    first = np.concatenate([starts[:, None], inner + 1], axis=1)
    last = np.concatenate([inner, ends[:, None]], axis=1)
    header = [raw[a:b].decode("ascii").strip() for a, b in zip(first[0], last[0], strict=True)]
    return Table(header, [_cut(data, first[1:, j], last[1:, j]) for j in range(fields)])


def _cut(data: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The fields data[first:last] as one fixed-width bytes array (NUL padded, which numpy does not show)."""
    lens = last - first
    width = max(int(lens.max()), 1)
    if int(first.max()) + width > len(data):  # only a longest field at the very end of the file needs room
        data = np.concatenate([data, np.zeros(width, np.uint8)])
    cells = np.lib.stride_tricks.sliding_window_view(data, width)[first]  # one row copy per field
    if lens.min() < width:  # fields shorter than the longest: NUL after their end
        cells[np.arange(width) >= lens[:, None]] = 0
    return cells.view(f"S{width}").ravel()


def _rows(raw: bytes, path: Path) -> Table:
    """The general path: the csv module (quotes, any line break), field counts checked line by line."""
    try:
        text = raw.decode("utf-8")
        rows = list(csv.reader(io.StringIO(text))) if '"' in text else [ln.split(",") for ln in text.splitlines()]
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text CSV file ({exc.reason})", "export the data as UTF-8 CSV") from exc
    except csv.Error as exc:
        raise InputError(f"cannot read {path}: {exc}", "check the file") from exc
    if len(rows) < 2:
        raise InputError(f"{path}: no data rows (a CSV needs a header line and at least one row)", "check the file")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    bad = next((i for i, row in enumerate(body) if len(row) != len(header)), None)
    if bad is not None:
        if not any(cell.strip() for cell in body[bad]):
            raise InputError(f"{path}: empty line {bad + 2}", "remove blank lines from the CSV")
        raise InputError(f"{path}: line {bad + 2} has {len(body[bad])} fields, the header has {len(header)}",
                         "the file is truncated or malformed; re-export it")
    return Table(header, [np.array([row[j] for row in body], dtype=str) for j in range(len(header))])


def text(cell: bytes | str) -> str:
    """One field as str (fields of the fast path are bytes)."""
    return cell.decode("ascii") if isinstance(cell, bytes) else str(cell)


def decimals(cells: np.ndarray) -> np.ndarray:
    """A column as float64, exactly as ``float()`` reads each cell; ValueError if a cell is no number.

    ``[-+]digits[.digits]`` (up to 15 digits) by array arithmetic over the bytes: an integer below 2^53
    divided by an exact power of ten is the correctly rounded value, as ``float()`` gives; other cells
    (exponents, nan, spaces) and str columns go through numpy's parser.
    """
    if cells.dtype.kind != "S" or not len(cells):
        return cells.astype(np.float64)
    n, width = len(cells), cells.dtype.itemsize
    c = cells.view(np.uint8).reshape(n, width)
    lens = np.count_nonzero(c, axis=1)
    signed = (c[:, 0] == ord("-")) | (c[:, 0] == ord("+"))
    mant = np.zeros(n, np.int64)
    digits = np.zeros(n, np.int64)
    after_dot = np.zeros(n, np.int64)
    dot = np.zeros(n, bool)
    ok = np.ones(n, bool)
    for p in range(width):
        ch = c[:, p]
        inside = (p < lens) & (p >= signed)
        digit = inside & (ch >= ord("0")) & (ch <= ord("9"))
        at_dot = inside & (ch == ord("."))
        ok &= ~inside | digit | (at_dot & ~dot)
        mant = np.where(digit, mant * 10 + (ch.astype(np.int64) - ord("0")), mant)
        digits += digit
        after_dot += digit & dot
        dot |= at_dot
    ok &= (digits >= 1) & (digits <= 15)
    value = mant / POWERS[np.minimum(after_dot, 22)]
    value = np.where(c[:, 0] == ord("-"), -value, value)
    if not ok.all():
        value[~ok] = cells[~ok].astype(np.float64)
    return value
