"""Compare the generated C with the TFLM interpreter (the reference) and LiteRT on random inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinyml.codegen import host
from tinyml.codegen.emit import Generated


def reference_outputs(tflite: bytes, inputs: np.ndarray, engine: str = "tflm") -> np.ndarray:
    """TFLM's (or LiteRT's) int8 outputs for flat int8 input rows, flattened per row."""
    from tinyml.model.interpreters import io_quantization, litert_run, tflm_run

    shaped = inputs.reshape(len(inputs), *io_quantization(tflite).in_shape)
    run = tflm_run if engine == "tflm" else litert_run
    return np.asarray(run(tflite, shaped)).reshape(len(inputs), -1).astype(np.int8)


def verify(gen: Generated, tflite: bytes, n: int, work: Path, seed: int = 0) -> dict[str, Any]:
    """Mismatch counts of C vs TFLM and LiteRT vs TFLM over n random int8 inputs."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(-128, 128, size=(n, gen.report["input"]["size"]), dtype=np.int8)
    exe = host.build(gen, work)
    c_out = host.run(exe, inputs, gen.report["output"]["size"])
    ref = reference_outputs(tflite, inputs)
    diff = np.abs(reference_outputs(tflite, inputs, "litert").astype(np.int16) - ref.astype(np.int16))
    return {"inputs": n, "tflm_mismatches": int((c_out != ref).sum()),
            "litert_mismatches": int((diff > 0).sum()), "litert_max_diff": int(diff.max(initial=0))}
