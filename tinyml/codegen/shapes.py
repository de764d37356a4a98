"""Generation-time shape arithmetic: fold int32 shape subgraphs and fix placeholder shapes.

Keras 3 lowers Dense on rank>2 inputs, Reshape and Permute with a dynamic batch dimension:
SHAPE -> GATHER/STRIDED_SLICE/REDUCE_PROD/CONCATENATION/PACK -> RESHAPE, and stores
placeholder shapes (1s) in the tensors downstream. With a static input shape all of that is
known now: these int32 ops are evaluated with numpy, RESHAPE takes the folded shape, and
output shapes are re-derived for the ops whose shapes depend on it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tinyml.errors import InputError
from tinyml.model.tflite import Model, Operator, Tensor

_SAME_SHAPE = {"LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "HARD_SWISH", "SOFTMAX",
               "QUANTIZE", "DEQUANTIZE"}
_BROADCAST = {"ADD", "SUB", "MUL"}
_SPATIAL = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"}  # batch follows the input


def fold(model: Model) -> Model:
    """A copy of the model with shape subgraphs evaluated to constants and shapes made exact."""
    tensors = list(model.tensors)
    for op in model.operators:
        try:
            _fold_op(op, tensors)
        except (ValueError, IndexError, TypeError) as exc:
            raise InputError(f"operator #{op.index} {op.opcode}: cannot evaluate its shape ({exc})",
                             hint="give the Keras model fixed shapes") from None
    return dataclasses.replace(model, tensors=tensors)


def _const(tensors: list[Tensor], i: int) -> np.ndarray | None:
    return None if i < 0 else tensors[i].data


def _set_data(tensors: list[Tensor], i: int, value: np.ndarray) -> None:
    t = tensors[i]
    value = np.asarray(value).astype(t.dtype if t.dtype in ("int8", "int32", "int64") else np.int32)
    tensors[i] = dataclasses.replace(t, data=value, shape=tuple(value.shape))


def _set_shape(tensors: list[Tensor], i: int, shape: tuple[int, ...]) -> None:
    t = tensors[i]
    if t.shape != shape:
        tensors[i] = dataclasses.replace(t, shape=shape)


def _fold_op(op: Operator, tensors: list[Tensor]) -> None:
    o, ins = op.options, op.inputs
    consts = [_const(tensors, i) for i in ins]
    out = op.outputs[0] if op.outputs else -1
    name = op.opcode
    if name == "SHAPE":
        _set_data(tensors, out, np.array(tensors[ins[0]].shape))
    elif name == "GATHER" and all(c is not None for c in consts):
        _set_data(tensors, out, np.take(consts[0], consts[1], axis=int(o.get("axis", 0))))
    elif name == "REDUCE_PROD" and all(c is not None for c in consts):
        axes = tuple(int(a) for a in np.asarray(consts[1]).reshape(-1))
        _set_data(tensors, out, np.prod(consts[0], axis=axes, keepdims=bool(o.get("keepDims", False))))
    elif name == "CONCATENATION" and consts and all(c is not None for c in consts):
        _set_data(tensors, out, np.concatenate([np.atleast_1d(c) for c in consts], axis=int(o.get("axis", 0))))
    elif name == "PACK" and consts and all(c is not None for c in consts):
        _set_data(tensors, out, np.stack(consts, axis=int(o.get("axis", 0))))
    elif name == "STRIDED_SLICE" and all(c is not None for c in consts):
        _set_data(tensors, out, _strided_slice_1d(consts, o))
    elif name == "RESHAPE":
        _set_shape(tensors, out, _reshape_shape(tensors, op, consts))
        if consts[0] is not None:  # a reshaped constant is a constant
            _set_data(tensors, out, consts[0].reshape(tensors[out].shape))
    elif name in ("EXPAND_DIMS", "SQUEEZE"):
        _set_shape(tensors, out, _expand_squeeze_shape(name, tensors[ins[0]].shape, consts, o, tensors[out].shape))
        if consts[0] is not None:
            _set_data(tensors, out, consts[0].reshape(tensors[out].shape))
    elif name == "FULLY_CONNECTED" and len(ins) > 1 and len(tensors[ins[1]].shape) == 2:
        x, units, depth = tensors[ins[0]], tensors[ins[1]].shape[0], tensors[ins[1]].shape[1]
        if depth and x.size % depth == 0:
            keep = bool(o.get("keepNumDims", False))
            _set_shape(tensors, out, x.shape[:-1] + (units,) if keep else (x.size // depth, units))
    elif name in _BROADCAST and len(ins) == 2:
        _set_shape(tensors, out, tuple(np.broadcast_shapes(tensors[ins[0]].shape, tensors[ins[1]].shape)))
    elif name in _SPATIAL and ins and tensors[ins[0]].shape and tensors[out].shape:
        _set_shape(tensors, out, tensors[ins[0]].shape[:1] + tensors[out].shape[1:])
    elif name in ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND") and len(consts) == 3 and consts[1] is not None \
            and consts[2] is not None:
        _set_shape(tensors, out, _space_batch_shape(name, tensors[ins[0]].shape, consts[1], consts[2]))
    elif name in _SAME_SHAPE and ins:
        _set_shape(tensors, out, tensors[ins[0]].shape)


def _expand_squeeze_shape(name: str, shape: tuple[int, ...], consts: list[np.ndarray | None], o: dict,
                          stored: tuple[int, ...]) -> tuple[int, ...]:
    """EXPAND_DIMS/SQUEEZE of the input's (possibly re-derived) shape; the stored shape if unknown.
    A SPACE_TO_BATCH_ND on a 3-D tensor makes the batch of a following EXPAND_DIMS a placeholder."""
    if name == "EXPAND_DIMS":
        if len(consts) < 2 or consts[1] is None:
            return stored
        axis = int(np.asarray(consts[1]).reshape(-1)[0])
        axis += len(shape) + 1 if axis < 0 else 0
        return shape[:axis] + (1,) + shape[axis:] if 0 <= axis <= len(shape) else stored
    dims = {int(d) % len(shape) for d in (o.get("squeezeDims") or [])} if shape else set()
    squeezed = tuple(d for i, d in enumerate(shape) if not (d == 1 and (not dims or i in dims)))
    return squeezed if len(squeezed) == len(stored) else stored


def _reshape_shape(tensors: list[Tensor], op: Operator, consts: list[np.ndarray | None]) -> tuple[int, ...]:
    out = tensors[op.outputs[0]]
    if len(consts) > 1 and consts[1] is not None:
        new = [int(d) for d in np.asarray(consts[1]).reshape(-1)]
    elif op.options.get("newShape") is not None and len(op.options["newShape"]):
        new = [int(d) for d in op.options["newShape"]]
    else:
        return out.shape
    size = tensors[op.inputs[0]].size
    if new.count(-1) == 1:
        known = math.prod(d for d in new if d != -1)
        new[new.index(-1)] = size // known if known else 0
    if any(d < 0 for d in new) or math.prod(new) != size:
        raise ValueError(f"cannot reshape {size} values to {new}")
    return tuple(new)


def _strided_slice_1d(consts: list[np.ndarray | None], o: dict) -> np.ndarray:
    data, begin, end, strides = (np.asarray(c).reshape(-1) if i else np.asarray(c) for i, c in enumerate(consts))
    if data.ndim != 1 or len(begin) != 1:
        raise ValueError("only 1-D shape slices are folded")
    b = None if o.get("beginMask", 0) & 1 else int(begin[0])
    e = None if o.get("endMask", 0) & 1 else int(end[0])
    sliced = data[slice(b, e, int(strides[0]))]
    if o.get("shrinkAxisMask", 0) & 1:
        return np.asarray(data[int(begin[0])])
    return sliced


def _space_batch_shape(name: str, shape: tuple[int, ...], block: np.ndarray, pads: np.ndarray) -> tuple[int, ...]:
    blocks = [int(b) for b in np.asarray(block).reshape(-1)]
    pad = np.asarray(pads).reshape(-1, 2).astype(int)
    if len(shape) != len(blocks) + 2 or len(pad) != len(blocks) or min(blocks, default=1) < 1:
        return shape
    spatial = shape[1:1 + len(blocks)]
    prod = math.prod(blocks)
    if name == "SPACE_TO_BATCH_ND":
        dims = [(d + int(a) + int(b)) // k for d, k, (a, b) in zip(spatial, blocks, pad, strict=True)]
        return (shape[0] * prod, *dims, shape[-1])
    dims = [d * k - int(a) - int(b) for d, k, (a, b) in zip(spatial, blocks, pad, strict=True)]
    return (shape[0] // prod, *dims, shape[-1])
