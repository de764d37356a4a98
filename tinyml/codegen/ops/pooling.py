"""MAX_POOL_2D and AVERAGE_POOL_2D: window arithmetic folded, no rescaling (TFLM keeps scales)."""

from __future__ import annotations

from tinyml.codegen import fixedpoint as fp
from tinyml.codegen.ops.base import Call, Graph, In, Out, Step, lowering
from tinyml.codegen.ops.conv import _nhwc, window


@lowering("MAX_POOL_2D", "AVERAGE_POOL_2D")
def pool(g: Graph) -> list[Step]:
    x, out = g.input(0), g.output()
    g.same_quant(x, out)
    n, ih, iw, c = _nhwc(g, x.shape, "input")
    on, oh, ow, oc = _nhwc(g, out.shape, "output")
    if (on, oc) != (n, c):
        raise g.unsupported(f"pooling changes batch or channels: {list(x.shape)} -> {list(out.shape)}")
    o = g.op.options
    k = (int(o.get("filterHeight", 0)), int(o.get("filterWidth", 0)))
    q = out.quant
    lo, hi = fp.activation_range(int(o.get("fusedActivationFunction", 0)), q.scales[0], q.zero_points[0])  # type: ignore[union-attr]
    params = {"batches": n, "in_h": ih, "in_w": iw, "channels": c, "out_h": oh, "out_w": ow,
              "k_h": k[0], "k_w": k[1], **window(g, (ih, iw), k, (oh, ow)), "act_min": lo, "act_max": hi}
    for key in ("dil_h", "dil_w"):
        params.pop(key)
    kernel = "max_pool" if g.op.opcode == "MAX_POOL_2D" else "avg_pool"
    return [Call(kernel, params, [In(x.index), Out(out.index)])]
