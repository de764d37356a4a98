"""Rendered SDK projects (ESP-IDF, Pico SDK) against the SDKs' rules, without the SDKs: the
generated model C compiles warning-free under -Werror at every optimisation level for each
core's ISA (the nearest cross compiler installed here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tinyml.codegen import generate

OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Og")
# The compilers installed here nearest to each SDK board's core: the Pico's own (Cortex-M0+),
# rv32imc for the ESP32-C3, and the lx106 (Xtensa) for the ESP32's LX6 and the S3's LX7,
# whose compilers ship with ESP-IDF only.
ISA_FLAGS = {
    "cortex-m0plus": ["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "--specs=picolibc.specs"],
    "rv32imc": ["riscv64-unknown-elf-gcc", "-march=rv32imc", "-misa-spec=2.2", "-mabi=ilp32",
                "--specs=picolibc.specs"],
    "cortex-m4": ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                  "--specs=picolibc.specs"],
    "xtensa": ["xtensa-lx106-elf-gcc", "-mlongcalls", "--specs=/usr/lib/xtensa-lx106-elf/picolibc.specs"],
}
WARNINGS = ["-Wall", "-Wextra", "-Werror"]


def compile_c(isa: str, source: Path, *flags: str) -> None:
    """Compile (not link) one C file for ``isa`` with warnings as errors."""
    cc = ISA_FLAGS[isa]
    if shutil.which(cc[0]) is None:
        pytest.skip(f"{cc[0]} not installed")
    proc = subprocess.run([*cc, *flags, *WARNINGS, "-c", str(source), "-o", "/dev/null"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"{source.name} {' '.join(flags)}:\n{proc.stderr}"


@pytest.mark.parametrize("model", ["vib_cnn", "feat_ae", "toycar_ad"])
@pytest.mark.parametrize(("isa", "target"), [("cortex-m0plus", "portable"), ("rv32imc", "portable"),
                                             ("xtensa", "portable"), ("cortex-m4", "cortex-m4-dsp")])
def test_model_c_is_warning_free_at_every_level(model: str, isa: str, target: str, shared: Path,
                                                tmp_path: Path) -> None:
    """GCC's -O3 once unrolled the dead tail loop of FULLY_CONNECTED (4k output units) from an
    unknown start and warned of overflow (-Waggressive-loop-optimizations)."""
    gen = generate((shared / "models" / f"{model}_int8.tflite").read_bytes(), prefix="model", target=target)
    (tmp_path / "model.h").write_text(gen.header)
    (tmp_path / "model.c").write_text(gen.source)
    for level in OPT_LEVELS:
        compile_c(isa, tmp_path / "model.c", level, "-std=gnu11")
