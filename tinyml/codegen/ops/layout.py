"""CONCATENATION, PAD/PADV2, TRANSPOSE, SLICE/STRIDED_SLICE: data movement only (TFLM keeps scales)."""

from __future__ import annotations

import math

import numpy as np

from tinyml.codegen.ops.base import Call, Graph, Out, Step, lowering

RANK = 5


def _pad_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (1,) * (RANK - len(shape)) + tuple(shape)


@lowering("CONCATENATION")
def concatenation(g: Graph) -> list[Step]:
    out = g.output()
    g.int8(out)
    rank = len(out.shape)
    axis = int(g.op.options.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise g.unsupported(f"axis {axis} outside rank {rank}")
    outer = math.prod(out.shape[:axis])
    out_stride = math.prod(out.shape[axis:])
    steps: list[Step] = []
    offset = 0
    for n in range(len(g.op.inputs)):
        x = g.input(n)
        g.same_quant(x, out)
        if len(x.shape) != rank or any(x.shape[d] != out.shape[d] for d in range(rank) if d != axis):
            raise g.unsupported(f"input {list(x.shape)} does not fit output {list(out.shape)} along axis {axis}")
        chunk = math.prod(x.shape[axis:])
        steps.append(Call("concat_part", {"outer": outer, "chunk": chunk, "out_stride": out_stride,
                                          "out_offset": offset}, [g.operand(n), Out(out.index)]))
        offset += chunk
    if offset != out_stride:
        raise g.unsupported("inputs do not fill the output")
    return steps


@lowering("PAD", "PADV2")
def pad(g: Graph) -> list[Step]:
    x, out = g.input(0), g.output()
    g.same_quant(x, out)
    paddings = np.asarray(g.const(1)).reshape(-1, 2)
    if len(x.shape) > RANK or paddings.shape[0] != len(x.shape) or (paddings < 0).any():
        raise g.unsupported(f"paddings {paddings.tolist()} do not fit input {list(x.shape)}")
    if tuple(int(d + a + b) for d, (a, b) in zip(x.shape, paddings, strict=True)) != out.shape:
        raise g.unsupported(f"padded shape does not match output {list(out.shape)}")
    value = out.quant.zero_points[0]  # type: ignore[union-attr]
    if g.op.opcode == "PADV2" and g.optional_input(2) is not None:
        value = int(np.asarray(g.const(2)).reshape(-1)[0])
    before = (0,) * (RANK - len(x.shape)) + tuple(int(a) for a in paddings[:, 0])
    params = {"in_dims": _pad_shape(x.shape), "out_dims": _pad_shape(out.shape), "before": before, "value": value}
    return [Call("pad", params, [g.operand(0), Out(out.index)])]


@lowering("TRANSPOSE")
def transpose(g: Graph) -> list[Step]:
    x, out = g.input(0), g.output()
    g.same_quant(x, out)
    perm = [int(p) for p in np.asarray(g.const(1)).reshape(-1)]
    rank = len(x.shape)
    if rank > RANK or sorted(perm) != list(range(rank)) or tuple(x.shape[p] for p in perm) != out.shape:
        raise g.unsupported(f"permutation {perm} does not map {list(x.shape)} to {list(out.shape)}")
    in_strides = _strides(x.shape)
    return [_strided_copy(g, out.shape, [in_strides[p] for p in perm], 0)]


def _strides(shape: tuple[int, ...]) -> list[int]:
    return [math.prod(shape[d + 1:]) for d in range(len(shape))]


def _strided_copy(g: Graph, out_shape: tuple[int, ...], strides: list[int], offset: int) -> Call:
    params = {"out_dims": _pad_shape(out_shape), "in_strides": (0,) * (RANK - len(strides)) + tuple(strides),
              "offset": offset}
    return Call("strided_copy", params, [g.operand(0), Out(g.output().index)])


def _slice_axes(g: Graph, shape: tuple[int, ...]) -> list[tuple[int, int, int, bool]]:
    """(start, count, step, keep) per input axis for SLICE / STRIDED_SLICE, Python slice semantics."""
    rank = len(shape)
    begin = [int(v) for v in np.asarray(g.const(1)).reshape(-1)]
    if g.op.opcode == "SLICE":
        size = [int(v) for v in np.asarray(g.const(2)).reshape(-1)]
        if len(begin) != rank or len(size) != rank:
            raise g.unsupported("begin/size do not match the input rank")
        return [(b, (d - b) if n == -1 else n, 1, True) for b, n, d in zip(begin, size, shape, strict=True)]
    end = [int(v) for v in np.asarray(g.const(2)).reshape(-1)]
    step = [int(v) for v in np.asarray(g.const(3)).reshape(-1)] if g.optional_input(3) is not None else [1] * rank
    o = g.op.options
    if o.get("ellipsisMask", 0) or o.get("newAxisMask", 0) or o.get("offset", False):
        raise g.unsupported("ellipsis, new-axis or offset strided slices", "slice with plain begin:end:step")
    if not len(begin) == len(end) == len(step) == rank or 0 in step:
        raise g.unsupported("begin/end/strides do not match the input rank")
    axes = []
    for d in range(rank):
        if o.get("shrinkAxisMask", 0) >> d & 1:
            i = begin[d] + shape[d] if begin[d] < 0 else begin[d]
            axes.append((i, 1, 1, False))
            continue
        b = None if o.get("beginMask", 0) >> d & 1 else begin[d]
        e = None if o.get("endMask", 0) >> d & 1 else end[d]
        idx = range(shape[d])[slice(b, e, step[d])]
        axes.append((idx.start if len(idx) else 0, len(idx), step[d], True))
    return axes


@lowering("SLICE", "STRIDED_SLICE")
def strided_slice(g: Graph) -> list[Step]:
    x, out = g.input(0), g.output()
    g.same_quant(x, out)
    if len(x.shape) > RANK:
        raise g.unsupported(f"more than {RANK} dimensions")
    axes = _slice_axes(g, x.shape)
    if any(not 0 <= s < d or not 0 <= s + (n - 1) * k < d for (s, n, k, _), d in zip(axes, x.shape, strict=True)
           if n > 0):
        raise g.unsupported("slice reaches outside the input")
    kept = tuple(n for _, n, _, keep in axes if keep)
    if math.prod(kept) != out.size or 0 in kept:
        raise g.unsupported(f"slice of {list(x.shape)} gives {list(kept)}, output is {list(out.shape)}")
    strides = _strides(x.shape)
    offset = sum(s * st for (s, _, _, _), st in zip(axes, strides, strict=True))
    return [_strided_copy(g, kept, [k * st for (_, _, k, keep), st in zip(axes, strides, strict=True) if keep],
                          offset)]
