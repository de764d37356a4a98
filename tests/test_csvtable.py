"""The byte-buffer CSV reader: the same fields and numbers as the csv module and float(), else the slow path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyml.data.csvtable import _rows, decimals, read_table, text

CELL = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda v: f"{v:.{abs(int(v)) % 7}f}"),
    st.integers(-10**18, 10**18).map(str),
    st.sampled_from(["nan", "", " 1.5", "7 ", "+3", "-0.0", ".5", "5.", "1e3", "a b", "normal", "-", "1.2.3"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=1, max_size=30), st.booleans(), st.booleans())
def test_fast_fields_are_the_csv_modules(tmp_path_factory, rows, crlf, last_newline):
    end = "\r\n" if crlf else "\n"
    body = end.join(",".join(r) for r in [["t", "v", "label"], *rows]) + (end if last_newline else "")
    path = tmp_path_factory.mktemp("csv") / "x.csv"
    path.write_bytes(body.encode())
    fast, slow = read_table(path), _rows(body.encode(), path)
    assert fast.header == slow.header
    for a, b in zip(fast.columns, slow.columns, strict=True):
        assert a.dtype.kind == "S"  # the byte-buffer path took it
        assert [text(c) for c in a.tolist()] == b.tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(CELL, min_size=1, max_size=20))
def test_decimals_are_exactly_float(cells):
    raw = np.array([c.encode() for c in cells])
    try:
        expect = [float(c) for c in cells]
    except ValueError:
        with pytest.raises(ValueError):
            decimals(raw)
        return
    got = decimals(raw)
    assert got.tobytes() == np.array(expect).tobytes()  # bit for bit, the sign of zero and NaN included


@pytest.mark.parametrize("content", ['t,v\n1,"2"\n', "t,v\n1,2\n\n3,4\n", "t,v\n1,2,3\n", "t,v\r1,2\r",
                                     "t,v\n1,\u00e9\n", "t,v\n"])
def test_files_off_the_plain_form_take_the_csv_module(tmp_path, content):
    path = tmp_path / "x.csv"
    path.write_text(content, encoding="utf-8", newline="")
    try:
        table = read_table(path)
    except Exception as exc:  # noqa: BLE001 - malformed files fail with the csv module path's own message
        assert type(exc).__name__ == "InputError"
        return
    assert all(c.dtype.kind == "U" for c in table.columns)
