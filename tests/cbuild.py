"""One way for the C tests to compile for this computer: gcc, strict C99 by default, and a
failure that shows the compiler's own message instead of a bare CalledProcessError."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all")


def host_compile(sources: Sequence[str | Path], out: str | Path | None = None, *,
                 includes: Sequence[str | Path] = (), flags: Sequence[str] = STRICT, extra: Sequence[str] = (),
                 sanitize: bool = False, shared: bool = False, libs: Sequence[str] = (), cc: str = "gcc") -> Path | None:
    """Compile ``sources`` into ``out`` (an executable, or with ``shared`` a shared library);
    without ``out`` only check the syntax. Returns ``out``."""
    argv = [cc, *flags, *extra, *(SANITIZE if sanitize else ()), *(("-shared", "-fPIC") if shared else ()),
            *(f"-I{i}" for i in includes), *map(str, sources)]
    argv += ["-o", str(out)] if out is not None else ["-fsyntax-only"]
    proc = subprocess.run([*argv, *libs], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stderr}"
    return Path(out) if out is not None else None
