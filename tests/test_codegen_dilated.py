"""Dilated convolutions (issue 11): generated C equal to the reference semantics, byte for byte.

The converter lowers a dilated convolution to SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND, where
TFLM is wrong (docs/codegen.md, "Reference semantics"). For dilations 2, 3 and 4, 'same' and
'valid' padding, 1-D and 2-D, regular and depthwise convolutions behind a strided one, the C
(strict host build under ASan/UBSan) must equal the op-by-op reference on random and realistic
inputs, and TFLM must be caught departing at SPACE_TO_BATCH_ND. Each model is converted once per
session, when its test first needs it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.codegen_models import DILATED, build
from tinyml.codegen import generate, host, semantics
from tinyml.model.tflite import read_model


@pytest.fixture(scope="session")
def dilated_models() -> dict[str, tuple[bytes, np.ndarray]]:
    """Converted models by name, filled on first use."""
    return {}


@pytest.mark.parametrize("name", sorted(DILATED))
def test_dilated_conv_c_equals_the_reference(name: str, dilated_models: dict, tmp_path: Path) -> None:
    if name not in dilated_models:
        dilated_models[name] = build(name)
    tflite, calib = dilated_models[name]
    ops = [op.opcode for op in read_model(tflite).operators]
    assert "SPACE_TO_BATCH_ND" in ops and "BATCH_TO_SPACE_ND" in ops, ops
    gen = generate(tflite, prefix=name)
    q = read_model(tflite).tensors[read_model(tflite).inputs[0]].quant
    real = np.clip(np.round(calib.reshape(len(calib), -1)[:24] / q.scales[0]) + q.zero_points[0], -128, 127)
    rng = np.random.default_rng(11)
    inputs = np.concatenate([rng.integers(-128, 128, size=(60, real.shape[1]), dtype=np.int8), real.astype(np.int8)])
    got = host.run(host.build(gen, tmp_path, sanitize=True), inputs, gen.report["output"]["size"])
    trace = semantics.trace(tflite, inputs)
    mismatches = int((got != trace.outputs).sum())
    assert mismatches == 0, f"{name}: {mismatches} of {got.size} output bytes differ from the reference"
    tflm = trace.first("tflm")
    assert tflm is not None and tflm.opcode == "SPACE_TO_BATCH_ND", [d.describe() for d in trace.departures]
