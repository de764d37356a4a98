"""ADD, SUB, MUL on int8 with numpy-style broadcasting (up to 5-D), rescaling folded now."""

from __future__ import annotations

import numpy as np

from tinyml.codegen import fixedpoint as fp
from tinyml.codegen.ops.base import Call, Graph, Out, Step, lowering

RANK = 5
_OPS = {"ADD": 0, "SUB": 1, "MUL": 2}


def broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of ``shape`` inside the rank-5 ``out`` (0 along broadcast axes)."""
    padded = (1,) * (RANK - len(shape)) + tuple(shape)
    strides, step = [0] * RANK, 1
    for axis in reversed(range(RANK)):
        strides[axis] = step if padded[axis] != 1 or out[axis] == 1 else 0
        if padded[axis] != 1:
            strides[axis] = step
        step *= padded[axis]
    return tuple(strides)


def _rescale(op: str, s1: float, s2: float, so: float) -> dict[str, int]:
    """TFLM's Prepare for ADD (double), SUB (float32 then double) and MUL (double)."""
    if op == "MUL":
        m, s = fp.quantize_multiplier(s1 * s2 / so)
        return {"left_shift": 0, "m1": 0, "s1": 0, "m2": 0, "s2": 0, "m_out": m, "s_out": s}
    left = 20
    if op == "ADD":
        twice = 2 * max(s1, s2)
        r1, r2, ro = s1 / twice, s2 / twice, twice / ((1 << left) * so)
    else:
        f = np.float32
        twice32 = f(2) * f(max(s1, s2))
        r1, r2 = float(f(s1) / twice32), float(f(s2) / twice32)
        ro = float(twice32 / (f(1 << left) * f(so)))
    (m1, sh1), (m2, sh2), (mo, sho) = (fp.quantize_multiplier(r) for r in (r1, r2, ro))
    return {"left_shift": left, "m1": m1, "s1": sh1, "m2": m2, "s2": sh2, "m_out": mo, "s_out": sho}


@lowering("ADD", "SUB", "MUL")
def binary(g: Graph) -> list[Step]:
    a, b, out = g.input(0), g.input(1), g.output()
    qa, qb, qo = g.int8(a), g.int8(b), g.int8(out)
    if max(len(a.shape), len(b.shape), len(out.shape)) > RANK:
        raise g.unsupported(f"more than {RANK} dimensions")
    try:
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise g.unsupported(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    if shape != out.shape:
        raise g.unsupported(f"output {list(out.shape)} is not the broadcast shape {list(shape)}")
    dims = (1,) * (RANK - len(shape)) + shape
    lo, hi = fp.activation_range(int(g.op.options.get("fusedActivationFunction", 0)), qo.scales[0],
                                 qo.zero_points[0])
    params: dict[str, int | tuple[int, ...]] = {
        "op": _OPS[g.op.opcode], "dims": dims, "a_strides": broadcast_strides(a.shape, dims),
        "b_strides": broadcast_strides(b.shape, dims), "a_offset": -qa.zero_points[0],
        "b_offset": -qb.zero_points[0], "out_offset": qo.zero_points[0], "act_min": lo, "act_max": hi,
        **_rescale(g.op.opcode, qa.scales[0], qb.scales[0], qo.scales[0])}
    return [Call("elementwise", params, [g.operand(0), g.operand(1), Out(out.index)])]
