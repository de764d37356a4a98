"""Op lowerings, one module per op family; importing this package registers them all."""

from tinyml.codegen.ops import (  # noqa: F401,E402 - registration
    activations,
    conv,
    elementwise,
    fully_connected,
    layout,
    pooling,
    reduce,
    reshape,
    softmax,
    space_batch,
)
from tinyml.codegen.ops.base import (
    LOWERINGS,
    Alias,
    Call,
    Const,
    Graph,
    In,
    Out,
    Step,
    lowering,
    unsupported,
)

__all__ = ["LOWERINGS", "Alias", "Call", "Const", "Graph", "In", "Out", "Step", "lowering", "unsupported"]
