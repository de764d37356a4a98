"""User text (class names, dataset and device names) made safe to place in generated C.

Labels come from datasets and ids from the command line; either can hold ``*/``, quotes,
backslashes, newlines or trigraphs that would end a comment or string early and inject code.
These are the only two ways text reaches C, so every template and emitter goes through them.
"""

from __future__ import annotations

import re

_SIMPLE = {"\\": "\\\\", '"': '\\"', "?": "\\?"}   # "\?" keeps "??x" from being read as a trigraph


def c_string(text: object) -> str:
    """``text`` as a C string literal (with quotes): printable ASCII as is, quotes, backslashes and
    ``?`` escaped, every other byte of its UTF-8 as a 3-digit octal escape (never greedy like \\x)."""
    out = []
    for byte in str(text).encode("utf-8"):
        ch = chr(byte)
        if ch in _SIMPLE:
            out.append(_SIMPLE[ch])
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_comment(text: object) -> str:
    """``text`` for one line of a C, make or CMake comment: it cannot end or nest the comment
    (``*/``, ``/*``), start a new line, splice lines (a trailing backslash, ``??/``) or form trigraphs.
    Backslashes, non-printable and non-ASCII characters become ``\\xNN``/``\\uNNNN``, still readable."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch == "\\":
            out.append("\\x5c")  # a backslash (even before spaces) at a line end would splice lines
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return re.sub(r"\?(?=\?)", "?_", "".join(out).replace("*/", "*_/").replace("/*", "/_*"))
