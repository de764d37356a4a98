"""Generation-time work for the Cortex-M4 DSP kernels: weights re-laid out for SMLAD, input
zero point folded into the bias.

``rewrite(call)`` turns a portable kernel call into its DSP twin when one exists; the C side
is in this folder. Everything here is integer arithmetic that the portable kernel does at run
time, moved to generation time, so the DSP build stays bit-exact with the portable one.
"""

from __future__ import annotations

import numpy as np

from tinyml.codegen.ops.base import Call, Const
from tinyml.errors import InputError

_INT32 = np.iinfo(np.int32)


def interleave_rows(weights: np.ndarray) -> np.ndarray:
    """[rows, depth] int8 -> int32 words: rows zero-padded to 4k inputs, blocks of 4 rows interleaved
    word by word (group g: row 0, 1, 2, 3), leftover rows after, each row's words in order."""
    rows, depth = weights.shape
    groups = -(-depth // 4)
    padded = np.zeros((rows, 4 * groups), np.int8)
    padded[:, :depth] = weights
    words = padded.view("<i4").reshape(rows, groups)
    full = rows - rows % 4
    blocks = words[:full].reshape(full // 4, 4, groups).transpose(0, 2, 1).reshape(-1)
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


def _fully_connected(call: Call) -> Call:
    x, w, bias, mult, shift, out = call.args
    p = call.params
    assert isinstance(w, Const) and isinstance(mult, Const) and isinstance(shift, Const)
    weights = w.values.reshape(p["out_depth"], p["accum_depth"])
    folded = fold_input_offset(bias.values if isinstance(bias, Const) else None, weights, p["input_offset"])
    params = {k: v for k, v in p.items() if k != "input_offset"}
    return Call("fully_connected_dsp", params,
                [x, Const("int32_t", interleave_rows(weights), "weights"), Const("int32_t", folded, "bias"),
                 mult, shift, out], call.op_index, call.op_name)


REWRITES = {"fully_connected": _fully_connected}


def rewrite(call: Call) -> Call:
    """The DSP twin of a kernel call, or the call itself when the portable kernel is used."""
    fn = REWRITES.get(call.kernel)
    return fn(call) if fn else call
