"""Host build of tinyml_features_int.c for the tests: gcc -> shared library -> ctypes."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from tests.cbuild import host_compile
from tinyml.data.features_int_c import int_config_header
from tinyml.paths import template_dir

SRC = template_dir("common")


class IntFeaturesLib:
    """The C integer preprocessing of one baked configuration, callable on numpy windows."""

    def __init__(self, tmp: Path, **config):
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "tinyml_features_int_config.h").write_text(int_config_header(**config))
        lib = tmp / "libifeat.so"
        host_compile([SRC / "tinyml_features_int.c", SRC / "tinyml_series.c"], lib, includes=[tmp, SRC], shared=True,
                     flags=("-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"))
        self.lib = ctypes.CDLL(str(lib))

    def _rows(self, fn, x: np.ndarray, width: int, dtype) -> np.ndarray:
        out = np.zeros((x.shape[0], width), dtype)
        row = np.zeros(width, dtype)
        for i in range(x.shape[0]):
            w = np.ascontiguousarray(x[i], np.float32)
            fn(w.ctypes.data_as(ctypes.c_void_p), row.ctypes.data_as(ctypes.c_void_p))
            out[i] = row
        return out

    def values(self, x: np.ndarray, n_features: int) -> np.ndarray:
        """int64 feature values [N, F] of float32 windows [N, T, C]."""
        return self._rows(self.lib.tinyml_ifeat_window_values, x, n_features, np.int64)

    def preprocess(self, x: np.ndarray, input_bytes: int) -> np.ndarray:
        """int8 model inputs [N, input_bytes] of float32 windows [N, T, C]."""
        return self._rows(self.lib.tinyml_ifeat_preprocess, x, input_bytes, np.int8)


def m4_bench():  # noqa: ANN201 - the module
    """benchmarks/data_features.py: its Cortex-M4F preprocessing harness (``m4_preprocess_figures``)."""
    from benchmarks import data_features

    return data_features
