"""Read a .tflite flatbuffer into plain Python objects, validating everything first.

Uses the schema module that ships with ``tflite-micro`` (no TensorFlow import). A
corrupt or hostile file must end in one ``InputError``, never in a crash or in wrong
data reaching the code generator, so every index, shape, buffer and quantization
parameter is checked here, once, before anyone uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyml.errors import InputError

# TensorType enum value -> (name, numpy dtype or None when we cannot hold its data)
_DTYPES: dict[int, tuple[str, Any]] = {
    0: ("float32", np.float32), 1: ("float16", np.float16), 2: ("int32", np.int32),
    3: ("uint8", np.uint8), 4: ("int64", np.int64), 5: ("string", None), 6: ("bool", np.bool_),
    7: ("int16", np.int16), 8: ("complex64", None), 9: ("int8", np.int8), 10: ("float64", np.float64),
    11: ("complex128", None), 12: ("uint64", np.uint64), 13: ("resource", None),
    14: ("variant", None), 15: ("uint32", np.uint32), 16: ("uint16", np.uint16), 17: ("int4", None),
}
_MAX_DIM = 1 << 24
_MAX_ELEMENTS = 1 << 28
_FILE_ID = b"TFL3"
_FIXED_SHAPE_HINT = "give every Keras Input a fixed shape (only the batch dimension may be None)"


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per channel along ``axis``."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None  # constant contents shaped like ``shape``; None for activations
    quant: Quantization | None
    is_variable: bool = False
    signature: tuple[int, ...] = ()  # shape with -1 where the model allows any size

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(_numpy_dtype(self.dtype)).itemsize


@dataclass
class Operator:
    index: int
    opcode: str  # builtin operator name, e.g. "CONV_2D", or "CUSTOM:<code>"
    version: int
    inputs: tuple[int, ...]  # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Model:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = ""
    schema_version: int = 3


def _numpy_dtype(name: str) -> Any:
    for dname, np_type in _DTYPES.values():
        if dname == name:
            return np_type
    raise KeyError(name)


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _opcode_names() -> dict[int, str]:
    ops = _schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


def _bad(what: str) -> InputError:
    return InputError(f"invalid .tflite model: {what}",
                      hint="regenerate it with `tinyml quantize` (TFLiteConverter); the file may be corrupt")


def read_model(source: str | Path | bytes) -> Model:
    """Parse and validate a .tflite model from a path or from its bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"model file not found: {path}", hint="pass the path of a .tflite file")
        buf = path.read_bytes()
    if len(buf) < 8 or buf[4:8] != _FILE_ID:
        raise _bad("not a TFLite flatbuffer (missing the 'TFL3' identifier)")
    try:
        raw = _schema().ModelT.InitFromPackedBuf(buf, 0)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a corrupt file
        raise _bad(f"the flatbuffer cannot be decoded ({type(exc).__name__})") from None
    try:
        return _convert(raw, buf)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt tables surface as odd types/values
        raise _bad(f"inconsistent contents ({type(exc).__name__}: {exc})") from None


def _convert(raw: Any, buf: bytes) -> Model:
    if not raw.subgraphs:
        raise _bad("no subgraph")
    if len(raw.subgraphs) > 1:
        raise InputError(f"model has {len(raw.subgraphs)} subgraphs; only single-graph models are supported",
                         hint="remove control flow (tf.cond / tf.while_loop) from the Keras model")
    graph = raw.subgraphs[0]
    buffers = list(raw.buffers or [])
    codes = list(raw.operatorCodes or [])
    raw_tensors = list(graph.tensors or [])
    tensors = [_tensor(i, t, buffers, buf) for i, t in enumerate(raw_tensors)]
    n = len(tensors)
    names = _opcode_names()
    operators: list[Operator] = []
    for i, op in enumerate(graph.operators or []):
        if not 0 <= op.opcodeIndex < len(codes):
            raise _bad(f"operator {i} uses opcode index {op.opcodeIndex} of {len(codes)}")
        code = codes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = names.get(builtin)
        if name is None:
            raise _bad(f"operator {i} has unknown builtin code {builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.customCode or b'').decode('utf-8', 'replace')}"
        if not 1 <= int(code.version) <= 64:
            raise _bad(f"operator {i} ({name}) has version {code.version}")
        ins = tuple(int(x) for x in (op.inputs if op.inputs is not None else []))
        outs = tuple(int(x) for x in (op.outputs if op.outputs is not None else []))
        for t in ins:
            if not -1 <= t < n:
                raise _bad(f"operator {i} ({name}) reads tensor {t} of {n}")
        for t in outs:
            if not 0 <= t < n:
                raise _bad(f"operator {i} ({name}) writes tensor {t} of {n}")
        options = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        operators.append(Operator(i, name, int(code.version), ins, outs, options))
    g_in = tuple(int(x) for x in (graph.inputs if graph.inputs is not None else []))
    g_out = tuple(int(x) for x in (graph.outputs if graph.outputs is not None else []))
    for t in g_in + g_out:
        if not 0 <= t < n:
            raise _bad(f"graph input/output tensor {t} of {n}")
    if not g_in or not g_out:
        raise _bad("the graph declares no inputs or no outputs")
    for t in g_in:
        if any(d < 0 for d in tensors[t].signature[1:]):
            raise InputError(f"model input {tensors[t].name!r} has a dynamic shape {list(tensors[t].signature)}",
                             hint=_FIXED_SHAPE_HINT)
    desc = raw.description.decode("utf-8", "replace") if isinstance(raw.description, bytes) else ""
    return Model(tensors, operators, g_in, g_out, desc, int(raw.version))


def _tensor(index: int, t: Any, buffers: list[Any], buf: bytes) -> Tensor:
    name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else f"tensor{index}"
    where = f"tensor {index} ({name})"
    if int(t.type) not in _DTYPES:
        raise _bad(f"{where} has unknown type {t.type}")
    dtype, np_type = _DTYPES[int(t.type)]
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
    signature = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else shape
    if any(d < 0 for d in shape) or len(signature) != len(shape):
        raise InputError(f"{where} has a dynamic shape {list(signature)}", hint=_FIXED_SHAPE_HINT)
    if any(d > _MAX_DIM for d in shape) or math.prod(shape) > _MAX_ELEMENTS:
        raise _bad(f"{where} has an implausible shape {list(shape)}")
    data = _tensor_data(where, t, shape, np_type, buffers, buf)
    quant = _quantization(where, t.quantization, shape)
    return Tensor(index, name, shape, dtype, data, quant, bool(t.isVariable), signature)


def _tensor_data(where: str, t: Any, shape: tuple[int, ...], np_type: Any,
                 buffers: list[Any], buf: bytes) -> np.ndarray | None:
    b = int(t.buffer)
    if not 0 <= b < max(len(buffers), 1):
        raise _bad(f"{where} points to buffer {b} of {len(buffers)}")
    if b == 0 or not buffers:
        return None
    entry = buffers[b]
    raw: bytes | None = None
    if entry.data is not None and len(entry.data):
        raw = np.asarray(entry.data, dtype=np.uint8).tobytes()
    elif int(entry.offset) > 1:
        start, size = int(entry.offset), int(entry.size)
        if size < 0 or start + size > len(buf):
            raise _bad(f"{where} data lies outside the file (bytes {start}..{start + size} of {len(buf)})")
        raw = buf[start:start + size]
    if raw is None:
        return None
    if np_type is None:
        raise _bad(f"{where} holds constant data of an unsupported type")
    want = math.prod(shape) * np.dtype(np_type).itemsize
    if len(raw) != want:
        raise _bad(f"{where} has {len(raw)} data bytes, its shape {list(shape)} needs {want}")
    return np.frombuffer(raw, dtype=np.dtype(np_type).newbyteorder("<")).astype(np_type).reshape(shape)


def _quantization(where: str, q: Any, shape: tuple[int, ...]) -> Quantization | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scales = tuple(float(np.float32(s)) for s in q.scale)
    zps = tuple(int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [0] * len(scales)))
    axis = int(q.quantizedDimension)
    if not all(math.isfinite(s) and s > 0 for s in scales):
        raise _bad(f"{where} has a non-positive or non-finite quantization scale")
    if len(zps) != len(scales):
        raise _bad(f"{where} has {len(scales)} scales but {len(zps)} zero points")
    if any(abs(z) > (1 << 31) for z in zps):
        raise _bad(f"{where} has an out-of-range zero point")
    if len(scales) > 1 and (not 0 <= axis < len(shape) or shape[axis] != len(scales)):
        raise _bad(f"{where} has {len(scales)} per-channel scales along axis {axis} of shape {list(shape)}")
    return Quantization(scales, zps, axis)
