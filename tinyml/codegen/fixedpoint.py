"""Generation-time arithmetic that TFLM does in its Prepare step, reproduced bit for bit.

TFLM derives integer multipliers and activation ranges from float scales with particular
float/double steps; the generated C gets the same integers only if we repeat those steps
exactly (float32 products where TFLM multiplies floats, double where it uses double).
"""

from __future__ import annotations

import math

import numpy as np

from tinyml.errors import InputError

_Q31 = 1 << 31


def round_away(x: float) -> int:
    """std::round: halves away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier: real = m * 2^(shift - 31), m in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real) or real < 0:
        raise InputError(f"cannot represent the rescale factor {real!r}",
                         hint="the model has invalid quantization scales; re-quantize it")
    q, shift = math.frexp(real)
    q_fixed = round_away(q * _Q31)
    if q_fixed == _Q31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise InputError(f"rescale factor {real!r} is too large for int32 fixed point",
                         hint="the model's quantization scales are implausible; re-quantize it")
    return q_fixed, shift


def f32(x: float) -> float:
    return float(np.float32(x))


def conv_multipliers(in_scale: float, filter_scales: tuple[float, ...], out_scale: float,
                     channels: int) -> tuple[list[int], list[int]]:
    """One (multiplier, shift) per output channel from in*filter/out scales, in double.

    PopulateConvolutionQuantizationParams does this for CONV_2D/DEPTHWISE_CONV_2D; TFLM's
    FULLY_CONNECTED agrees with the same double product (checked on the ToyCar model).
    """
    mults, shifts = [], []
    for c in range(channels):
        fs = filter_scales[c] if len(filter_scales) > 1 else filter_scales[0]
        m, s = quantize_multiplier(in_scale * fs / out_scale)
        mults.append(m)
        shifts.append(s)
    return mults, shifts


def quantize_value(scale: float, zero_point: int, value: float) -> int:
    """TFLM's activation-range Quantize(): float32 division, round half away."""
    return zero_point + round_away(f32(np.float32(value) / np.float32(scale)))


def activation_range(activation: int, scale: float, zero_point: int,
                     qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for the fused activation enum (0 none, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6)."""
    if activation == 0:
        return qmin, qmax
    if activation == 1:
        return max(qmin, quantize_value(scale, zero_point, 0.0)), qmax
    if activation == 3:
        return max(qmin, quantize_value(scale, zero_point, 0.0)), min(qmax, quantize_value(scale, zero_point, 6.0))
    if activation == 2:
        return max(qmin, quantize_value(scale, zero_point, -1.0)), min(qmax, quantize_value(scale, zero_point, 1.0))
    raise InputError(f"unsupported fused activation {activation} (TANH/SIGN_BIT fusions)",
                     hint="use relu, relu6 or no activation inside Conv/Dense layers")
