"""C kernel sources, one file per kernel, with per-target variants.

Layout: ``<kernel>.h`` holds the target-independent part (the params struct every variant
shares); ``portable/<kernel>.c`` is the reference C99 implementation; ``<target>/<kernel>.c``
replaces it for that target when present (e.g. ``cortex-m4-dsp/``). A ``.c`` file may start
with ``/* requires: a, b */`` to pull in helper files (``fixedpoint``) before itself. A target
folder may hold ``prelude.h`` with extra includes that target's kernels need, and
``lowering.py`` whose ``rewrite(call)`` swaps a kernel call for the target's own kernel with
constants laid out for it at generation time (see ``specialize``).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from tinyml.errors import InputError

KERNEL_DIR = Path(__file__).resolve().parent
PORTABLE = "portable"
_REQUIRES = re.compile(r"^/\*\s*requires:\s*([\w,\s]+)\*/")


def targets() -> list[str]:
    """Every target: the portable one and each variant folder beside it."""
    return sorted(p.name for p in KERNEL_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))


def check_target(target: str) -> None:
    if target not in targets():
        raise InputError(f"unknown codegen target {target!r}", hint=f"choose one of: {', '.join(targets())}")


def source(kernel: str, target: str) -> tuple[str, str]:
    """(source text, target folder it came from) of one kernel or helper."""
    for folder in (target, PORTABLE):
        path = KERNEL_DIR / folder / f"{kernel}.c"
        if path.is_file():
            return path.read_text(), folder
    raise KeyError(kernel)


def header(kernel: str) -> str:
    path = KERNEL_DIR / f"{kernel}.h"
    return path.read_text() if path.is_file() else ""


def prelude(target: str) -> str:
    path = KERNEL_DIR / target / "prelude.h"
    return path.read_text() if path.is_file() else ""


def requires(text: str) -> list[str]:
    m = _REQUIRES.match(text)
    return [r.strip() for r in m.group(1).split(",") if r.strip()] if m else []


def closure(kernels: list[str], target: str) -> list[str]:
    """Kernels plus their helpers, helpers first, each once."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in requires(source(name, target)[0]):
            visit(dep)
        order.append(name)

    for k in kernels:
        visit(k)
    return order


def lowering_module(folder: str) -> Any:
    """``<folder>/lowering.py`` as a module (a target's lowering may reuse the portable one's
    helpers), or None when the folder has none."""
    path = KERNEL_DIR / folder / "lowering.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"tinyml.codegen.kernels.{folder.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rewrite(folder: str) -> Any:
    """``rewrite`` of ``<folder>/lowering.py``, or None when the folder has none."""
    module = lowering_module(folder)
    return module.rewrite if module else None


def specialize(steps: list[Any], target: str) -> list[Any]:
    """Kernel calls rewritten by ``<target>/lowering.py`` (``rewrite(call) -> call``), then by
    ``portable/lowering.py``, each where it exists.

    Lets a variant take another signature and constants in its own layout (e.g. weights widened
    and interleaved for SIMD, the input zero point folded into the bias) while the lowering in
    ``ops/`` stays target-independent. The portable rewrite comes last, so a call that still
    names a portable kernel gets the portable layout on every target. Aliases and calls a
    rewrite does not know pass through."""
    rewrites = [fn for fn in (_rewrite(target) if target != PORTABLE else None, _rewrite(PORTABLE)) if fn]
    for fn in rewrites:
        steps = [fn(s) if hasattr(s, "kernel") else s for s in steps]
    return steps
