"""Standalone activations: RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH, and QUANTIZE int8 -> int8."""

from __future__ import annotations

import math

import numpy as np

from tinyml.codegen import fixedpoint as fp
from tinyml.codegen.ops.base import Call, Graph, In, Out, Step, lowering

_INPUT_INTEGER_BITS = 4


def _f32_ratio(a: float, b: float) -> float:
    return float(np.float32(a) / np.float32(b))


def _requantize(g: Graph, real: float, lo: int, hi: int) -> list[Step]:
    x, out = g.input(0), g.output()
    m, s = fp.quantize_multiplier(real)
    params = {"size": x.size, "input_zero_point": x.quant.zero_points[0],  # type: ignore[union-attr]
              "output_zero_point": out.quant.zero_points[0], "multiplier": m, "shift": s,  # type: ignore[union-attr]
              "act_min": lo, "act_max": hi}
    return [Call("requantize", params, [In(x.index), Out(out.index)])]


def _unary_io(g: Graph) -> tuple[float, int, float, int]:
    x, out = g.input(0), g.output()
    qx, qo = g.int8(x), g.int8(out)
    if x.size != out.size:
        raise g.unsupported(f"input {list(x.shape)} and output {list(out.shape)} differ in size")
    return qx.scales[0], qx.zero_points[0], qo.scales[0], qo.zero_points[0]


@lowering("RELU")
def relu(g: Graph) -> list[Step]:
    si, _, so, zo = _unary_io(g)
    lo = max(-128, zo + fp.round_away(fp.f32(np.float32(0.0) / np.float32(so))))
    return _requantize(g, _f32_ratio(si, so), lo, 127)


@lowering("QUANTIZE")
def quantize(g: Graph) -> list[Step]:
    if g.input(0).dtype != "int8":
        raise g.unsupported(f"quantizes {g.input(0).dtype} inside the graph",
                            "only int8 -> int8 requantization (and a float input boundary) is supported")
    si, _, so, _ = _unary_io(g)
    return _requantize(g, si / so, -128, 127)


@lowering("RELU6")
def relu6(g: Graph) -> list[Step]:
    si, zi, _, _ = _unary_io(g)
    g.same_quant(g.input(0), g.output())
    six = max(-128, min(127, fp.round_away(fp.f32(np.float32(6.0) / np.float32(si))) + zi))
    x, out = g.input(0), g.output()
    return [Call("clamp", {"size": x.size, "lo": zi, "hi": six}, [In(x.index), Out(out.index)])]


@lowering("LEAKY_RELU")
def leaky_relu(g: Graph) -> list[Step]:
    si, zi, so, zo = _unary_io(g)
    alpha = float(g.op.options.get("alpha", 0.2))
    if alpha < 0:
        raise g.unsupported("negative alpha", "use a LeakyReLU slope >= 0")
    m_id, s_id = fp.quantize_multiplier(_f32_ratio(si, so))
    m_a, s_a = fp.quantize_multiplier(fp.f32(np.float32(si) * np.float32(alpha) / np.float32(so)))
    x, out = g.input(0), g.output()
    params = {"size": x.size, "input_zero_point": zi, "output_zero_point": zo, "m_identity": m_id,
              "s_identity": s_id, "m_alpha": m_a, "s_alpha": s_a}
    return [Call("leaky_relu", params, [In(x.index), Out(out.index)])]


def logistic_params(in_scale: float) -> tuple[int, int, int]:
    """TFLM's LOGISTIC/TANH Prepare: multiplier from frexp without renormalising, and the input radius."""
    q, shift = math.frexp(in_scale * float(1 << (31 - _INPUT_INTEGER_BITS)))
    m = fp.round_away(q * float(1 << 31))
    m = m - (1 << 32) if m >= 1 << 31 else m  # static_cast<int32_t> of 2^31 wraps
    radius = math.floor(((1 << _INPUT_INTEGER_BITS) - 1) * float(1 << (31 - _INPUT_INTEGER_BITS)) / float(1 << shift)) \
        if shift >= 0 else (1 << 31) - 1
    return m, shift, radius


@lowering("LOGISTIC", "TANH")
def logistic_tanh(g: Graph) -> list[Step]:
    si, zi, so, zo = _unary_io(g)
    want = (1.0 / 256, -128) if g.op.opcode == "LOGISTIC" else (1.0 / 128, 0)
    if (so, zo) != want:
        raise g.unsupported(f"output quantization must be scale {want[0]}, zero point {want[1]}",
                            "quantize with the default TFLite converter")
    m, shift, radius = logistic_params(si)
    x, out = g.input(0), g.output()
    params = {"size": x.size, "input_zero_point": zi, "input_range_radius": radius, "input_multiplier": m,
              "input_left_shift": shift}
    return [Call(g.op.opcode.lower(), params, [In(x.index), Out(out.index)])]


def _int16_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier then DownScaleInt32ToInt16Multiplier."""
    m, e = fp.quantize_multiplier(real)
    return (32767 if m >= (1 << 31) - 1 - (1 << 15) else (m + (1 << 15)) >> 16), e


@lowering("HARD_SWISH")
def hard_swish(g: Graph) -> list[Step]:
    si, zi, so, zo = _unary_io(g)
    f = np.float32
    hires = f(1.0 / 128.0) * f(si)
    m_out, e_out = _int16_multiplier(float(hires / f(so)))
    m_rel, e_rel = _int16_multiplier(float(hires / f(3.0 / 32768.0)))
    if not -15 <= e_out <= 0 or not -15 <= e_rel <= 15:
        raise g.unsupported("input/output scales outside the range TFLM's int8 HARD_SWISH handles",
                            "quantize with a representative dataset")
    x, out = g.input(0), g.output()
    params = {"size": x.size, "input_zero_point": zi, "output_zero_point": zo, "output_multiplier": m_out,
              "output_exponent": e_out, "reluish_multiplier": m_rel, "reluish_exponent": e_rel}
    return [Call("hard_swish", params, [In(x.index), Out(out.index)])]
