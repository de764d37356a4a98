"""`tinyml export c-array`: valid, warning-free C whose array holds the exact model bytes."""

from __future__ import annotations

import subprocess

import pytest

from tests.cbuild import host_compile
from tests.conftest import assert_clean_error, run_cli
from tinyml.export.c_array import c_identifier

HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include "{name}.h"
int main(void) {{
    if (((uintptr_t){name}) % 16 != 0) return 2;
    fwrite({name}, 1, {name}_len, stdout);
    return 0;
}}
"""


@pytest.fixture(scope="module")
def exported(shared, tmp_path_factory):
    out = tmp_path_factory.mktemp("c_array")
    proc = run_cli("export", "c-array", shared / "models/vib_cnn_int8.tflite", "--out", out, "--name", "vib-cnn 1")
    assert proc.returncode == 0, proc.stderr
    return out


def test_names_are_sanitized(exported):
    assert sorted(p.name for p in exported.iterdir()) == ["vib_cnn_1.c", "vib_cnn_1.h"]
    header = (exported / "vib_cnn_1.h").read_text()
    assert "#ifndef VIB_CNN_1_H_" in header and "extern const unsigned int vib_cnn_1_len;" in header


@pytest.mark.cross_compiler
def test_cross_compiles_without_warnings(exported, tmp_path):
    host_compile([exported / "vib_cnn_1.c"], tmp_path / "m.o", obj=True, cc="arm-none-eabi-gcc",
                 extra=["-mcpu=cortex-m4", "-mthumb"])


def test_bytes_round_trip_and_alignment(exported, shared, tmp_path):
    (tmp_path / "main.c").write_text(HARNESS.format(name="vib_cnn_1"))
    exe = tmp_path / "dump"
    host_compile([tmp_path / "main.c", exported / "vib_cnn_1.c"], exe, includes=[exported],
                 flags=["-std=c99", "-Wall", "-Wextra", "-Werror"])
    run = subprocess.run([exe], capture_output=True)
    assert run.returncode == 0, "array is not 16-byte aligned"
    assert run.stdout == (shared / "models/vib_cnn_int8.tflite").read_bytes()


FACTS = r"""
#include <stdio.h>
#include "vib_cnn_1.h"
int main(void) {
    int in_dims[] = VIB_CNN_1_INPUT_DIMS, out_dims[] = VIB_CNN_1_OUTPUT_DIMS;
    printf("%d %d %d %d %d %d %d\n", VIB_CNN_1_INPUT_RANK, in_dims[0], in_dims[1], VIB_CNN_1_INPUT_SIZE,
           VIB_CNN_1_OUTPUT_RANK, out_dims[0], VIB_CNN_1_OUTPUT_SIZE);
    printf("%.9g %d %.9g %d %d\n", (double)VIB_CNN_1_INPUT_SCALE, VIB_CNN_1_INPUT_ZERO_POINT,
           (double)VIB_CNN_1_OUTPUT_SCALE, VIB_CNN_1_OUTPUT_ZERO_POINT, VIB_CNN_1_ARENA_BYTES);
    return 0;
}
"""


def test_header_gives_shapes_quantization_and_arena(exported, shared, tmp_path):
    """The macros, compiled, equal what the interpreters read from the model; the arena runs it."""
    import numpy as np

    from tinyml.model.interpreters import io_quantization, tflm_run

    (tmp_path / "facts.c").write_text(FACTS)
    exe = tmp_path / "facts"
    host_compile([tmp_path / "facts.c"], exe, includes=[exported], flags=("-std=c99", "-Wall", "-Wextra", "-Werror"))
    shape_line, quant_line = subprocess.run([exe], capture_output=True, text=True, check=True).stdout.splitlines()
    data = (shared / "models/vib_cnn_int8.tflite").read_bytes()
    q = io_quantization(data)
    assert shape_line.split() == [str(v) for v in (2, *q.in_shape, int(np.prod(q.in_shape)), 1, *q.out_shape,
                                                   int(np.prod(q.out_shape)))]
    in_scale, in_zp, out_scale, out_zp, arena = quant_line.split()
    assert np.float32(float(in_scale)) == np.float32(q.in_scale) and int(in_zp) == q.in_zp
    assert np.float32(float(out_scale)) == np.float32(q.out_scale) and int(out_zp) == q.out_zp
    tflm_run(data, np.zeros((1, *q.in_shape), np.int8), arena_size=int(arena))  # the arena is enough


@pytest.mark.parametrize(("given", "expected"), [
    ("model", "model"), ("my model.v2", "my_model_v2"), ("3axis", "model_3axis"), ("int", "int_model"),
    ("__x", "x"), ("é-net", "net"),
])
def test_c_identifier(given, expected):
    assert c_identifier(given) == expected


def test_bad_names_and_files(shared, tmp_path):
    model = shared / "models/vib_cnn_int8.tflite"
    assert_clean_error(run_cli("export", "c-array", model, "--out", tmp_path, "--name", ""), "name is empty")
    assert_clean_error(run_cli("export", "c-array", model, "--out", tmp_path, "--name", "--"), "no letters")
    assert_clean_error(run_cli("export", "c-array", tmp_path / "none.tflite", "--out", tmp_path), "not found")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all, just text")
    assert_clean_error(run_cli("export", "c-array", junk, "--out", tmp_path), "not a tensorflow lite model")
    assert not list(tmp_path.glob("*.c"))
