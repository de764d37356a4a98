"""One way for the C tests to compile: gcc for this computer by default (strict C99), or a
cross compiler checking that a source builds for a target, and a failure that shows the
compiler's own message instead of a bare CalledProcessError."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all")


def host_compile(sources: Sequence[str | Path], out: str | Path | None = None, *,
                 includes: Sequence[str | Path] = (), flags: Sequence[str] = STRICT, extra: Sequence[str] = (),
                 sanitize: bool = False, shared: bool = False, obj: bool = False, libs: Sequence[str] = (),
                 cc: str = "gcc", silent: bool = False) -> Path | None:
    """Compile ``sources`` into ``out`` (an executable, with ``shared`` a shared library, with
    ``obj`` an object file); without ``out`` only check the syntax. ``silent`` also fails on
    any compiler output (a note or a warning not made an error). Returns ``out``."""
    kind = ("-shared", "-fPIC") if shared else ("-c",) if obj else ()
    argv = [cc, *flags, *extra, *(SANITIZE if sanitize else ()), *kind,
            *(f"-I{i}" for i in includes), *map(str, sources)]
    argv += ["-o", str(out)] if out is not None else ["-fsyntax-only"]
    proc = subprocess.run([*argv, *libs], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stderr}"
    assert not (silent and proc.stderr), f"{' '.join(argv)}\n{proc.stderr}"
    return Path(out) if out is not None else None
