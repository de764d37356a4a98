"""RESHAPE, EXPAND_DIMS, SQUEEZE: the output is the input's bytes under another shape."""

from __future__ import annotations

from tinyml.codegen.ops.base import Alias, Graph, Step, lowering


@lowering("RESHAPE", "EXPAND_DIMS", "SQUEEZE")
def reshape(g: Graph) -> list[Step]:
    x, out = g.input(0), g.output()
    g.same_quant(x, out)
    if x.size != out.size:
        raise g.unsupported(f"reshapes {list(x.shape)} ({x.size} values) to {list(out.shape)} ({out.size})")
    return [Alias(x.index, out.index)]
