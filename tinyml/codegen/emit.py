"""Turn a validated model into ``NAME.h`` and ``NAME.c``: kernels, constants, plan, invoke().

The generated C is C99, uses only <stdint.h> and <string.h>, allocates nothing at run
time and does integer arithmetic only: every multiplier, shift, padding and range was
folded here. Kernel calls appear in graph order with the operator they come from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyml.codegen import kernels
from tinyml.codegen.c_text import c_comment
from tinyml.codegen.ops import LOWERINGS, Alias, Call, Const, Graph, In, Out, Step, unsupported
from tinyml.codegen.planner import Plan, plan
from tinyml.codegen.prune import io_tensors
from tinyml.codegen.shapes import fold
from tinyml.errors import InputError
from tinyml.model.tflite import Model, read_model

# what to change in the Keras model for operators people commonly hit
_HINTS = {
    "TILE": "replace UpSampling/RepeatVector layers (they become TILE/RESIZE) with Conv2D or Dense layers",
    "RESIZE_NEAREST_NEIGHBOR": "replace UpSampling2D with a strided Conv2D design or Dense layers",
    "RESIZE_BILINEAR": "replace UpSampling2D(interpolation='bilinear') or Resizing layers",
    "TRANSPOSE_CONV": "replace Conv2DTranspose with UpSampling-free Conv2D/Dense layers",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "replace LSTM/GRU layers with Conv1D and pooling",
    "BATCH_MATMUL": "avoid matrix products between two activations (attention, Dot layers)",
    "EXP": "remove the exp/softplus activation or Lambda layer",
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


@dataclass
class Generated:
    prefix: str
    target: str
    header: str
    source: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def arena_bytes(self) -> int:
        return int(self.report["arena_bytes"])


def lower(model: Model) -> tuple[int, int, list[Step]]:
    """Graph input, graph output and the lowered steps, checking every operator is supported."""
    g_in, g_out, ops = io_tensors(model)
    for t in (model.tensors[g_in], model.tensors[g_out]):
        if t.dtype != "int8" or t.quant is None or t.quant.per_channel:
            raise InputError(f"model input/output {t.name!r} is {t.dtype}"
                             f"{'' if t.quant else ' without quantization'}; the generator needs a full-int8 model",
                             hint="quantize with `tinyml quantize` (int8 weights, activations, input and output)")
        if t.data is not None:
            raise InputError(f"model input/output {t.name!r} is a constant", hint="export a model that computes")
    ready = {g_in} | {t.index for t in model.tensors if t.data is not None}
    steps: list[Step] = []
    for op in ops:
        fn = LOWERINGS.get(op.opcode)
        if fn is None:
            raise unsupported(op, "this operator is not supported by the code generator",
                              _HINTS.get(op.opcode, "replace the Keras layer that produces it")
                              + "; docs/codegen.md lists the supported ops")
        g = Graph(model, op)
        for step in fn(g):
            if isinstance(step, Call):
                step.op_index, step.op_name = op.index, op.opcode
                missing = [a.tensor for a in step.args if isinstance(a, In) and a.tensor not in ready]
                if missing:
                    raise unsupported(op, f"reads tensor {missing[0]} before any operator computes it",
                                      "the model is not in execution order; re-convert it")
                ready.update(a.tensor for a in step.args if isinstance(a, Out))
            else:
                if step.src not in ready:
                    raise unsupported(op, f"reads tensor {step.src} before any operator computes it")
                ready.add(step.dst)
            steps.append(step)
    if g_out not in ready:
        raise InputError("the model output is never computed", hint="re-convert the model")
    return g_in, g_out, steps


def generate(source: Model | bytes | str, prefix: str = "model", target: str = kernels.PORTABLE,
             origin: str = "", *, trace: bool = False) -> Generated:
    """Generate the C for a model (a Model, .tflite bytes or a path). ``trace``: after every
    kernel call, hand each tensor it wrote to an external ``tml_trace(op, tensor, bytes, n)``
    (for `--verify` to find the first operator where the C departs from the reference)."""
    if not _IDENT.match(prefix):
        raise InputError(f"invalid C prefix {prefix!r}", hint="use letters, digits and '_' (not first), at most 41")
    kernels.check_target(target)
    model = fold(source if isinstance(source, Model) else read_model(source))
    _check_io(model)
    g_in, g_out, steps = lower(model)
    steps = kernels.specialize(steps, target)
    nbytes = {t.index: t.nbytes for t in model.tensors}
    p = plan(steps, g_in, g_out, nbytes)
    consts = _const_names(prefix, steps)
    calls = [s for s in steps if isinstance(s, Call)]
    used = list(dict.fromkeys(c.kernel for c in calls))
    kernel_order = kernels.closure(used, target)
    tin, tout = model.tensors[g_in], model.tensors[g_out]
    header = _header(prefix, tin, tout, p.arena_bytes, origin, target)
    source_text = _source(prefix, target, kernel_order, consts, steps, p, tin, tout, origin, trace)
    report = _report(model, prefix, target, steps, p, consts, g_in, g_out, kernel_order)
    if trace:
        report["trace"] = True
    return Generated(prefix, target, header, source_text, report)


def _check_io(model: Model) -> None:
    for t in model.tensors:
        if t.is_variable:
            raise InputError(f"tensor {t.index} ({t.name}) is a variable (stateful model)",
                             hint="export a stateless Keras model (no stateful RNN layers)")


def _const_names(prefix: str, steps: list[Step]) -> dict[tuple[str, bytes], tuple[str, Const]]:
    """One C name per distinct constant array (identical arrays are shared)."""
    names: dict[tuple[str, bytes], tuple[str, Const]] = {}
    for s in steps:
        if not isinstance(s, Call):
            continue
        for a in s.args:
            if isinstance(a, Const):
                key = (a.ctype, np.ascontiguousarray(a.values).tobytes())
                if key not in names:
                    names[key] = (f"{prefix}_{a.role}{len(names)}", a)
    return names


def _const_name(consts: dict[tuple[str, bytes], tuple[str, Const]], c: Const) -> str:
    return consts[(c.ctype, np.ascontiguousarray(c.values).tobytes())][0]


def _c_array(name: str, c: Const) -> str:
    vals = [str(int(v)) for v in np.asarray(c.values).reshape(-1)]
    if c.ctype == "int32_t":
        vals = [v if v != "-2147483648" else "INT32_MIN" for v in vals]
    lines = [", ".join(vals[i:i + 20]) for i in range(0, len(vals), 20)] or ["0"]
    body = ",\n    ".join(lines)
    return f"static const {c.ctype} {name}[{max(len(vals), 1)}] = {{\n    {body}\n}};\n"


def _float(x: float) -> str:
    return f"{np.float32(x)!r}".replace("np.float32(", "").rstrip(")") + "f"


def _header(prefix: str, tin: Any, tout: Any, arena: int, origin: str, target: str) -> str:
    guard = f"{prefix.upper()}_H"
    qi, qo = tin.quant, tout.quant
    return f"""/* {prefix}.h: generated by `tinyml codegen`{f' from {c_comment(origin)}' if origin else ''} (target {target}).
 * Int8 inference with no heap, no floating point and no dependency beyond <stdint.h>/<string.h>.
 * Quantize inputs as q = round(x / {prefix}_input_scale) + {prefix}_input_zero_point;
 * outputs decode as y = ({prefix}_output_scale) * (q - {prefix}_output_zero_point). */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

enum {{
    {prefix}_input_size = {tin.size},      /* int8 values in, shape {list(tin.shape)} */
    {prefix}_output_size = {tout.size},     /* int8 values out, shape {list(tout.shape)} */
    {prefix}_arena_bytes = {arena},     /* static working memory inside {prefix}.c */
    {prefix}_input_zero_point = {qi.zero_points[0]},
    {prefix}_output_zero_point = {qo.zero_points[0]}
}};
#define {prefix}_input_scale {_float(qi.scales[0])}
#define {prefix}_output_scale {_float(qo.scales[0])}
#define {prefix}_input_dims {{{", ".join(str(d) for d in tin.shape)}}}   /* initializer for an int array */
#define {prefix}_output_dims {{{", ".join(str(d) for d in tout.shape)}}}

/* Runs the model once. input and output must not overlap. Returns 0. Not reentrant. */
int {prefix}_invoke(const int8_t *input, int8_t *output);

#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""


def _pointer(prefix: str, p: Plan, tensor: int, write: bool) -> str:
    slot = p.slots[tensor]
    if slot.place == "arena":
        return f"({prefix}_arena.bytes + {slot.offset})"
    if slot.place == "input" and write:
        raise AssertionError("planner placed a written tensor in the input buffer")
    return slot.place


def _c_value(v: int | tuple[int, ...]) -> str:
    return "{" + ", ".join(str(int(x)) for x in v) + "}" if isinstance(v, tuple) else str(int(v))


def _param_block(prefix: str, index: int, call: Call) -> str:
    fields = ", ".join(f".{k} = {_c_value(v)}" for k, v in call.params.items())
    return f"static const tml_{call.kernel}_params {prefix}_p{index} = {{ {fields} }};\n"


def _source(prefix: str, target: str, kernel_order: list[str], consts: dict, steps: list[Step],
            p: Plan, tin: Any, tout: Any, origin: str, trace: bool = False) -> str:
    out = [f"/* {prefix}.c: generated by `tinyml codegen`{f' from {c_comment(origin)}' if origin else ''} "
           f"(target {target}). Do not edit; regenerate. */\n",
           "#include <stdint.h>\n#include <string.h>\n", kernels.prelude(target),
           f'#include "{prefix}.h"\n\n',
           "void tml_trace(int op, int tensor, const int8_t *data, int32_t n);\n\n" if trace else ""]
    for k in kernel_order:
        h = kernels.header(k)
        text, folder = kernels.source(k, target)
        out.append(f"/* ---- kernel {k} ({folder}) ---- */\n{h}{text}\n")
    out.append("/* ---- constants ---- */\n")
    out.extend(_c_array(name, c) for name, c in consts.values())
    if p.arena_bytes:
        out.append(f"\n/* tensor arena: {p.arena_bytes} bytes, laid out at generation time */\n"
                   f"static union {{ int32_t align; int8_t bytes[{p.arena_bytes}]; }} {prefix}_arena;\n")
    body: list[str] = []
    for i, s in enumerate(steps):
        if isinstance(s, Alias):
            continue
        if s.params:
            out.append(_param_block(prefix, i, s))
        args = [f"&{prefix}_p{i}"] if s.params else []
        for a in s.args:
            if isinstance(a, In):
                args.append(_pointer(prefix, p, a.tensor, False))
            elif isinstance(a, Out):
                args.append(_pointer(prefix, p, a.tensor, True))
            elif isinstance(a, Const):
                args.append(_const_name(consts, a))
            else:
                args.append("0")
        body.append(f"    /* #{s.op_index} {s.op_name} */\n    tml_{s.kernel}({', '.join(args)});\n")
        if trace:
            body.extend(f"    tml_trace({s.op_index}, {a.tensor}, {_pointer(prefix, p, a.tensor, True)}, "
                        f"{p.slots[a.tensor].size});\n" for a in s.args if isinstance(a, Out))
    if p.copy_input_to_output:
        body.append(f"    memcpy(output, input, {tout.size});\n")
    text = "".join(body)
    unused = [name for name in ("input", "output") if not re.search(rf"\b{name}\b", text)]
    voids = "".join(f"    (void){name};\n" for name in unused)
    out.append(f"\nint {prefix}_invoke(const int8_t *input, int8_t *output)\n{{\n{voids}{text}    return 0;\n}}\n")
    return "".join(out)


def _report(model: Model, prefix: str, target: str, steps: list[Step], p: Plan, consts: dict,
            g_in: int, g_out: int, kernel_order: list[str]) -> dict[str, Any]:
    ops = []
    for s in steps:
        if isinstance(s, Alias):
            ops.append({"kind": "alias", "tensor": s.dst, "of": s.src})
        else:
            ops.append({"kind": "call", "op_index": s.op_index, "op": s.op_name, "kernel": s.kernel,
                        "params": dict(s.params)})
    tensors = [{"index": t, "name": model.tensors[t].name, "shape": list(model.tensors[t].shape),
                "bytes": slot.size, "place": slot.place, "offset": slot.offset,
                "first_step": slot.first, "last_step": slot.last}
               for t, slot in sorted(p.slots.items())]
    return {"prefix": prefix, "target": target, "arena_bytes": p.arena_bytes,
            "weight_bytes": int(sum(c.values.nbytes for _, c in consts.values())),
            "input": {"tensor": g_in, "size": model.tensors[g_in].size},
            "output": {"tensor": g_out, "size": model.tensors[g_out].size},
            "kernels": kernel_order, "steps": ops, "tensors": tensors}
