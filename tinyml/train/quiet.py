"""Keep TensorFlow's start-up and converter chatter away from the user.

TF and the TFLite converter print from C++ straight to file descriptors 1 and 2, which Python's
``contextlib.redirect_stdout`` cannot catch, so the descriptors themselves are redirected. The
captured text is shown only when the wrapped work fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def silenced_fds() -> Iterator[list[str]]:
    """Redirect fds 1 and 2 into a temp file; the yielded list receives the text afterwards."""
    captured: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


def import_keras() -> Any:
    """Import keras (and TensorFlow under it) without its start-up log lines."""
    if "keras" not in sys.modules:
        with silenced_fds():
            import keras  # noqa: F401
            import tensorflow
        # retracing notices: several models trained in one process (`evaluate --by`) are expected
        tensorflow.get_logger().setLevel("ERROR")
    import keras

    return keras


def import_tf() -> Any:
    import_keras()
    import tensorflow as tf

    return tf
