"""CONV_2D and DEPTHWISE_CONV_2D (Keras Conv1D/Conv2D/DepthwiseConv, SeparableConv halves).

Padding, output sizes and per-channel requantization are folded here; the kernels only
loop. Conv1D arrives as EXPAND_DIMS + CONV_2D + RESHAPE and needs nothing special.
"""

from __future__ import annotations

from tinyml.codegen import fixedpoint as fp
from tinyml.codegen.ops.base import Call, Graph, In, Out, Step, lowering, multiplier_consts
from tinyml.codegen.ops.fully_connected import bias_const, weights_const

SAME, VALID = 0, 1


def out_size(padding: int, size: int, k: int, stride: int, dilation: int) -> int:
    eff = (k - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == SAME else (size + stride - eff) // stride


def pad_before(padding: int, size: int, k: int, stride: int, dilation: int, out: int) -> int:
    """TFLM's ComputePaddingHeightWidth: half the total padding (the odd pixel goes after)."""
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2 if padding == SAME else 0


def window(g: Graph, in_hw: tuple[int, int], k_hw: tuple[int, int], out_hw: tuple[int, int],
           dilation: tuple[int, int] = (1, 1)) -> dict[str, int]:
    """Strides, dilations and paddings after checking the output shape TFLM would compute."""
    o = g.op.options
    padding = int(o.get("padding", 0))
    stride = (int(o.get("strideH", 1)), int(o.get("strideW", 1)))
    if padding not in (SAME, VALID) or min(stride) < 1 or min(dilation) < 1 or min(k_hw) < 1:
        raise g.unsupported(f"invalid window (padding {padding}, strides {stride}, dilation {dilation})")
    for axis in (0, 1):
        want = out_size(padding, in_hw[axis], k_hw[axis], stride[axis], dilation[axis])
        if want != out_hw[axis]:
            raise g.unsupported(f"output size {out_hw[axis]} does not match the window ({want} expected)")
    return {"stride_h": stride[0], "stride_w": stride[1], "dil_h": dilation[0], "dil_w": dilation[1],
            "pad_h": pad_before(padding, in_hw[0], k_hw[0], stride[0], dilation[0], out_hw[0]),
            "pad_w": pad_before(padding, in_hw[1], k_hw[1], stride[1], dilation[1], out_hw[1])}


def _nhwc(g: Graph, shape: tuple[int, ...], what: str) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise g.unsupported(f"{what} must be 4-D NHWC, found {list(shape)}")
    return shape[0], shape[1], shape[2], shape[3]


@lowering("CONV_2D", "DEPTHWISE_CONV_2D")
def conv(g: Graph) -> list[Step]:
    x, out = g.input(0), g.output()
    qx, qo = g.int8(x), g.int8(out)
    w, w_scales = weights_const(g, 1, 4)
    n, ih, iw, ic = _nhwc(g, x.shape, "input")
    on, oh, ow, oc = _nhwc(g, out.shape, "output")
    wt = g.input(1)
    depthwise = g.op.opcode == "DEPTHWISE_CONV_2D"
    if depthwise:
        _, kh, kw, wc = wt.shape
        mult = oc // ic if ic else 0
        if wc != oc or mult < 1 or ic * mult != oc:
            raise g.unsupported(f"weights {list(wt.shape)} do not fit input channels {ic} -> {oc}")
        q_axis = 3
    else:
        wo, kh, kw, wi = wt.shape
        if wo != oc or wi < 1 or ic % wi or oc % (ic // wi):
            raise g.unsupported(f"weights {list(wt.shape)} do not fit input channels {ic} -> {oc}")
        q_axis = 0
    if on != n:
        raise g.unsupported(f"batch changes from {n} to {on}")
    if len(w_scales) > 1 and wt.quant.axis != q_axis:  # type: ignore[union-attr]
        raise g.unsupported(f"per-channel weight scales along axis {wt.quant.axis}")  # type: ignore[union-attr]
    o = g.op.options
    dilation = (int(o.get("dilationHFactor", 1)), int(o.get("dilationWFactor", 1)))
    params = {"batches": n, "in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc,
              "k_h": kh, "k_w": kw, **window(g, (ih, iw), (kh, kw), (oh, ow), dilation)}
    if depthwise:
        params["depth_mult"] = oc // ic
    else:
        params["filter_in_c"] = wt.shape[3]
    lo, hi = fp.activation_range(int(o.get("fusedActivationFunction", 0)), qo.scales[0], qo.zero_points[0])
    params.update({"input_offset": -qx.zero_points[0], "output_offset": qo.zero_points[0], "act_min": lo, "act_max": hi})
    mults, shifts = fp.conv_multipliers(qx.scales[0], w_scales, qo.scales[0], oc)
    kernel = "depthwise_conv" if depthwise else "conv"
    return [Call(kernel, params, [In(x.index), w, bias_const(g, 2, oc), *multiplier_consts(mults, shifts),
                                  Out(out.index)])]
