"""The small vocabulary op lowerings speak: kernel calls, constants and in-place aliases.

A lowering turns one TFLite operator into either an ``Alias`` (the output shares the
input's bytes: RESHAPE and friends) or ``Call``s of C kernels whose parameters are all
integers folded at generation time. The emitter and the planner only see this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinyml.errors import InputError
from tinyml.model.tflite import Model, Operator, Quantization, Tensor


@dataclass(frozen=True)
class Const:
    """A constant C array: weights, biases, folded multipliers and shifts, tables."""

    ctype: str  # "int8_t", "int16_t", "int32_t"
    values: np.ndarray
    role: str  # used in the generated name: w, b, mult, shift, ...


@dataclass(frozen=True)
class In:
    """A tensor the kernel reads."""

    tensor: int


@dataclass(frozen=True)
class Out:
    """A tensor the kernel writes."""

    tensor: int


Arg = In | Out | Const | None


@dataclass
class Call:
    kernel: str  # C function tml_<kernel>, with params struct tml_<kernel>_params when params is set
    params: dict[str, int | tuple[int, ...]]
    args: list[Arg]
    op_index: int = -1
    op_name: str = ""


@dataclass(frozen=True)
class Alias:
    """``dst`` is ``src`` reinterpreted (same bytes, other shape)."""

    src: int
    dst: int


Step = Call | Alias


@dataclass
class Graph:
    """Read access to the model for lowerings, with the checks they all need."""

    model: Model
    op: Operator = field(default=None)  # type: ignore[assignment]

    def tensor(self, i: int) -> Tensor:
        return self.model.tensors[i]

    def input(self, n: int) -> Tensor:
        if n >= len(self.op.inputs) or self.op.inputs[n] < 0:
            raise self.unsupported(f"input {n} is missing")
        return self.model.tensors[self.op.inputs[n]]

    def optional_input(self, n: int) -> Tensor | None:
        if n >= len(self.op.inputs) or self.op.inputs[n] < 0:
            return None
        return self.model.tensors[self.op.inputs[n]]

    def operand(self, n: int) -> In | Const:
        """An int8 input read from the arena, or from a constant array when the model stores it."""
        t = self.input(n)
        return In(t.index) if t.data is None else Const("int8_t", t.data.reshape(-1).astype(np.int8), "c")

    def output(self, n: int = 0) -> Tensor:
        if n >= len(self.op.outputs):
            raise self.unsupported(f"output {n} is missing")
        return self.model.tensors[self.op.outputs[n]]

    def const(self, n: int) -> np.ndarray:
        t = self.input(n)
        if t.data is None:
            raise self.unsupported(f"input {n} ({t.name}) must be a constant",
                                   "the code generator needs this operand at generation time; "
                                   "avoid computing it from the data in the Keras model")
        return t.data

    def int8(self, t: Tensor, *, per_channel_ok: bool = False) -> Quantization:
        """Check an int8 tensor's quantization and return it."""
        if t.dtype != "int8":
            raise self.unsupported(f"tensor {t.name!r} is {t.dtype}, only int8 is supported",
                                   "quantize the model to full int8 (TFLITE_BUILTINS_INT8, int8 input/output)")
        if t.quant is None:
            raise self.unsupported(f"tensor {t.name!r} has no quantization parameters",
                                   "quantize the model to full int8 with a representative dataset")
        if t.size == 0:
            raise self.unsupported(f"tensor {t.name!r} is empty (shape {list(t.shape)})", "re-convert the model")
        if t.quant.per_channel and not per_channel_ok:
            raise self.unsupported(f"tensor {t.name!r} is quantized per channel here",
                                   "use per-tensor quantization for activations")
        if not -128 <= t.quant.zero_points[0] <= 127:
            raise self.unsupported(f"tensor {t.name!r} has zero point {t.quant.zero_points[0]}",
                                   "re-quantize the model")
        return t.quant

    def same_quant(self, a: Tensor, b: Tensor) -> None:
        qa, qb = self.int8(a), self.int8(b)
        if qa.scales[0] != qb.scales[0] or qa.zero_points[0] != qb.zero_points[0]:
            raise self.unsupported("input and output quantization differ, which this kernel cannot rescale",
                                   "quantize with the default TFLite converter settings")

    def unsupported(self, reason: str, fix: str = "") -> InputError:
        return unsupported(self.op, reason, fix)


def unsupported(op: Operator, reason: str, fix: str = "") -> InputError:
    return InputError(f"operator #{op.index} {op.opcode}: {reason}",
                      hint=fix or "change the Keras model so the converter does not emit this; "
                                  "docs/codegen.md lists the supported ops and variants")


Lowering = Callable[[Graph], list[Step]]
LOWERINGS: dict[str, Lowering] = {}


def lowering(*opcodes: str) -> Callable[[Lowering], Lowering]:
    """Register a lowering for one or more TFLite builtin operators."""

    def register(fn: Lowering) -> Lowering:
        for name in opcodes:
            LOWERINGS[name] = fn
        return fn

    return register


def shape4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """NHWC view of a rank 1..4 shape."""
    if len(shape) > 4:
        raise ValueError(shape)
    s = (1,) * (4 - len(shape)) + tuple(shape)
    return s[0], s[1], s[2], s[3]


def multiplier_consts(mults: list[int], shifts: list[int]) -> list[Const]:
    """Folded requantization: int32 multipliers and int8 shifts, one per channel (or one)."""
    return [Const("int32_t", np.array(mults, np.int32), "mult"), Const("int8_t", np.array(shifts, np.int8), "shift")]
