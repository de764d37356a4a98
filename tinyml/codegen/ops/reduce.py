"""MEAN and REDUCE_MAX over a contiguous block of axes (Keras GlobalAveragePooling, reduce_mean)."""

from __future__ import annotations

import math

import numpy as np

from tinyml.codegen import fixedpoint as fp
from tinyml.codegen.ops.base import Call, Graph, In, Out, Step, lowering


def reduce_block(g: Graph, shape: tuple[int, ...], axes: np.ndarray) -> tuple[int, int, int]:
    """(outer, reduced, inner) element counts; the reduced axes must be adjacent (size-1 axes aside)."""
    rank = len(shape)
    resolved = sorted({int(a) + rank if a < 0 else int(a) for a in axes.reshape(-1)})
    if any(not 0 <= a < rank for a in resolved):
        raise g.unsupported(f"reduction axes {axes.tolist()} outside rank {rank}")
    real = [a for a in resolved if shape[a] > 1]
    if not real:
        return math.prod(shape), 1, 1
    lo, hi = real[0], real[-1]
    if any(shape[a] > 1 and a not in resolved for a in range(lo, hi + 1)):
        raise g.unsupported(f"reduces non-adjacent axes {resolved} of {list(shape)}",
                            "reduce adjacent axes only (e.g. transpose first)")
    return math.prod(shape[:lo]), math.prod(shape[lo:hi + 1]), math.prod(shape[hi + 1:])


def mean_multiplier(in_scale: float, out_scale: float, count: int) -> tuple[int, int]:
    """TFLM's QuantizedMeanOrSum: the 1/count factor folded into the multiplier in integers."""
    m, s = fp.quantize_multiplier(in_scale / out_scale)
    shift = min(count.bit_length() - 1, 32, 31 + s)
    return int((m << shift) // count), s - shift


@lowering("MEAN", "REDUCE_MAX")
def reduce(g: Graph) -> list[Step]:
    x, out = g.input(0), g.output()
    qx, qo = g.int8(x), g.int8(out)
    axes = g.const(1)
    outer, red, inner = reduce_block(g, x.shape, axes)
    if out.size != outer * inner:
        raise g.unsupported(f"output {list(out.shape)} does not match reducing {list(x.shape)} over {axes.tolist()}")
    params = {"outer": outer, "reduced": red, "inner": inner}
    if g.op.opcode == "REDUCE_MAX":
        g.same_quant(x, out)
        return [Call("reduce_max", params, [In(x.index), Out(out.index)])]
    m, s = mean_multiplier(qx.scales[0], qo.scales[0], red)
    params.update({"input_zero_point": qx.zero_points[0], "output_zero_point": qo.zero_points[0],
                   "multiplier": m, "shift": s})
    return [Call("mean", params, [In(x.index), Out(out.index)])]
