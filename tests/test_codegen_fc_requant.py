"""The portable FULLY_CONNECTED requantization records (kernels/portable/lowering.py) against
TFLM's two-step MultiplyByQuantizedMultiplier: in Python for any multiplier, shift and
accumulator, and through the C kernel on the host for edge cases (exact ties, every shift,
per-tensor scales, activation ranges)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cbuild import host_compile
from tests.conftest import assert_clean_error, run_cli
from tests.test_codegen_m4 import _load
from tinyml.codegen import fixedpoint, kernels
from tinyml.codegen.ops.base import Call, Const, In, Out
from tinyml.errors import InputError

lowering = _load("portable_lowering", kernels.KERNEL_DIR / "portable" / "lowering.py")
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def _trunc_div(a: int, b: int) -> int:
    return a // b if a >= 0 else -((-a) // b)


def tflm_requant(x: int, m: int, shift: int) -> int:
    """TFLM's reference MultiplyByQuantizedMultiplier, step by step (gemmlowp semantics)."""
    left, right = max(shift, 0), max(-shift, 0)
    a = x * (1 << left)
    if a == m == I32_MIN:
        high = I32_MAX
    else:
        ab = a * m
        high = _trunc_div(ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30)), 1 << 31)
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if (high & mask) > threshold else 0)


def record_requant(x: int, record: list[int]) -> int:
    """What tml_requant_out computes, with C's wrap-around of uint32/uint64."""
    m_lo, m_hi, neg, top, k = record
    top = (top - (neg if x < 0 else 0)) % (1 << 32)
    u = (x * m_lo + ((top << 32) | (1 << 31))) % (1 << 64)
    high = ((u >> 32) + x * m_hi) % (1 << 32)
    return (high - (1 << 32) if high >= 1 << 31 else high) >> k


def _in_range(x: int, shift: int) -> bool:
    """Accumulators the record must handle: TFLM's x * 2^shift fits int32 (otherwise TFLM's own
    result is undefined), and for right shifts the headroom lowering.py checks."""
    if shift >= 0:
        return I32_MIN <= x * (1 << shift) <= I32_MAX
    return abs(x) + (1 << (-shift - 1)) + 1 < 1 << 31


@settings(max_examples=3000, deadline=None)
@given(real=st.floats(1e-12, 1e6), x=st.integers(I32_MIN, I32_MAX), small=st.integers(-5000, 5000),
       use_small=st.booleans())
def test_record_equals_tflm_for_any_scale_and_accumulator(real: float, x: int, small: int, use_small: bool) -> None:
    m, shift = fixedpoint.quantize_multiplier(real)
    x = small if use_small else x
    if _in_range(x, shift):
        assert record_requant(x, lowering.requant_record(m, shift)) == tflm_requant(x, m, shift)


@pytest.mark.parametrize("shift", range(-31, 31))
def test_record_equals_tflm_on_exact_ties(shift: int) -> None:
    # m = 2^30 halves x exactly, so every odd x is a tie of the first rounding and many are ties
    # of the second; m = 0 is what QuantizeMultiplier gives for negligible scales
    for m in (1 << 30, (1 << 30) + 1, I32_MAX, 0):
        record = lowering.requant_record(m, shift) if m or shift == 0 else None
        if record is None:
            continue
        for x in [*range(-70, 71), I32_MIN + 1, I32_MAX, -(1 << 20) - 1, (1 << 20) + 1]:
            if _in_range(x, shift):
                assert record_requant(x, record) == tflm_requant(x, m, shift), (m, shift, x)


def _kernel_source() -> str:
    parts = [kernels.header(k) + kernels.source(k, "portable")[0] for k in kernels.closure(["fully_connected"], "portable")]
    return "#include <stdint.h>\n#include <string.h>\n#include <stdio.h>\n" + "\n".join(parts)


def _c_ints(values: np.ndarray) -> str:
    return ", ".join(str(int(v)) for v in values)


def _run_kernel(tmp: Path, name: str, bias: np.ndarray, records: np.ndarray, step: int, off: int,
                lo: int, hi: int) -> np.ndarray:
    """Outputs of tml_fully_connected for accumulators = bias (one input, 0, of weight 1 per row)."""
    n = len(bias)
    main = f"""
static const int8_t w[{n}] = {{{_c_ints(np.ones(n))}}};
static const int32_t b[{n}] = {{{_c_ints(bias)}}};
static const int32_t q[{len(records)}] = {{{_c_ints(records)}}};
int main(void)
{{
    static const tml_fully_connected_params p = {{.batches = 1, .accum_depth = 1, .out_depth = {n},
        .output_offset = {off}, .act_min = {lo}, .act_max = {hi}, .requant_step = {step}}};
    int8_t x[1] = {{0}}, y[{n}];
    int32_t i;
    tml_fully_connected(&p, x, w, b, q, y);
    for (i = 0; i < {n}; ++i)
        printf("%d\\n", y[i]);
    return 0;
}}
"""
    src, exe = tmp / f"{name}.c", tmp / name
    src.write_text(_kernel_source() + main)
    host_compile([src], exe, extra=["-O2"], sanitize=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return np.array([int(v) for v in out.split()])


def _cases(rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(multiplier, shift, accumulator) with TFLM results mostly inside int8, ties included."""
    cases = []
    for shift in range(-31, 4):
        for m in (1 << 30, int(rng.integers(1 << 30, 1 << 31)), I32_MAX):
            scale = m * 2.0 ** (shift - 31)
            for target in (-130, -128, -64, -1, 0, 1, 63, 127, 129):
                x = int(round(target / scale)) if abs(target / scale) < 2 ** 30 else int(np.sign(target)) * 2 ** 29
                for dx in (-2, -1, 0, 1, 2):
                    if _in_range(x + dx, shift):
                        cases.append((m, shift, x + dx))
    return cases


@pytest.mark.parametrize("off,lo,hi", [(0, -128, 127), (-128, -128, 127), (5, 5, 127), (-20, -20, 40)])
def test_c_kernel_equals_tflm_per_channel(tmp_path: Path, off: int, lo: int, hi: int) -> None:
    cases = _cases(np.random.default_rng(off & 0xFF))
    bias = np.array([x for _, _, x in cases], np.int64)
    records = np.array([lowering.requant_record(m, s) for m, s, _ in cases], np.int64).reshape(-1)
    got = _run_kernel(tmp_path, "pc", bias, records, lowering.RECORD_WORDS, off, lo, hi)
    want = [min(max(tflm_requant(x, m, s) + off, lo), hi) for m, s, x in cases]
    np.testing.assert_array_equal(got, want)


def test_c_kernel_equals_tflm_per_tensor_with_leftover_rows(tmp_path: Path) -> None:
    m, shift = fixedpoint.quantize_multiplier(0.00123)
    xs = np.arange(-110_001, 110_002, 1_571)  # 141 rows: 35 blocks of four and one row left over
    got = _run_kernel(tmp_path, "pt", xs, np.array(lowering.requant_record(m, shift)), 0, 3, -128, 127)
    np.testing.assert_array_equal(got, [min(max(tflm_requant(int(x), m, shift) + 3, -128), 127) for x in xs])


def _dense_call(bias: list[int], shift: int) -> Call:
    w = np.full((len(bias), 4), 127, np.int8)
    params = {"batches": 1, "accum_depth": 4, "out_depth": len(bias), "input_offset": 128, "output_offset": 0,
              "act_min": -128, "act_max": 127, "per_channel": 0}
    return Call("fully_connected", params,
                [In(0), Const("int8_t", w.reshape(-1), "weights"), Const("int32_t", np.array(bias, np.int32), "bias"),
                 Const("int32_t", np.array([1 << 30], np.int32), "mult"), Const("int8_t", np.array([shift], np.int8),
                                                                                  "shift"), Out(1)], 3, "FULLY_CONNECTED")


def test_rewrite_folds_the_input_zero_point_and_shares_one_record_per_tensor() -> None:
    call = lowering.rewrite(_dense_call([10, -7], -5))
    _, _, bias, requant, _ = call.args
    np.testing.assert_array_equal(bias.values, [10 + 128 * 4 * 127, -7 + 128 * 4 * 127])
    assert requant.values.tolist() == lowering.requant_record(1 << 30, -5)
    assert call.params["requant_step"] == 0 and "input_offset" not in call.params


def test_accumulators_near_the_int32_limit_are_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"operator #3 FULLY_CONNECTED: its accumulators can reach") as err:
        lowering.rewrite(_dense_call([2**31 - 70_000, 0], -1))
    assert "re-quantize" in (err.value.hint or "")
    lowering.rewrite(_dense_call([2**31 - 70_000 - 128 * 4 * 127 * 2, 0], -1))  # just inside: accepted


def _with_huge_bias(tflite: bytes) -> bytes:
    """The model with the first FULLY_CONNECTED's first bias at 2^31 - 1000."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(tflite, 0)
    graph = raw.subgraphs[0]
    buffer = raw.buffers[graph.tensors[int(graph.operators[0].inputs[2])].buffer]
    bias = np.frombuffer(bytes(bytearray(buffer.data)), "<i4").copy()
    bias[0] = 2**31 - 1000
    buffer.data = np.frombuffer(bias.tobytes(), np.uint8)
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_cli_refuses_a_model_whose_accumulators_can_overflow(shared: Path, tmp_path: Path) -> None:
    model = tmp_path / "huge_bias.tflite"
    model.write_bytes(_with_huge_bias((shared / "models" / "feat_ae_int8.tflite").read_bytes()))
    proc = run_cli("codegen", model, "--out", tmp_path / "out")
    assert_clean_error(proc, "FULLY_CONNECTED: its accumulators can reach", "re-quantize the model")
