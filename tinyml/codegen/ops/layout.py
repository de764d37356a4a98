"""CONCATENATION, PAD/PADV2 and TRANSPOSE: data movement only (TFLM keeps scales unchanged)."""

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
    in_strides = [math.prod(x.shape[d + 1:]) for d in range(rank)]
    lead = RANK - rank
    strides = (0,) * lead + tuple(in_strides[p] for p in perm)
    return [Call("transpose", {"out_dims": _pad_shape(out.shape), "in_strides": strides},
                 [g.operand(0), Out(out.index)])]
