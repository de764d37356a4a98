"""Compare the generated C with the TFLM interpreter (the reference) and LiteRT on random inputs.

Where the two interpreters disagree the reference itself is in doubt, so those bytes are
counted apart from the ones where both agree and the C differs (a code generator bug).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinyml.codegen import host
from tinyml.codegen.emit import Generated


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
    """Mismatch counts of C vs TFLM and LiteRT vs TFLM over n random int8 inputs."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(-128, 128, size=(n, gen.report["input"]["size"]), dtype=np.int8)
    exe = host.build(gen, work)
    c_out = host.run(exe, inputs, gen.report["output"]["size"])
    ref = reference_outputs(tflite, inputs)
    litert = reference_outputs(tflite, inputs, "litert")
    diff = np.abs(litert.astype(np.int16) - ref.astype(np.int16))
    disputed = diff > 0
    return {"inputs": n, "tflm_mismatches": int((c_out != ref).sum()),
            "litert_mismatches": int(disputed.sum()), "litert_max_diff": int(diff.max(initial=0)),
            "c_vs_litert_mismatches": int((c_out != litert).sum()),
            "codegen_mismatches": int(((c_out != ref) & ~disputed).sum()),
            "disputed_mismatches": int(((c_out != ref) & disputed).sum()),
            "suspect_ops": suspect_ops(tflite) if disputed.any() else [],
            "c_vs_litert_ref_mismatches": int((c_out != reference_outputs(tflite, inputs, "litert-ref")).sum())
            if disputed.any() else None}


# Operators whose TFLM and LiteRT kernels are seen to disagree: a dilated convolution is lowered
# to SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND, and on such models the outputs differ.
DISPUTED_OPS = ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")


def suspect_ops(tflite: bytes) -> list[str]:
    """`OP (op i)` for each operator of the model in DISPUTED_OPS, in graph order."""
    from tinyml.model.tflite import read_model

    return [f"{op.opcode} (op {i})" for i, op in enumerate(read_model(tflite).operators)
            if op.opcode in DISPUTED_OPS]
