"""What a long command is doing while it does it: stages and progress on stderr.

On a terminal a loop is a tqdm bar that redraws in place; when stderr is a file or a pipe
(CI logs, ``2> log``) it is a few plain lines instead (about every tenth of the work and at
the end), because a redrawn bar there is a wall of carriage returns. Stdout stays for
results, so ``tinyml … > out.txt`` keeps only what the command found.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


def interactive(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def stage(text: str, *, quiet: bool = False) -> None:
    """One line naming the step that starts now (both on a terminal and in a log)."""
    if not quiet:
        print(f"{text} ...", file=sys.stderr, flush=True)


class Steps:
    """Progress over ``total`` steps of one loop: a bar on a terminal, milestone lines otherwise."""

    def __init__(self, total: int, *, desc: str, unit: str, quiet: bool = False):
        self.total, self.desc, self.unit, self.quiet = max(int(total), 0), desc, unit, quiet
        self.done = 0
        self.every = max(1, self.total // 10)
        self.bar: Any = None
        if not quiet and interactive():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit=unit, leave=False, file=sys.stderr)

    def update(self, n: int = 1, **postfix: float) -> None:
        before, self.done = self.done, self.done + n
        if self.quiet:
            return
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(n)
            return
        if self.done // self.every > before // self.every or self.done >= self.total:
            extra = "".join(f" {k} {v:.3f}" for k, v in postfix.items())
            print(f"{self.desc}: {self.done}/{self.total} {self.unit}s{extra}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def steps(items: Iterable[T], *, total: int, desc: str, unit: str, quiet: bool = False) -> Iterator[T]:
    """``items`` with progress shown as they are consumed."""
    with Steps(total, desc=desc, unit=unit, quiet=quiet) as bar:
        for item in items:
            yield item
            bar.update()
