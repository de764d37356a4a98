"""What a .tflite model costs on a microcontroller: ops, tensors, parameters, MACs, size,
the smallest TFLM arena, ops TFLM lacks, and whether it fits a board.

The flatbuffer is read with ``tinyml.model.tflite.read_model`` (validated, no TensorFlow).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from tinyml.errors import TinymlError
from tinyml.model.tflite import Model, read_model

WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
# Flash TFLM itself needs beside the model (runtime with reference kernels, libc, harness),
# from the TFLM builds measured on mps2-an386 (shared/models/README.md: 14-28 KB runtime
# plus about 8 KB libc and harness). An estimate, printed as such.
TFLM_RUNTIME_FLASH = 36 * 1024


@functools.lru_cache(maxsize=1)
def tflm_builtin_ops() -> frozenset[str]:
    """Builtin ops the installed TFLM runtime registers, read from its Register_<OP> symbols."""
    from tflite_micro.python.tflite_micro import runtime

    from tinyml.model.tflite import _opcode_names

    so = next(Path(runtime.__file__).parent.glob("_runtime*.so"))
    registered = {m.decode() for m in re.findall(rb"Register_([A-Z][A-Z0-9_]*?)(?:_REF)?Ev", so.read_bytes())}
    return frozenset(registered & set(_opcode_names().values()))


def op_macs(model: Model, op_index: int) -> int:
    """Multiply-accumulates of one operator (convolutions and dense layers; others count 0)."""
    op = model.operators[op_index]
    if op.opcode not in WEIGHT_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
        return 0
    out = model.tensors[op.outputs[0]].shape
    w = model.tensors[op.inputs[1]].shape
    if op.opcode == "CONV_2D":           # filter [Cout, kh, kw, Cin]
        return math.prod(out) * math.prod(w[1:])
    if op.opcode == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, Cout]
        return math.prod(out) * w[1] * w[2]
    if op.opcode == "FULLY_CONNECTED":    # weights [units, in]
        return math.prod(out) * w[-1]
    inp = model.tensors[op.inputs[2]].shape  # TRANSPOSE_CONV: input [N, H, W, Cin], filter [Cout, kh, kw, Cin]
    return math.prod(inp) * w[0] * w[1] * w[2]


def parameters(model: Model) -> int:
    """Weights and biases: constant tensors feeding the weight-bearing ops."""
    seen: set[int] = set()
    for op in model.operators:
        if op.opcode in WEIGHT_OPS:
            seen.update(t for t in op.inputs[1:] if t >= 0 and model.tensors[t].data is not None)
    return sum(math.prod(model.tensors[t].shape) for t in seen)


def describe(tflite_bytes: bytes, arena: bool = True, codegen: bool = True) -> dict[str, Any]:
    """Everything `tinyml inspect` reports except the board fit."""
    model = read_model(tflite_bytes)
    ops = Counter(op.opcode for op in model.operators)
    tensors = []
    for t in model.tensors:
        q = t.quant
        tensors.append({"index": t.index, "name": t.name, "shape": list(t.shape), "dtype": t.dtype,
                        "constant": t.data is not None, "bytes": int(t.data.nbytes) if t.data is not None else
                        math.prod(t.shape) * _itemsize(t.dtype),
                        "scale": q.scales[0] if q and len(q.scales) == 1 else None,
                        "zero_point": q.zero_points[0] if q and len(q.zero_points) == 1 else None})
    io = {"input": _io(model, model.inputs[0]), "output": _io(model, model.outputs[0])}
    missing = sorted(o for o in ops if o not in tflm_builtin_ops())
    report: dict[str, Any] = {
        "model_bytes": len(tflite_bytes), "ops": dict(sorted(ops.items())), "operators": len(model.operators),
        "tensors": tensors, "parameters": parameters(model),
        "macs": sum(op_macs(model, i) for i in range(len(model.operators))), **io,
        "tflm_missing_ops": missing, "arena": None,
    }
    if arena and not missing:
        from tinyml.model.arena import min_arena_size

        res = min_arena_size(tflite_bytes)
        report["arena"] = {"tflm_host_min_bytes": res.min_bytes, "trials": res.trials, "crashes": res.crashes}
    report["codegen"] = codegen_figures(tflite_bytes) if codegen else None
    return report


def _io(model: Model, index: int) -> dict[str, Any]:
    t = model.tensors[index]
    q = t.quant
    return {"shape": list(t.shape), "dtype": t.dtype,
            "scale": q.scales[0] if q else None, "zero_point": q.zero_points[0] if q else None}


def _itemsize(dtype: str) -> int:
    import numpy as np

    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 1


def codegen_figures(tflite_bytes: bytes) -> dict[str, Any] | None:
    """The native code generator's figures when it is available and supports the model."""
    try:
        from tinyml.codegen import figures
    except ImportError:
        return None
    try:
        return figures(tflite_bytes)
    except TinymlError as exc:
        return {"status": "unsupported", "reason": exc.one_line()}


def board_fit(report: dict[str, Any], board: Any) -> dict[str, Any]:
    """Flash and RAM needed with the TFLM runtime against what the board has."""
    arena = (report.get("arena") or {}).get("tflm_host_min_bytes")
    flash_needed = report["model_bytes"] + TFLM_RUNTIME_FLASH
    ram_needed = (arena or 0) + board.stack_bytes
    return {"board": board.name, "flash_bytes": board.flash_bytes, "ram_bytes": board.ram_bytes,
            "flash_needed": flash_needed, "ram_needed": ram_needed if arena else None,
            "fits_flash": flash_needed <= board.flash_bytes,
            "fits_ram": ram_needed <= board.ram_bytes if arena else None}
