"""The reference semantics of each operator, and where an interpreter departs from them.

TFLM's kernels are the reference, except for the operators in ``REFERENCE`` whose TFLM kernels
are wrong (docs/codegen.md, "Reference semantics"); those follow TFLite's reference kernels
(LiteRT's BUILTIN_REF resolver). The reference output of a model is computed one operator at a
time: each operator is cut out into a one-operator model with the exact shapes the code
generator derives (``shapes.fold``), run by its reference interpreter on the reference values
of its inputs. The same inputs go through TFLM and LiteRT (each one operator at a time, TFLM
with the shapes the flatbuffer stores, as it sees them), so an interpreter that departs from the
reference is caught at the operator responsible rather than at the model's output.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyml.errors import InputError
from tinyml.model.interpreters import OpRunner, op_runner

# opcode -> (reference interpreter, why TFLM is not the reference for it)
_TFLM_SHAPES = ("TFLM never computes output shapes: it keeps the batch the converter stores as a placeholder (1) "
                "and so computes one of block_h*block_w batches")
REFERENCE: dict[str, tuple[str, str]] = {
    "SPACE_TO_BATCH_ND": ("litert-ref", _TFLM_SHAPES + ", and it pads with 0 instead of the zero point "
                                        "(SpaceToBatchParams.output_offset is never set)"),
    "BATCH_TO_SPACE_ND": ("litert-ref", _TFLM_SHAPES),
}
ENGINES = {"tflm": "TFLM", "litert": "LiteRT", "litert-ref": "LiteRT's reference kernels"}
COMPARED = ("tflm", "litert")


def reference_engine(opcode: str) -> str:
    return REFERENCE.get(opcode, ("tflm", ""))[0]


@dataclass
class Departure:
    """Where one interpreter departs from the reference: the operator, how often, and why."""

    engine: str
    op_index: int
    opcode: str
    inputs: int = 0          # inputs (model inputs) on which this operator's output differed
    values: int = 0          # differing output values summed over those inputs
    detail: str = ""         # e.g. the output shape it computes instead of the reference's
    reason: str = ""

    def describe(self) -> str:
        return describe(self.to_json())

    def to_json(self) -> dict:
        return {"engine": self.engine, "op_index": self.op_index, "op": self.opcode, "inputs": self.inputs,
                "values": self.values, "detail": self.detail, "reason": self.reason}


@dataclass
class Trace:
    """Reference outputs of the model plus, per interpreter, the operators where it departs."""

    outputs: np.ndarray                                   # [N, output size] int8
    departures: list[Departure] = field(default_factory=list)
    values: list[dict[int, np.ndarray]] = field(default_factory=list)  # per input, every tensor (``keep``)

    def first(self, engine: str) -> Departure | None:
        return next((d for d in self.departures if d.engine == engine), None)


def describe(d: dict) -> str:
    """One line for a departure (``Departure.to_json()``), as the CLI prints it."""
    why = f": {d['reason']}" if d["reason"] else ""
    return (f"{ENGINES[d['engine']]} disagrees with the reference at op {d['op_index']} {d['op']} "
            f"({d['detail'] or str(d['values']) + ' values'} on {d['inputs']} inputs){why}")


@functools.lru_cache(maxsize=4)
def _unpacked(tflite: bytes) -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(tflite, 0)


def op_model(tflite: bytes, op_index: int, shapes: dict[int, tuple[int, ...]],
             consts: dict[int, np.ndarray]) -> bytes:
    """A model holding only operator ``op_index``: tensors in ``consts`` become constants with those
    values, its other inputs the graph's inputs, its outputs the graph's outputs; every tensor
    takes its shape from ``shapes``."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = _unpacked(tflite)  # read only: what is changed below is copied first
    graph = raw.subgraphs[0]
    op = copy.deepcopy(graph.operators[op_index])
    order = list(dict.fromkeys(int(t) for t in list(op.inputs) + list(op.outputs) if int(t) >= 0))
    remap = {t: i for i, t in enumerate(order)}
    buffers = [schema.BufferT()]
    tensors = []
    for t in order:
        tensor = copy.deepcopy(graph.tensors[t])
        tensor.buffer = 0
        if t in consts:
            buf = schema.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(consts[t]).tobytes(), np.uint8)
            buffers.append(buf)
            tensor.buffer = len(buffers) - 1
        tensor.shape, tensor.shapeSignature = list(shapes[t]), None
        tensors.append(tensor)
    code = copy.deepcopy(raw.operatorCodes[op.opcodeIndex])
    op.opcodeIndex = 0
    op.inputs = [remap[int(t)] if int(t) >= 0 else -1 for t in op.inputs]
    op.outputs = [remap[int(t)] for t in op.outputs]
    sub = schema.SubGraphT()
    sub.tensors, sub.operators = tensors, [op]
    sub.inputs = [remap[t] for t in dict.fromkeys(int(t) for t in graph.operators[op_index].inputs)
                  if t >= 0 and t not in consts]
    sub.outputs = list(op.outputs)
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [sub], buffers
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def trace(tflite: bytes, inputs: np.ndarray, engines: tuple[str, ...] = COMPARED, *, keep: bool = False) -> Trace:
    """Reference outputs for int8 input rows (flat, as the generated C takes them), and where each
    of ``engines`` departs from the reference, operator by operator on the reference's inputs;
    ``keep``: also every tensor's reference value per input."""
    from tinyml.codegen.prune import io_tensors
    from tinyml.codegen.shapes import fold
    from tinyml.model.tflite import read_model

    stored = read_model(tflite)
    model = fold(stored)
    g_in, g_out, ops = io_tensors(model)
    shapes = {"real": {t.index: t.shape for t in model.tensors},
              "stored": {t.index: t.shape for t in stored.tensors}}
    consts = {t.index: t.data for t in model.tensors if t.data is not None}
    cache: dict[tuple[int, str, str], OpRunner | None] = {}

    def run(op_index: int, engine: str, kind: str, args: list[np.ndarray]) -> list[np.ndarray] | None:
        key = (op_index, engine, kind)
        if key not in cache:
            op = model.operators[op_index]
            used = {t: consts[t] for t in op.inputs if t in consts}
            cache[key] = op_runner(op_model(tflite, op_index, shapes[kind], used), engine)
        runner = cache[key]
        return None if runner is None else runner(args)

    rows = np.asarray(inputs, np.int8)
    if rows.ndim != 2 or rows.shape[1] != model.tensors[g_in].size:
        raise InputError(f"inputs of shape {list(rows.shape)} for a model input of {model.tensors[g_in].size} values",
                         "pass one flat int8 row per inference")
    departures: dict[tuple[str, int], Departure] = {}
    outputs, kept = [], []
    for row in rows:
        values: dict[int, np.ndarray] = {g_in: row.reshape(shapes["real"][g_in])}
        for op in ops:
            live = list(dict.fromkeys(t for t in op.inputs if t >= 0 and t not in consts))
            args = [values[t] for t in live]
            ref = reference_engine(op.opcode)
            want = run(op.index, ref, "real", args)
            if want is None:
                raise InputError(f"operator #{op.index} {op.opcode}: {ENGINES[ref]} cannot run it, so its "
                                 "reference output is unknown", "docs/codegen.md lists the reference of each op")
            values.update(zip(op.outputs, want, strict=True))
            for engine in engines:
                kind = "stored" if engine == "tflm" else "real"  # TFLM never resizes; LiteRT does
                if engine == ref or any(a.shape != shapes[kind][t] for a, t in zip(args, live, strict=True)):
                    continue  # an input already differs in shape: an earlier operator is responsible
                diff, detail = _differing(run(op.index, engine, kind, args), want)
                if diff:
                    why = REFERENCE.get(op.opcode, ("", ""))[1] if engine == "tflm" else ""
                    d = departures.setdefault((engine, op.index), Departure(engine, op.index, op.opcode, reason=why))
                    d.inputs += 1
                    d.values += diff
                    d.detail = d.detail or detail
        outputs.append(values[g_out].reshape(-1))
        if keep:
            kept.append(values)
    ordered = sorted(departures.values(), key=lambda d: (d.op_index, d.engine))
    return Trace(np.stack(outputs).astype(np.int8), ordered, kept)


def departures(tflite: bytes, n: int = 8, seed: int = 0, engines: tuple[str, ...] = COMPARED) -> list[Departure]:
    """Where TFLM and LiteRT (or ``engines``) depart from the reference on n random int8 inputs."""
    from tinyml.codegen.prune import io_tensors
    from tinyml.codegen.shapes import fold
    from tinyml.model.tflite import read_model

    model = fold(read_model(tflite))
    size = model.tensors[io_tensors(model)[0]].size
    rng = np.random.default_rng(seed)
    return trace(tflite, rng.integers(-128, 128, size=(n, size), dtype=np.int8), engines).departures


def reference_outputs(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    """The model's output under the reference semantics, [N, output size] int8."""
    return trace(tflite, inputs, engines=()).outputs


def _differing(got: list[np.ndarray] | None, want: list[np.ndarray]) -> tuple[int, str]:
    """How many output values differ, and a note when it is not a matter of values."""
    if got is None:
        return sum(w.size for w in want), "cannot run the operator"
    for g, w in zip(got, want, strict=True):
        if g.shape != w.shape:
            return sum(x.size for x in want), f"output shape {list(g.shape)} instead of {list(w.shape)}"
    return sum(int((g != w).sum()) for g, w in zip(got, want, strict=True)), ""


def tflm_departures(tflite: bytes, n: int = 4) -> list[Departure]:
    """Where TFLM departs from the reference, on n random inputs. A model without an operator in
    ``REFERENCE`` is not traced: the reference of every other operator is TFLM's kernel."""
    from tinyml.model.tflite import read_model

    if not any(op.opcode in REFERENCE for op in read_model(tflite).operators):
        return []
    return departures(tflite, n, engines=("tflm",))


@dataclass
class Int8Run:
    """The int8 outputs a device should compute, and which interpreter computed them."""

    outputs: np.ndarray                                   # [N, *output shape] int8
    engine: str                                           # "tflm" or "reference"
    departures: list[Departure] = field(default_factory=list)  # TFLM's, when it is not the engine


def int8_run(tflite: bytes, inputs: np.ndarray, *, departures: list[Departure] | None = None) -> Int8Run:
    """Run int8 inputs [N, *input shape] through TFLM's whole-model interpreter (fast) when TFLM
    computes the model as the reference does, else through the reference semantics one operator
    at a time (``trace``): scoring a model with an interpreter known to compute it wrongly would
    report another model's accuracy. ``departures``: ``tflm_departures(tflite)``, if known."""
    from tinyml.model.interpreters import io_quantization, tflm_run

    found = tflm_departures(tflite) if departures is None else departures
    if not found:
        return Int8Run(tflm_run(tflite, inputs), "tflm")
    q = io_quantization(tflite)
    flat = np.asarray(inputs, np.int8).reshape(len(inputs), -1)
    return Int8Run(reference_outputs(tflite, flat).reshape(len(inputs), *q.out_shape), "reference", found)
