"""Trim the graph to what the generated C must compute.

Float I/O boundaries (QUANTIZE float->int8 first, DEQUANTIZE int8->float last) are cut off
so the C API stays int8 with exported scales. Shape arithmetic that only feeds the shape
operand of RESHAPE is dead once RESHAPE takes its static output shape, and operators that
shapes.fold already evaluated to constants are dropped too.
"""

from __future__ import annotations

from tinyml.errors import InputError
from tinyml.model.tflite import Model, Operator

# operator -> input positions that only describe a shape already fixed in the output tensor
_SHAPE_ONLY_INPUTS = {"RESHAPE": {1}, "EXPAND_DIMS": {1}}


def _hint_io() -> str:
    return "export a model with exactly one input and one output tensor"


def io_tensors(model: Model) -> tuple[int, int, list[Operator]]:
    """The int8 input and output the C API exposes, and the operators between them."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                         "the generated API takes one of each", hint=_hint_io())
    ops = list(model.operators)
    g_in, g_out = model.inputs[0], model.outputs[0]
    consumers = [op for op in ops if g_in in op.inputs]
    if model.tensors[g_in].dtype == "float32" and len(consumers) == 1 and consumers[0].opcode == "QUANTIZE":
        ops.remove(consumers[0])
        g_in = consumers[0].outputs[0]
    producers = [op for op in ops if g_out in op.outputs]
    if model.tensors[g_out].dtype == "float32" and len(producers) == 1 and producers[0].opcode == "DEQUANTIZE":
        ops.remove(producers[0])
        g_out = producers[0].inputs[0]
    folded = [op for op in ops if not all(model.tensors[t].data is not None for t in op.outputs)]
    return g_in, g_out, _live(folded, g_out)


def _live(ops: list[Operator], g_out: int) -> list[Operator]:
    """Operators the output depends on, in graph order (shape-only operands do not count)."""
    needed = {g_out}
    keep: list[Operator] = []
    for op in reversed(ops):
        if not needed.intersection(op.outputs):
            continue
        keep.append(op)
        skip = _SHAPE_ONLY_INPUTS.get(op.opcode, set())
        needed.update(t for pos, t in enumerate(op.inputs) if t >= 0 and pos not in skip)
    return keep[::-1]
