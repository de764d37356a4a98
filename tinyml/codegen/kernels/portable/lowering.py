"""Generation-time work for the portable FULLY_CONNECTED kernel: the input zero point folded
into the bias, and TFLM's two-step requantization turned into one record per output channel.

TFLM requantizes an accumulator x with a multiplier m in [2^30, 2^31) (or m = 0 with shift 0)
and a shift s as RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^max(s, 0), m),
max(-s, 0)): two roundings of a 64-bit product. They fold into one floor division:

- s = -r < 0: floor((x*m + 2^30 + 2^(30+r) - [x < 0] * 2^31) / 2^(31+r)). The first rounding is
  floor((x*m + 2^30) / 2^31) =: t; the second adds 2^(r-1) - [t < 0] and floors; t < 0 exactly
  when x < 0 (m >= 2^30; for x = -1, m = 2^30 both sides give 0), and nested floors of integer
  sums are one floor.
- s = l >= 0: floor((x * 2^l * m + 2^30) / 2^31), one rounding. Equal to TFLM wherever its
  x * 2^l does not overflow int32 (where it does, TFLM's result is undefined).

Doubled, both read hi32(x*M + 2^31) + H - C*[x < 0], then an arithmetic shift right by k, where
hi32(z) = floor(z / 2^32): for s < 0, M = 2m, H = 2^(r-1), C = 1, k = r; for s >= 0,
M = m * 2^(l+1), H = C = 0, k = 0. M is split as M_lo + M_hi * 2^32 with M_lo a signed 32-bit
word, so the kernel needs one 32x32->64 multiply-accumulate and one 32-bit multiply-add. The
record is (M_lo, M_hi, C, H, k), in that order (tml_requant_out in portable/requant_out.c).

The kernel keeps the high word in 32 bits: exact while |x| + 2^(r-1) + 1 < 2^31 for every
accumulator the layer can produce, which is checked here from the weights and the folded bias.
"""

from __future__ import annotations

import numpy as np

from tinyml.codegen.ops.base import Call, Const
from tinyml.errors import InputError

RECORD_WORDS = 5
_INT32_LIMIT = 1 << 31


def requant_record(multiplier: int, shift: int) -> list[int]:
    """(M_lo, M_hi, C, H, k) for one TFLM (multiplier, shift) pair (see the module docstring)."""
    if shift < 0:
        big, neg, top, k = 2 * multiplier, 1, 1 << (-shift - 1), -shift
    else:
        big, neg, top, k = multiplier << (shift + 1), 0, 0, 0
    m_lo = (big + _INT32_LIMIT) % (1 << 32) - _INT32_LIMIT
    return [m_lo, (big - m_lo) >> 32, neg, top, k]


def folded_bias(bias: np.ndarray | None, weights: np.ndarray, input_offset: int) -> np.ndarray:
    """bias[r] + input_offset * sum(weights[r]) as int64: sum_d w*(x + off) + b == sum_d w*x + folded."""
    total = weights.astype(np.int64).sum(axis=1) * input_offset
    return total + bias.astype(np.int64).reshape(-1) if bias is not None else total


def check_accumulator_range(folded: np.ndarray, weights: np.ndarray, shifts: np.ndarray, call: Call) -> None:
    """Refuse a layer whose accumulators (int8 inputs, so |x| <= 128) could leave the range in
    which the kernel's 32-bit high word is exact; TFLM's int32 accumulator overflows near there too."""
    reach = np.abs(folded) + 128 * np.abs(weights.astype(np.int64)).sum(axis=1)
    rounding = np.where(shifts < 0, np.left_shift(1, np.maximum(-shifts.astype(np.int64) - 1, 0)), 0)
    if (reach + rounding + 1 >= _INT32_LIMIT).any():
        raise InputError(f"operator #{call.op_index} {call.op_name}: its accumulators can reach "
                         f"{int(reach.max()):,}, too close to the int32 limit",
                         hint="re-quantize the model; its biases are implausibly large for int8 weights")


def _fully_connected(call: Call) -> Call:
    x, w, bias, mult, shift, out = call.args
    units = int(call.params["out_depth"])
    weights = w.values.reshape(units, -1)
    folded = folded_bias(bias.values if isinstance(bias, Const) else None, weights, int(call.params["input_offset"]))
    shifts = shift.values.astype(np.int64)
    check_accumulator_range(folded, weights, np.broadcast_to(shifts, (units,)), call)
    records = np.array([requant_record(int(m), int(s)) for m, s in zip(mult.values, shifts, strict=True)],
                       np.int32)
    params = {k: v for k, v in call.params.items() if k not in ("input_offset", "per_channel")}
    params["requant_step"] = RECORD_WORDS if call.params["per_channel"] else 0
    return Call("fully_connected", params,
                [x, w, Const("int32_t", folded.astype(np.int32), "bias"),
                 Const("int32_t", records.reshape(-1), "requant"), out],
                call.op_index, call.op_name)


REWRITES = {"fully_connected": _fully_connected}


def rewrite(call: Call) -> Call:
    """The portable kernel's own layout of a call, or the call itself."""
    fn = REWRITES.get(call.kernel)
    return fn(call) if fn else call
