"""SOFTMAX int8: TFLM's fixed-point exp/reciprocal path with beta folded into one multiplier."""

from __future__ import annotations

import math

from tinyml.codegen import fixedpoint as fp
from tinyml.codegen.ops.base import Call, Graph, In, Out, Step, lowering

_SCALED_DIFF_INTEGER_BITS = 5


def softmax_params(beta: float, in_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius: (multiplier, left shift, diff_min)."""
    real = min(fp.f32(beta) * in_scale * float(1 << (31 - _SCALED_DIFF_INTEGER_BITS)), float((1 << 31) - 1))
    m, shift = fp.quantize_multiplier(real)
    if shift < 0:
        raise ValueError("softmax input scale too small")
    radius = ((1 << _SCALED_DIFF_INTEGER_BITS) - 1) * float(1 << (31 - _SCALED_DIFF_INTEGER_BITS)) / float(1 << shift)
    return m, shift, -math.floor(radius)


@lowering("SOFTMAX")
def softmax(g: Graph) -> list[Step]:
    x, out = g.input(0), g.output()
    qx, qo = g.int8(x), g.int8(out)
    if qo.zero_points[0] != -128 or qo.scales[0] != 1.0 / 256:
        raise g.unsupported("int8 softmax output must have scale 1/256 and zero point -128",
                            "quantize with the default TFLite converter")
    if not x.shape or x.shape != out.shape:
        raise g.unsupported(f"input {list(x.shape)} and output {list(out.shape)} differ")
    try:
        m, shift, diff_min = softmax_params(float(g.op.options.get("beta", 1.0)), qx.scales[0])
    except ValueError:
        raise g.unsupported("beta * input scale is too small to represent", "use beta = 1") from None
    depth = x.shape[-1]
    params = {"outer": x.size // depth if depth else 0, "depth": depth, "input_multiplier": m,
              "input_left_shift": shift, "diff_min": diff_min}
    return [Call("softmax", params, [In(x.index), Out(out.index)])]
