"""Value checks for option dataclasses, shared by the command line and tinyml.toml.

Each options class checks itself once (``check_*`` below); a failure is an OptionError that
names the key, so `tinyml data synth --per-class -4` and ``per_class = -4`` in a project file
are refused by the same rule, each in its own words, before any work starts.
"""

from __future__ import annotations

import math
from typing import Any

from tinyml.errors import OptionError


def at_least(options: Any, key: str, low: float) -> None:
    value = getattr(options, key)
    if value is not None and value < low:
        raise OptionError(key, f"must be at least {low:g}, got {value}", f"use {low:g} or more")


def positive(options: Any, key: str) -> None:
    value = getattr(options, key)
    if value is not None and not (math.isfinite(value) and value > 0):
        raise OptionError(key, f"must be a positive number, got {value}", "use a number above 0")


def one_of(options: Any, key: str, choices: tuple[str, ...]) -> None:
    value = getattr(options, key)
    if value is not None and value not in choices:
        raise OptionError(key, f"must be one of {', '.join(choices)}, got {value!r}", f"use one of: {', '.join(choices)}")


def split_fractions(options: Any) -> None:
    """``val`` and ``test``: each in [0, 1) and together below 1, so training keeps data."""
    for key in ("val", "test"):
        value = getattr(options, key)
        if not 0 <= value < 1:
            raise OptionError(key, f"must be a fraction in [0, 1), got {value}", "e.g. 0.15")
    if options.val + options.test >= 1:
        raise OptionError("test", f"{options.test} plus val {options.val} leaves nothing to train on "
                          "(the split fractions must sum below 1)", "e.g. val 0.15 and test 0.15")
