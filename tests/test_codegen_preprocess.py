"""`tinyml codegen --preprocess RUN`: the run's preprocessing as C beside the model's C, from the
same template firmware projects use. Compiled on the host, raw window in, the int8 input and the
model's output must equal Python's preprocessing and the TFLM interpreter."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.cbuild import host_compile
from tests.conftest import assert_clean_error, run_cli
from tinyml.data.dataset import load
from tinyml.data.features import quantize_features
from tinyml.model.interpreters import io_quantization, tflm_run
from tinyml.preprocess import Preprocess

HARNESS = r"""
#include <stdio.h>
#include "model.h"
#include "tinyml_run.h"
int main(void) {
    static float window[WINDOW_VALUES];
    static int8_t input[model_input_size], output[model_output_size];
    int dims[] = model_input_dims;
    (void)dims;
    while (fread(window, sizeof window, 1, stdin) == 1) {
        tinyml_preprocess(window, input);
        model_invoke(input, output);
        fwrite(input, 1, sizeof input, stdout);
        fwrite(output, 1, sizeof output, stdout);
    }
    return 0;
}
"""


def _check_run(run_dir: Path, data: Path, tmp_path: Path, extra: set[str]) -> None:
    out = tmp_path / "c"
    proc = run_cli("codegen", run_dir / "model_int8.tflite", "--out", out, "--preprocess", run_dir)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} >= {"model.h", "model.c", "tinyml_run.c", "tinyml_run.h", *extra}
    pre = Preprocess.from_run(run_dir)
    values = pre.window * len(pre.channels)
    (tmp_path / "main.c").write_text(HARNESS.replace("WINDOW_VALUES", str(values)))
    exe = tmp_path / "pre"
    sources = sorted(out.glob("*.c"))
    host_compile([tmp_path / "main.c", *sources], exe, includes=[out], libs=["-lm"],
                 flags=("-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror"))
    windows = np.ascontiguousarray(load(data).x[::9], dtype=np.float32)
    run = subprocess.run([exe], input=windows.tobytes(), capture_output=True, check=True)
    tflite = (run_dir / "model_int8.tflite").read_bytes()
    q = io_quantization(tflite)
    n_in, n_out = int(np.prod(q.in_shape)), int(np.prod(q.out_shape))
    got = np.frombuffer(run.stdout, np.int8).reshape(len(windows), n_in + n_out)
    if pre.integer:  # the device's own int8 inputs, bit for bit
        want_in = pre.int8_inputs(windows, q.in_scale, q.in_zp)
    else:
        want_in = quantize_features(pre.apply(windows).reshape(len(windows), -1), np.zeros(n_in), np.ones(n_in),
                                    q.in_scale, q.in_zp)
    assert np.array_equal(got[:, :n_in], want_in), f"{np.count_nonzero(got[:, :n_in] != want_in)} inputs differ"
    want_out = tflm_run(tflite, want_in.reshape(len(windows), *q.in_shape)).reshape(len(windows), -1)
    assert np.array_equal(got[:, n_in:], want_out)


INT_FILES = {"tinyml_features_int.c", "tinyml_features_int.h", "tinyml_features_int_config.h"}


def test_per_window_preprocess_c_matches_python_and_tflm(trained_run, tmp_path: Path):
    """Integer per_window (the default): the integer feature C and its configuration come along."""
    _check_run(trained_run.run_dir, trained_run.data, tmp_path, INT_FILES)


@pytest.mark.parametrize(("arithmetic", "files"), [
    ("integer", INT_FILES), ("float64", {"tinyml_features.c", "tinyml_features.h", "tinyml_features_config.h"})])
def test_feature_preprocess_c_matches_python_and_tflm(trained_run, tmp_path: Path, arithmetic: str, files: set[str]):
    """An mlp on features: the feature extractor and its baked configuration come along."""
    from tinyml.quantize import quantize_run
    from tinyml.train.fit import TrainOptions, train

    run = tmp_path / "mlp"
    train(load(trained_run.data), "mlp", run, TrainOptions(epochs=3, quiet=True, arithmetic=arithmetic),
          dataset_path=trained_run.data)
    quantize_run(run, tolerance=100.0)
    _check_run(run, trained_run.data, tmp_path, files)


def test_preprocess_refuses_another_runs_model(trained_run, shared, tmp_path: Path):
    proc = run_cli("codegen", shared / "models/vib_cnn_int8.tflite", "--out", tmp_path / "c",
                   "--preprocess", trained_run.run_dir)
    assert_clean_error(proc, "is not", "model_int8.tflite")
    assert not (tmp_path / "c").exists()
