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
from tinyml.codegen.emit import Generated
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
    for engine in ("tflm", "litert"):
        try:
            result[f"{engine}_mismatches"] = int((c_out != reference_outputs(tflite, inputs, engine)).sum())
        except InputError:  # e.g. TFLM lacks a kernel the model's shape arithmetic uses
            result[f"{engine}_mismatches"] = None
    return result
