"""Generation-time work for the Cortex-M4 DSP kernels: int8 weights reordered for SXTB16, the
input zero point folded into the bias, requantization records as the portable FULLY_CONNECTED.

``rewrite(call)`` turns a portable kernel call into its DSP twin when one exists; the C side
is in this folder. Everything here is integer arithmetic that the portable kernel does at run
time, moved to generation time, so the DSP build stays bit-exact with the portable one. The
weights keep their int8 size (rows padded to whole groups of 4): the kernels widen the input
to int16 once per layer and each weight word into two int16 pairs as they go.
"""

from __future__ import annotations

import numpy as np

from tinyml.codegen import kernels
from tinyml.codegen.ops.base import Call, Const
from tinyml.errors import InputError

_INT32 = np.iinfo(np.int32)
_PORTABLE = kernels.lowering_module(kernels.PORTABLE)
# per group of 4 weights, the byte order (w0, w2, w1, w3): SXTB16 of the word gives the int16
# pair (w0, w1) and SXTB16 ROR #8 the pair (w2, w3), the order of the widened inputs
_SXTB16_ORDER = [0, 2, 1, 3]


def pack_rows(weights: np.ndarray) -> np.ndarray:
    """[rows, depth] int8 -> int32 words holding the same int8 values in the order dsp.c reads them.

    Each row is zero-padded to whole groups of 4 inputs (at most 3 bytes a row), each group
    reordered as _SXTB16_ORDER. Rows come in blocks of 4 with their groups interleaved (one word
    of each row per group, so one pass reads all four rows); rows left over (rows % 4) follow
    one after the other."""
    rows, depth = weights.shape
    groups = -(-depth // 4)
    padded = np.zeros((rows, 4 * groups), np.int8)
    padded[:, :depth] = weights
    quads = padded.reshape(rows, groups, 4)[:, :, _SXTB16_ORDER]
    full = rows - rows % 4
    blocks = quads[:full].reshape(full // 4, 4, groups, 4).transpose(0, 2, 1, 3)
    flat = np.concatenate([blocks.reshape(-1), quads[full:].reshape(-1)])
    return flat.view("<i4").astype(np.int32)


def fold_input_offset(bias: np.ndarray | None, weights: np.ndarray, input_offset: int) -> np.ndarray:
    """bias[r] + input_offset * sum(weights[r]): sum_d w*(x + off) + b == sum_d w*x + folded."""
    total = _PORTABLE.folded_bias(bias, weights, input_offset)
    if total.min(initial=0) < _INT32.min or total.max(initial=0) > _INT32.max:
        raise InputError("a bias plus the folded input zero point overflows int32",
                         hint="use target portable for this model")
    return total.astype(np.int32)


def _dsp_call(call: Call, kernel: str, rows: int, params: dict[str, int]) -> Call:
    """The DSP call for one whose args are (x, w, bias, mult, shift, out): packed weights,
    folded bias, requantization records (portable/lowering.py; requant_step in params)."""
    x, w, bias, mult, shift, out = call.args
    weights = w.values.reshape(rows, -1)
    folded = fold_input_offset(bias.values if isinstance(bias, Const) else None, weights,
                               int(call.params["input_offset"]))
    shifts = shift.values.astype(np.int64)
    _PORTABLE.check_accumulator_range(folded, weights, np.broadcast_to(shifts, (rows,)), call)
    records = np.array([_PORTABLE.requant_record(int(m), int(s)) for m, s in zip(mult.values, shifts, strict=True)],
                       np.int32)
    params["requant_step"] = _PORTABLE.RECORD_WORDS if len(records) > 1 else 0
    return Call(kernel, params, [x, Const("int32_t", pack_rows(weights), "weights"), Const("int32_t", folded, "bias"),
                                 Const("int32_t", records.reshape(-1), "requant"), out], call.op_index, call.op_name)


def _fully_connected(call: Call) -> Call:
    params = {k: v for k, v in call.params.items() if k not in ("input_offset", "per_channel")}
    return _dsp_call(call, "fully_connected_dsp", int(call.params["out_depth"]), params)


def _conv(call: Call) -> Call:
    p = call.params
    if p["filter_in_c"] != p["in_c"]:  # grouped convolution: the portable kernel handles it
        return call
    params = {k: v for k, v in p.items() if k not in ("input_offset", "filter_in_c")}
    params["input_zero_point"] = -int(p["input_offset"])  # the value of padded taps
    return _dsp_call(call, "conv_dsp", int(p["out_c"]), params)


def _max_pool(call: Call) -> Call:
    return Call("max_pool_dsp", dict(call.params), call.args, call.op_index, call.op_name)


REWRITES = {"fully_connected": _fully_connected, "conv": _conv, "max_pool": _max_pool}


def rewrite(call: Call) -> Call:
    """The DSP twin of a kernel call, or the call itself when the portable kernel is used."""
    fn = REWRITES.get(call.kernel)
    return fn(call) if fn else call
