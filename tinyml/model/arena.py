"""The smallest TFLM tensor arena that works, found by bisection in a child process.

Some too-small arenas make the TFLM interpreter crash (SIGSEGV) instead of raising, so the
trials run in a child that announces each size before trying it (``try N``) and its verdict
after (``ok N`` / ``fail N``). If the child dies mid-trial, the parent counts that size as
failing and starts a new child on the remaining interval. The size is what the host (64-bit)
TFLM interpreter needs; a 32-bit device needs somewhat less (pointers are smaller).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tinyml.errors import ToolError
from tinyml.model.interpreters import check_flatbuffer, safe_arena_size

MAX_RESTARTS = 20


@dataclass(frozen=True)
class ArenaResult:
    min_bytes: int      # smallest size that allocated and ran one inference
    trials: int
    crashes: int        # trials that killed the child process


def _trial(model: bytes, size: int) -> bool:
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    try:
        m = runtime.Interpreter.from_bytes(model, arena_size=size)
        d = m.get_input_details(0)
        m.set_input(np.zeros(d["shape"], dtype=d["dtype"]), 0)
        m.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def _child(model_path: str, lo: int, hi: int, verify_hi: bool) -> None:
    """Bisect (lo fails, hi works) and print the protocol lines."""
    model = Path(model_path).read_bytes()
    if verify_hi:
        print(f"try {hi}", flush=True)
        print(f"{'ok' if _trial(model, hi) else 'fail'} {hi}", flush=True)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        print(f"try {mid}", flush=True)
        ok = _trial(model, mid)
        print(f"{'ok' if ok else 'fail'} {mid}", flush=True)
        lo, hi = (lo, mid) if ok else (mid, hi)


def min_arena_size(tflite_bytes: bytes, timeout: float = 120.0) -> ArenaResult:
    """Bisect between 0 and a size known to be safe, surviving interpreter crashes."""
    check_flatbuffer(tflite_bytes)
    hi = safe_arena_size(tflite_bytes)
    lo, trials, crashes, verify = 0, 0, 0, True
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite_bytes)
        for _ in range(MAX_RESTARTS):
            try:
                proc = subprocess.run([sys.executable, "-m", "tinyml.model.arena", str(path), str(lo), str(hi),
                                       "1" if verify else "0"], capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                raise ToolError("the TFLM arena search timed out", "inspect with --no-arena") from exc
            pending = None
            for line in proc.stdout.splitlines():
                word, _, num = line.partition(" ")
                if word == "try":
                    pending = int(num)
                    continue
                trials += 1
                pending = None
                if word == "ok":
                    hi = int(num)
                elif verify and int(num) == hi:
                    raise ToolError(f"TFLM cannot run the model even with a {hi}-byte arena",
                                    "check the ops list for ops TFLM lacks")
                else:
                    lo = int(num)
                verify = False
            if proc.returncode == 0 and pending is None:
                return ArenaResult(hi, trials, crashes)
            if pending is None:
                raise ToolError(f"the TFLM arena search failed: {proc.stderr.strip()[-200:]}",
                                "inspect with --no-arena")
            trials, crashes, lo = trials + 1, crashes + 1, pending  # the size in flight crashed the child
            if verify:
                raise ToolError("TFLM crashes on the model even with a generous arena", "the model may be corrupt")
    raise ToolError("the TFLM arena search crashed too often", "inspect with --no-arena")


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1")
