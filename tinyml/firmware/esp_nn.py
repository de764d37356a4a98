"""Scratch memory esp-tflite-micro's esp-nn kernels take from the TFLM arena, per ESP target.

The host TFLM interpreter (``tinyml.model.arena``) runs TFLM's reference kernels, which ask no
scratch of an int8 model. On an ESP chip esp-tflite-micro swaps in esp-nn's kernels, whose
Prepare asks the arena for scratch (``RequestScratchBufferInArena``):

- CONV_2D and DEPTHWISE_CONV_2D on the ESP32-S3 only (its SIMD kernels re-lay the filter out
  with channels padded to 8 or 16, copy the input with its padding, and keep per-channel sums);
  the ESP32 and ESP32-C3 run esp-nn's generic C kernels, which take none;
- SOFTMAX on every target: one int32 per value of the input's second dimension.

The sizes below are upper bounds of what esp-nn's own size functions return for these layers
in esp-nn 1.1.1 to 1.2.3 (their branches differ between versions; each bound covers every
branch of every version in that range), so the rendered project pins esp-nn to it
(``ESP_NN_VERSIONS``, in ``main/idf_component.yml``).
"""

from __future__ import annotations

from dataclasses import dataclass

ESP_NN_VERSIONS = ">=1.1.1,<1.3.0"
SIMD_TARGETS = frozenset({"esp32s3"})
ALIGN = 16           # TFLM aligns every arena buffer to 16 bytes
PER_REQUEST = 32     # TFLM's record of each scratch request (handle + request, 32-bit) and its alignment
SAME, VALID = 0, 1   # TFLite Padding enum


@dataclass(frozen=True)
class Scratch:
    """One kernel's scratch request: operator index, opcode and bytes asked."""

    op: int
    opcode: str
    nbytes: int


def _ceil(n: int, k: int) -> int:
    return -(-n // k) * k


def _pad(size: int, out: int, stride: int, kernel: int, dilation: int, padding: int) -> tuple[int, int]:
    """TFLM's padding before the data (what esp-nn is given) and esp-nn's extra after it: the
    columns a last window reaches past the input end (esp-nn pads the copy that far)."""
    effective = (kernel - 1) * dilation + 1
    before = max(0, (out - 1) * stride + effective - size) // 2 if padding == SAME else 0
    after = max(0, out * stride + kernel - 1 - size)
    return before, after


def _conv_s3(in_h: int, in_w: int, in_c: int, k_h: int, k_w: int, out_h: int, out_w: int, out_c: int,
             pad: tuple[int, int, int, int]) -> int:
    """Bound of the S3 conv scratch: padded input copy (both the symmetric and the trailing
    padding), the filter with channels padded to 16 plus each row padded to 16 bytes, an
    im2col window per output channel, per-channel int32 sums, and alignment slack."""
    pad_h, pad_w, after_h, after_w = pad
    c8, c16 = _ceil(in_c, 8), _ceil(in_c, 16)
    pointwise = 0
    if k_h == k_w == 1 and pad_h == pad_w == 0:  # 1x1: input and filter re-laid with 8-padded channels
        pointwise += in_h * in_w * c8 + c8 * out_c + 16 * c8 + 64
    window = _ceil(k_h * k_w * in_c, 16)
    im2col = out_c * (4 + window) + window + 32 + 64
    general = ((in_w + 2 * pad_w) * (in_h + 2 * pad_h) * in_c + (in_w + after_w) * (in_h + after_h) * in_c
               + k_h * k_w * c16 * out_c + _ceil(k_w * in_c, 16) * k_h * out_c + 4 * out_c + 64)
    return max(pointwise, im2col, general)


def _depthwise_s3(in_h: int, in_w: int, in_c: int, mult: int, k_h: int, k_w: int, out_h: int, out_w: int,
                  pad: tuple[int, int, int, int]) -> int:
    """Bound of the S3 depthwise scratch: filter and padded input as int16 with channels padded
    to 16, an output buffer, per-channel bias/shift/multiplier words, and alignment slack."""
    pad_h, pad_w, after_h, after_w = pad
    c16 = _ceil(in_c, 16) * mult
    filt = k_h * k_w * c16
    inp = (in_w + 2 * pad_w + after_w) * (in_h + 2 * pad_h + after_h) * _ceil(in_c, 16)
    return 2 * (filt + inp) + out_h * out_w * c16 + 12 * c16 + 128


def scratch_requests(tflite_bytes: bytes, idf_target: str) -> list[Scratch]:
    """The scratch each int8 layer of the model asks for on ``idf_target`` (zero-size ones omitted)."""
    from tinyml.model.tflite import read_model

    model = read_model(tflite_bytes)
    out: list[Scratch] = []
    for op in model.operators:
        shapes = [model.tensors[i].shape if i >= 0 else () for i in op.inputs]
        result = model.tensors[op.outputs[0]].shape if op.outputs else ()
        if model.tensors[op.inputs[0]].dtype != "int8":
            continue
        o = op.options
        if op.opcode == "SOFTMAX" and len(shapes[0]) >= 2:
            nbytes = 4 * shapes[0][1]
        elif op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D") and idf_target in SIMD_TARGETS:
            (_, in_h, in_w, in_c), (_, k_h, k_w, _), (_, out_h, out_w, out_c) = shapes[0], shapes[1], result
            pad_h, after_h = _pad(in_h, out_h, o.get("strideH", 1), k_h, o.get("dilationHFactor", 1),
                                  o.get("padding", SAME))
            pad_w, after_w = _pad(in_w, out_w, o.get("strideW", 1), k_w, o.get("dilationWFactor", 1),
                                  o.get("padding", SAME))
            pad = (pad_h, pad_w, after_h, after_w)
            if op.opcode == "CONV_2D":
                nbytes = _conv_s3(in_h, in_w, in_c, k_h, k_w, out_h, out_w, out_c, pad)
            else:
                nbytes = _depthwise_s3(in_h, in_w, in_c, max(1, out_c // max(1, in_c)), k_h, k_w, out_h, out_w,
                                       pad)
        else:
            continue
        if nbytes > 0:
            out.append(Scratch(op.index, op.opcode, nbytes))
    return out


def scratch_arena_bytes(tflite_bytes: bytes, idf_target: str) -> int:
    """Arena bytes to add to the host TFLM figure on ``idf_target``: every request, aligned, as if
    none shared memory (TFLM's planner may overlap them; this is the safe side)."""
    return sum(_ceil(s.nbytes, ALIGN) + PER_REQUEST for s in scratch_requests(tflite_bytes, idf_target))
