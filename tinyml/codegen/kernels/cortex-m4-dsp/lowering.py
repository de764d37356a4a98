"""Generation-time work for the Cortex-M4 DSP kernels: weights widened to int16 and laid out
for SMLAD, the input zero point folded into the bias.

``rewrite(call)`` turns a portable kernel call into its DSP twin when one exists; the C side
is in this folder. Everything here is integer arithmetic that the portable kernel does at run
time, moved to generation time, so the DSP build stays bit-exact with the portable one.
"""

from __future__ import annotations

import numpy as np

from tinyml.codegen.ops.base import Call, Const
from tinyml.errors import InputError

_INT32 = np.iinfo(np.int32)


def widen_rows(weights: np.ndarray) -> np.ndarray:
    """[rows, depth] int8 -> int32 words of two int16 weights, in the order SMLAD consumes them.

    Each row is zero-padded to a multiple of 4 inputs; per group of 4 inputs (x0..x3) a row gives
    two words, (w0, w2) and (w1, w3), matching SXTB16 of the input word and of it rotated by 8.
    Rows go in blocks of 4, interleaved per group (row 0 even, row 0 odd, row 1 even, ...), so
    the kernel walks one pointer; rows left over (rows % 4) follow one after the other."""
    rows, depth = weights.shape
    groups = -(-depth // 4)
    padded = np.zeros((rows, 4 * groups), "<i2")
    padded[:, :depth] = weights
    quads = padded.reshape(rows, groups, 4)
    pairs = np.ascontiguousarray(np.stack([quads[:, :, 0::2], quads[:, :, 1::2]], axis=2))
    words = pairs.view("<i4").reshape(rows, groups, 2)
    full = rows - rows % 4
    blocks = words[:full].reshape(full // 4, 4, groups, 2).transpose(0, 2, 1, 3).reshape(-1)
    return np.concatenate([blocks, words[full:].reshape(-1)]).astype(np.int32)


def fold_input_offset(bias: np.ndarray | None, weights: np.ndarray, input_offset: int) -> np.ndarray:
    """bias[r] + input_offset * sum(weights[r]): sum_d w*(x + off) + b == sum_d w*x + folded."""
    total = weights.astype(np.int64).sum(axis=1) * input_offset
    if bias is not None:
        total += bias.astype(np.int64).reshape(-1)
    if total.min(initial=0) < _INT32.min or total.max(initial=0) > _INT32.max:
        raise InputError("a bias plus the folded input zero point overflows int32",
                         hint="use target portable for this model")
    return total.astype(np.int32)


def _weights_and_bias(call: Call, rows: int) -> tuple[Const, Const]:
    """The DSP weight words and folded bias for a call whose args are (x, w, bias, mult, shift, out)."""
    w, bias = call.args[1], call.args[2]
    weights = w.values.reshape(rows, -1)
    folded = fold_input_offset(bias.values if isinstance(bias, Const) else None, weights,
                               call.params["input_offset"])
    return Const("int32_t", widen_rows(weights), "weights"), Const("int32_t", folded, "bias")


def _fully_connected(call: Call) -> Call:
    x, _, _, mult, shift, out = call.args
    weights, bias = _weights_and_bias(call, call.params["out_depth"])
    params = {k: v for k, v in call.params.items() if k != "input_offset"}
    return Call("fully_connected_dsp", params, [x, weights, bias, mult, shift, out], call.op_index, call.op_name)


def _conv(call: Call) -> Call:
    p = call.params
    if p["filter_in_c"] != p["in_c"]:  # grouped convolution: the portable kernel handles it
        return call
    x, _, _, mult, shift, out = call.args
    weights, bias = _weights_and_bias(call, p["out_c"])
    params = {k: v for k, v in p.items() if k not in ("input_offset", "filter_in_c")}
    params["input_zero_point"] = -p["input_offset"]  # the value of padded taps in gathered patches
    return Call("conv_dsp", params, [x, weights, bias, mult, shift, out], call.op_index, call.op_name)


REWRITES = {"fully_connected": _fully_connected, "conv": _conv}


def rewrite(call: Call) -> Call:
    """The DSP twin of a kernel call, or the call itself when the portable kernel is used."""
    fn = REWRITES.get(call.kernel)
    return fn(call) if fn else call
