"""Static memory plan: every activation gets a fixed offset in one arena, decided now.

Reshape-like ops are aliases (no bytes of their own). The graph input is read in place
from the caller's buffer and the graph output is written straight into the caller's
buffer, so neither takes arena space. Remaining tensors are placed greedily, largest
first, at the lowest offset that does not collide with a tensor alive at the same time
(the idea of TFLM's GreedyMemoryPlanner).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyml.codegen.ops.base import Alias, Call, In, Out, Step

ALIGN = 4


@dataclass(frozen=True)
class Slot:
    """Where a tensor's bytes live: ``input``/``output`` (caller buffers) or ``arena`` at ``offset``."""

    place: str
    offset: int
    size: int
    first: int  # step index of the write (-1: before invoke)
    last: int  # step index of the last read


@dataclass
class Plan:
    slots: dict[int, Slot]  # tensor index -> slot (aliases share their root's slot)
    arena_bytes: int
    copy_input_to_output: bool  # the output is the input reshaped: one memcpy, no kernel


def _root(parent: dict[int, int], t: int) -> int:
    while parent.get(t, t) != t:
        t = parent[t]
    return t


def plan(steps: list[Step], graph_input: int, graph_output: int, nbytes: dict[int, int]) -> Plan:
    """Assign a slot to every tensor the steps touch."""
    parent: dict[int, int] = {}
    for s in steps:
        if isinstance(s, Alias):
            parent[s.dst] = _root(parent, s.src)
    groups: dict[int, list[int]] = {}
    tensors = {graph_input, graph_output} | set(parent)
    for s in steps:
        if isinstance(s, Call):
            tensors |= {a.tensor for a in s.args if isinstance(a, (In, Out))}
    for t in tensors:
        groups.setdefault(_root(parent, t), []).append(t)

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, s in enumerate(steps):
        if not isinstance(s, Call):
            continue
        for a in s.args:
            if isinstance(a, Out):
                first.setdefault(_root(parent, a.tensor), i)
            elif isinstance(a, In):
                last[_root(parent, a.tensor)] = i
    in_root, out_root = _root(parent, graph_input), _root(parent, graph_output)
    slots: dict[int, Slot] = {}
    arena: list[tuple[int, int, int, int]] = []  # (root, size, first, last)
    for root in groups:
        f = first.get(root, -1)
        lst = max(last.get(root, f), f)
        if root == in_root:
            slot = Slot("input", 0, nbytes[root], -1, lst)
        elif root == out_root:
            slot = Slot("output", 0, nbytes[root], f, len(steps))
        else:
            arena.append((root, nbytes[root], f, lst))
            continue
        for t in groups[root]:
            slots[t] = slot
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    for root, size, f, lst in sorted(arena, key=lambda r: (-r[1], r[2], r[0])):
        offset = _lowest_free(placed, size, f, lst)
        placed.append((offset, size, f, lst))
        for t in groups[root]:
            slots[t] = Slot("arena", offset, size, f, lst)
    total = max((o + s for o, s, _, _ in placed), default=0)
    return Plan(slots, _align(total), in_root == out_root)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _lowest_free(placed: list[tuple[int, int, int, int]], size: int, first: int, last: int) -> int:
    busy = sorted((o, o + s) for o, s, f, lst in placed if f <= last and first <= lst)
    offset = 0
    for start, end in busy:
        if offset + size <= start:
            break
        offset = max(offset, _align(end))
    return offset
