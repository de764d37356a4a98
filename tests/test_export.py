"""`tinyml export c-array`: valid, warning-free C whose array holds the exact model bytes."""

from __future__ import annotations

import subprocess

import pytest

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


def test_cross_compiles_without_warnings(exported, tmp_path):
    proc = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-std=c99", "-Wall", "-Wextra",
                           "-Werror", "-pedantic", "-c", exported / "vib_cnn_1.c", "-o", tmp_path / "m.o"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_bytes_round_trip_and_alignment(exported, shared, tmp_path):
    (tmp_path / "main.c").write_text(HARNESS.format(name="vib_cnn_1"))
    exe = tmp_path / "dump"
    build = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", exported, tmp_path / "main.c",
                            exported / "vib_cnn_1.c", "-o", exe], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([exe], capture_output=True)
    assert run.returncode == 0, "array is not 16-byte aligned"
    assert run.stdout == (shared / "models/vib_cnn_int8.tflite").read_bytes()


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
