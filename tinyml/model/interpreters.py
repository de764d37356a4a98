"""The one place that runs .tflite models on the host.

- ``tflm_run``: the TFLM Python interpreter (package tflite-micro), the reference for what a
  device must output.
- ``litert_run``: LiteRT with the BUILTIN_WITHOUT_DEFAULT_DELEGATES resolver: optimized
  kernels but no XNNPACK delegate, which is the LiteRT mode closest to TFLM (on this stack it
  differed from TFLM in 1 of 1,800 CNN outputs, by 1; XNNPACK differed in 217, REF in 6).

Both take int8 arrays shaped [N, *input_shape] and return int8 outputs [N, *output_shape].
Codegen, validation and the emulator import these names.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinyml.errors import InputError

TFLITE_MAGIC = b"TFL3"


@dataclass(frozen=True)
class IOQuant:
    in_scale: float
    in_zp: int
    out_scale: float
    out_zp: int
    in_shape: tuple[int, ...]   # without the batch dimension
    out_shape: tuple[int, ...]
    in_dtype: str
    out_dtype: str


def check_flatbuffer(tflite_bytes: bytes) -> None:
    """A cheap structural check before handing bytes to C++ code that may crash on garbage."""
    if len(tflite_bytes) < 16 or tflite_bytes[4:8] != TFLITE_MAGIC:
        raise InputError("not a TensorFlow Lite model (no TFL3 identifier)",
                         "pass the model_int8.tflite written by `tinyml quantize`")
    root = int.from_bytes(tflite_bytes[0:4], "little")
    if root + 4 > len(tflite_bytes):
        raise InputError("the .tflite file is truncated", "re-run `tinyml quantize` to recreate it")


def _litert(tflite_bytes: bytes, *, reference: bool = False):  # noqa: ANN202 - ai_edge_litert Interpreter
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    check_flatbuffer(tflite_bytes)
    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        it = Interpreter(model_content=bytes(tflite_bytes), experimental_op_resolver_type=kind)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"cannot load the .tflite model: {' '.join(str(exc).split())[:300]}",
                         "the file is corrupt or uses ops this runtime lacks; re-run `tinyml quantize`") from exc
    return it


def io_quantization(tflite_bytes: bytes) -> IOQuant:
    """Scale, zero point, shape and dtype of the (single) input and output; rejects float models."""
    it = _litert(tflite_bytes)
    ins, outs = it.get_input_details(), it.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise InputError(f"model has {len(ins)} inputs and {len(outs)} outputs; tinyml handles one of each",
                         "export a single-input, single-output model")
    i, o = ins[0], outs[0]
    if i["dtype"] != np.int8 or o["dtype"] != np.int8:
        raise InputError(f"model is not full-int8 (input {np.dtype(i['dtype']).name}, "
                         f"output {np.dtype(o['dtype']).name})",
                         "quantize it with `tinyml quantize RUN_DIR` (int8 input and output)")
    (in_scale, in_zp), (out_scale, out_zp) = i["quantization"], o["quantization"]
    return IOQuant(float(in_scale), int(in_zp), float(out_scale), int(out_zp),
                   tuple(int(d) for d in i["shape"][1:]), tuple(int(d) for d in o["shape"][1:]),
                   np.dtype(i["dtype"]).name, np.dtype(o["dtype"]).name)


def quantize_input(x_float: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """float -> int8 with round-half-to-even, as the TFLite converter's quantize op does."""
    return np.clip(np.round(np.asarray(x_float, np.float64) / scale + zp), -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return ((np.asarray(q, np.float32) - np.float32(zp)) * np.float32(scale)).astype(np.float32)


def _check_inputs(inputs: np.ndarray, q: IOQuant) -> np.ndarray:
    arr = np.asarray(inputs)
    if arr.dtype != np.int8:
        raise InputError(f"inputs must be int8, got {arr.dtype}", "quantize them with quantize_input()")
    if tuple(arr.shape[1:]) != q.in_shape:
        raise InputError(f"inputs have shape {tuple(arr.shape[1:])}, the model expects {q.in_shape}",
                         "preprocess the windows with the run's preprocess.json")
    return arr


def litert_run(tflite_bytes: bytes, inputs_int8: np.ndarray, *, reference: bool = False) -> np.ndarray:
    """int8 outputs [N, *out_shape] from LiteRT (no XNNPACK); ``reference``: its reference kernels."""
    q = io_quantization(tflite_bytes)
    arr = _check_inputs(inputs_int8, q)
    it = _litert(tflite_bytes, reference=reference)
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = np.empty((arr.shape[0], *q.out_shape), np.int8)
    for n in range(arr.shape[0]):
        it.set_tensor(i, arr[n:n + 1])
        it.invoke()
        out[n] = it.get_tensor(o)[0]
    return out


def safe_arena_size(tflite_bytes: bytes) -> int:
    """An arena certainly large enough: twice every tensor's bytes plus 64 KiB for TFLM's own
    structures. TFLM's default (10x the model size) is too small for tiny models, and some
    too-small sizes crash the process instead of raising."""
    it = _litert(tflite_bytes)
    total = 0
    for t in it.get_tensor_details():
        total += int(np.prod(t["shape"], dtype=np.int64)) * np.dtype(t["dtype"]).itemsize
    return 2 * total + 64 * 1024


@contextlib.contextmanager
def _quiet_stderr():
    """TFLM prints allocation notes straight to fd 2."""
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def tflm_interpreter(tflite_bytes: bytes, arena_size: int | None = None):  # noqa: ANN201
    """A TFLM Python interpreter with a safe arena (or the given one)."""
    from tflite_micro.python.tflite_micro import runtime

    size = arena_size if arena_size is not None else safe_arena_size(tflite_bytes)
    try:
        with _quiet_stderr():
            return runtime.Interpreter.from_bytes(bytes(tflite_bytes), arena_size=size)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"TFLM cannot load the model: {' '.join(str(exc).split())[:300]}",
                         "check `tinyml inspect MODEL` for ops TFLM lacks") from exc


def tflm_run(tflite_bytes: bytes, inputs_int8: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """int8 outputs [N, *out_shape] from the TFLM Python interpreter (the device reference)."""
    q = io_quantization(tflite_bytes)
    arr = _check_inputs(inputs_int8, q)
    m = tflm_interpreter(tflite_bytes, arena_size)
    out = np.empty((arr.shape[0], *q.out_shape), np.int8)
    for n in range(arr.shape[0]):
        m.set_input(arr[n:n + 1], 0)
        m.invoke()
        out[n] = m.get_output(0)[0]
    return out


OpRunner = Callable[[list[np.ndarray]], list[np.ndarray]]


def op_runner(tflite_bytes: bytes, engine: str) -> OpRunner | None:
    """A function running a (one-operator) model on a list of input arrays with ``engine``
    ("tflm", "litert" or "litert-ref"), returning its outputs; None when the engine cannot load it."""
    try:
        if engine == "tflm":
            m = tflm_interpreter(tflite_bytes)
        else:
            it = _litert(tflite_bytes, reference=engine == "litert-ref")
    except InputError:
        return None
    if engine == "tflm":
        from tinyml.model.tflite import read_model

        n_out = len(read_model(tflite_bytes).outputs)

        def run_tflm(args: list[np.ndarray]) -> list[np.ndarray]:
            for i, a in enumerate(args):
                m.set_input(a, i)
            m.invoke()
            return [np.array(m.get_output(i)) for i in range(n_out)]

        return run_tflm
    ins, outs = it.get_input_details(), it.get_output_details()

    def run_litert(args: list[np.ndarray]) -> list[np.ndarray]:
        for d, a in zip(ins, args, strict=True):
            if tuple(d["shape"]) != a.shape:
                it.resize_tensor_input(d["index"], list(a.shape))
                it.allocate_tensors()
            it.set_tensor(d["index"], a)
        it.invoke()
        return [it.get_tensor(o["index"]).copy() for o in outs]

    return run_litert
