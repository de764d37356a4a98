"""SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND, which the converter wraps around dilated convolutions.

Both are pure data movement on NHWC (a rank-3 NWC tensor is treated as height 1); padding
uses the output zero point as TFLM does.
"""

from __future__ import annotations

import numpy as np

from tinyml.codegen.ops.base import Call, Graph, Out, Step, lowering


def _as4(g: Graph, shape: tuple[int, ...], block: np.ndarray, pads: np.ndarray) -> tuple:
    if len(shape) == 4 and block.size == 2 and pads.shape == (2, 2):
        return shape, [int(b) for b in block], pads.astype(int).tolist()
    if len(shape) == 3 and block.size == 1 and pads.shape == (1, 2):
        return (shape[0], 1, shape[1], shape[2]), [1, int(block[0])], [[0, 0], pads.astype(int).tolist()[0]]
    raise g.unsupported(f"only 3-D/4-D tensors with matching block and paddings (found {list(shape)})")


@lowering("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")
def space_batch(g: Graph) -> list[Step]:
    x, out = g.input(0), g.output()
    g.same_quant(x, out)
    block = np.asarray(g.const(1)).reshape(-1)
    pads = np.asarray(g.const(2)).reshape(-1, 2)
    to_batch = g.op.opcode == "SPACE_TO_BATCH_ND"
    (n, h, w, c), (bh, bw), ((p0, p1), (p2, p3)) = _as4(g, x.shape, block, pads)
    if min(bh, bw) < 1 or min(p0, p1, p2, p3) < 0:
        raise g.unsupported(f"invalid block {block.tolist()} or paddings {pads.tolist()}")
    if to_batch:
        want = (n * bh * bw, (h + p0 + p1) // bh, (w + p2 + p3) // bw, c)
        fits = (h + p0 + p1) % bh == 0 and (w + p2 + p3) % bw == 0
    else:
        want = (n // (bh * bw), h * bh - p0 - p1, w * bw - p2 - p3, c)
        fits = n % (bh * bw) == 0
    if not fits or int(np.prod(want)) != out.size or min(want) < 1:
        raise g.unsupported(f"block {block.tolist()} and paddings {pads.tolist()} do not map "
                            f"{list(x.shape)} to {list(out.shape)}")
    src = (n, h, w, c)
    params = {"in_dims": src, "out_dims": want, "block_h": bh, "block_w": bw, "pad_top": p0, "pad_left": p2,
              "pad_value": out.quant.zero_points[0]}  # type: ignore[union-attr]
    kernel = "space_to_batch" if to_batch else "batch_to_space"
    if not to_batch:
        params.pop("pad_value")
    return [Call(kernel, params, [g.operand(0), Out(out.index)])]
