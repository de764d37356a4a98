"""Train/val/test splits that do not leak: whole groups (recordings) stay on one side.

Windows cut from one recording are strongly correlated; a random window split lets the
test set see the training recordings and overstates accuracy. ``split_by_group`` keeps
every group on one side, ``split_random`` exists for single recordings where that is
impossible and the caller accepts the leak.
"""

from __future__ import annotations

import numpy as np

from tinyml.data.dataset import SPLITS
from tinyml.errors import InputError

TRAIN, VAL, TEST = SPLITS["train"], SPLITS["val"], SPLITS["test"]


def allocate(m: int, val: float, test: float, what: str) -> tuple[int, int]:
    """How many of m items go to val and test: at least one each when its fraction is > 0."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise InputError(f"split fractions val={val} test={test} must be in [0, 1) and sum below 1",
                         "e.g. --val 0.15 --test 0.15")
    n_val = max(1, round(m * val)) if val > 0 else 0
    n_test = max(1, round(m * test)) if test > 0 else 0
    if m - n_val - n_test < 1:
        raise InputError(f"too few {what} for the split: {m} cannot fill train, val and test",
                         "generate or import more data, use a shorter --window/--hop, lower --val/--test, "
                         "or --split time for few long recordings")
    return n_val, n_test


def split_random(y: np.ndarray, val: float, test: float, seed: int) -> np.ndarray:
    """Stratified random split of windows (leaks between windows of one recording)."""
    rng = np.random.default_rng(seed)
    split = np.full(len(y), TRAIN, np.int8)
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_val, n_test = allocate(len(idx), val, test, f"windows of class {cls}")
        split[idx[:n_val]] = VAL
        split[idx[n_val:n_val + n_test]] = TEST
    return split


def _group_classes(groups: np.ndarray, y: np.ndarray) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for g, c in zip(groups.tolist(), y.tolist(), strict=True):
        out.setdefault(g, set()).add(c)
    return out


def split_by_group(groups: np.ndarray, y: np.ndarray, val: float, test: float, seed: int,
                   test_groups: list[str] | None = None, val_groups: list[str] | None = None) -> np.ndarray:
    """Assign whole groups to train/val/test.

    Named ``test_groups``/``val_groups`` go to their side; the rest are drawn at random,
    class by class when every group holds one class (so each class reaches every side).
    """
    groups = np.asarray(groups).astype(str)
    rng = np.random.default_rng(seed)
    by_group = _group_classes(groups, np.asarray(y))
    named = {g: TEST for g in (test_groups or [])} | {g: VAL for g in (val_groups or [])}
    unknown = sorted(set(named) - set(by_group))
    if unknown:
        raise InputError(f"unknown group(s) {', '.join(unknown)}",
                         f"groups in the data: {', '.join(sorted(by_group)[:20])}")
    free = sorted(set(by_group) - set(named))
    want_val = 0.0 if val_groups else val
    want_test = 0.0 if test_groups else test
    assign = dict(named)
    single = all(len(c) == 1 for c in by_group.values())
    pools = ([[g for g in free if by_group[g] == {c}] for c in sorted({next(iter(s)) for s in by_group.values()})]
             if single else [free])
    for pool in pools:
        if not pool:
            continue
        pool = list(rng.permutation(pool))
        what = f"groups of class {next(iter(by_group[pool[0]]))}" if single else "groups"
        n_val, n_test = allocate(len(pool), want_val, want_test, what)
        for i, g in enumerate(pool):
            assign[g] = VAL if i < n_val else TEST if i < n_val + n_test else TRAIN
    return np.array([assign[g] for g in groups.tolist()], dtype=np.int8)


def check_split(split: np.ndarray, need_val: bool, need_test: bool) -> None:
    """Every side that should have windows has some."""
    for name, code, need in (("train", TRAIN, True), ("val", VAL, need_val), ("test", TEST, need_test)):
        if need and not np.any(split == code):
            raise InputError(f"too few windows for the split: the {name} split is empty",
                             "import more recordings or groups, or change --val/--test/--test-groups")
