"""FULLY_CONNECTED (Keras Dense): int8 weights per tensor or per output channel."""

from __future__ import annotations

import numpy as np

from tinyml.codegen import fixedpoint as fp
from tinyml.codegen.ops.base import Call, Const, Graph, In, Out, Step, lowering, multiplier_consts


def bias_const(g: Graph, n: int, channels: int) -> Const | None:
    """The int32 bias operand, checked against the channel count; None when omitted."""
    t = g.optional_input(n)
    if t is None:
        return None
    if t.dtype != "int32" or t.data is None or t.size != channels:
        raise g.unsupported(f"bias must be a constant int32 vector of {channels} values "
                            f"(found {t.dtype} {list(t.shape)})", "quantize with int8 weights and int32 biases")
    return Const("int32_t", t.data.reshape(-1).astype(np.int32), "bias")


def weights_const(g: Graph, n: int, rank: int) -> tuple[Const, tuple[float, ...]]:
    """An int8 symmetric weight tensor of the given rank and its scales."""
    t = g.input(n)
    if t.dtype != "int8" or t.data is None or len(t.shape) != rank:
        raise g.unsupported(f"weights must be a constant int8 tensor of rank {rank} "
                            f"(found {t.dtype} {list(t.shape)}{'' if t.data is not None else ', not constant'})",
                            "quantize to full int8; weights must not be computed at run time")
    q = g.int8(t, per_channel_ok=True)
    if any(z != 0 for z in q.zero_points):
        raise g.unsupported("weights have a non-zero zero point", "use the default symmetric weight quantization")
    return Const("int8_t", t.data.reshape(-1).astype(np.int8), "weights"), q.scales


@lowering("FULLY_CONNECTED")
def fully_connected(g: Graph) -> list[Step]:
    x, out = g.input(0), g.output()
    qx, qo = g.int8(x), g.int8(out)
    w, w_scales = weights_const(g, 1, 2)
    units, depth = g.input(1).shape
    if g.op.options.get("weightsFormat", 0) != 0:
        raise g.unsupported("shuffled weights format", "use the default weights format")
    if depth == 0 or x.size % depth or out.size != (x.size // depth) * units:
        raise g.unsupported(f"shapes do not fit: input {list(x.shape)}, weights {[units, depth]}, "
                            f"output {list(out.shape)}")
    per_channel = len(w_scales) > 1
    if per_channel and g.input(1).quant.axis != 0:  # type: ignore[union-attr]
        raise g.unsupported("per-channel weight scales along the input axis")
    mults, shifts = fp.conv_multipliers(qx.scales[0], w_scales, qo.scales[0], units if per_channel else 1)
    lo, hi = fp.activation_range(g.op.options.get("fusedActivationFunction", 0), qo.scales[0], qo.zero_points[0])
    params = {"batches": x.size // depth, "accum_depth": depth, "out_depth": units,
              "input_offset": -qx.zero_points[0], "output_offset": qo.zero_points[0],
              "act_min": lo, "act_max": hi, "per_channel": int(per_channel)}
    return [Call("fully_connected", params,
                 [In(x.index), w, bias_const(g, 2, units), *multiplier_consts(mults, shifts), Out(out.index)])]
