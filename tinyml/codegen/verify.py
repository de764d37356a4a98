"""Compare the generated C with the reference semantics, TFLM and LiteRT on random inputs.

The reference is TFLM's arithmetic op by op, except where TFLM is wrong (``semantics.REFERENCE``).
A byte where the C differs from the reference is a code generator bug; where an interpreter
differs from the reference, ``semantics.trace`` names it and the operator responsible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinyml.codegen import host, semantics
from tinyml.codegen.emit import Generated, generate
from tinyml.errors import InputError


def reference_outputs(tflite: bytes, inputs: np.ndarray, engine: str = "tflm") -> np.ndarray:
    """TFLM's (or LiteRT's, or LiteRT's reference kernels': "litert-ref") int8 outputs for flat
    int8 input rows, flattened per row."""
    from tinyml.model.interpreters import io_quantization, litert_run, tflm_run

    shaped = inputs.reshape(len(inputs), *io_quantization(tflite).in_shape)
    if engine == "tflm":
        out = tflm_run(tflite, shaped)
    else:
        out = litert_run(tflite, shaped, reference=engine == "litert-ref")
    return np.asarray(out).reshape(len(inputs), -1).astype(np.int8)


def verify(gen: Generated, tflite: bytes, n: int, work: Path, seed: int = 0) -> dict[str, Any]:
    """Mismatching output bytes of the C against the reference, TFLM and LiteRT over n random
    int8 inputs, and where each interpreter departs from the reference."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(-128, 128, size=(n, gen.report["input"]["size"]), dtype=np.int8)
    c_out = host.run(host.build(gen, work), inputs, gen.report["output"]["size"])
    trace = semantics.trace(tflite, inputs)
    result: dict[str, Any] = {"inputs": n, "reference_mismatches": int((c_out != trace.outputs).sum()),
                              "departures": [d.to_json() for d in trace.departures]}
    wrong = np.flatnonzero((c_out != trace.outputs).any(axis=1))
    if wrong.size:
        result["c_first_wrong_op"] = first_wrong_op(gen, tflite, inputs[wrong[0]], work / "trace")
    for engine in ("tflm", "litert"):
        try:
            result[f"{engine}_mismatches"] = int((c_out != reference_outputs(tflite, inputs, engine)).sum())
        except InputError:  # e.g. TFLM lacks a kernel the model's shape arithmetic uses
            result[f"{engine}_mismatches"] = None
    return result


def first_wrong_op(gen: Generated, tflite: bytes, row: np.ndarray, work: Path) -> dict[str, Any] | None:
    """The first operator whose output in the C differs from the reference on one input: the C is
    rebuilt with a trace of every tensor its kernels write and compared tensor by tensor."""
    from tinyml.model.tflite import read_model

    work.mkdir(parents=True, exist_ok=True)
    traced = generate(tflite, prefix=gen.prefix, target=gen.target, trace=True)
    written: dict[tuple[int, int], np.ndarray] = {}
    for op, tensor, data in host.run_trace(host.build(traced, work), row):
        written[(op, tensor)] = data  # an op's last write of a tensor is its output
    want = semantics.trace(tflite, row[None, :], engines=(), keep=True).values[0]
    ops = read_model(tflite).operators
    for (op, tensor), data in written.items():
        ref = want.get(tensor)
        if ref is not None and ref.dtype == np.int8 and not np.array_equal(ref.reshape(-1), data):
            return {"op_index": op, "op": ops[op].opcode, "tensor": tensor,
                    "values": int((ref.reshape(-1) != data).sum()) if ref.size == data.size else int(ref.size)}
    return None
