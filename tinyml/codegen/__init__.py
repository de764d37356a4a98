"""Native code generator: an int8 .tflite becomes dependency-free C99, bit-exact with TFLM.

``generate()`` returns the header, the source and a JSON-able report; ``figures()`` gives
``tinyml inspect`` the planned arena, weight bytes and per-target code size.
"""

from tinyml.codegen.emit import Generated, generate
from tinyml.codegen.figures import figures

__all__ = ["Generated", "figures", "generate"]
