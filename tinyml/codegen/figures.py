"""Figures for `tinyml inspect`: planned arena, weight bytes and code size per MCU target.

Code size comes from compiling the generated C with each cross compiler at -Os and
reading ``size`` of the object; a compiler that is not installed is reported as such.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

# name -> (compile command without -c/-o, size tool)
CROSS: dict[str, tuple[list[str], str]] = {
    "cortex-m4": (["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb"], "arm-none-eabi-size"),
    "rv32imc": (["riscv64-unknown-elf-gcc", "-march=rv32imc", "-misa-spec=2.2", "-mabi=ilp32",
                 "--specs=picolibc.specs"], "riscv64-unknown-elf-size"),
    "xtensa-lx106": (["xtensa-lx106-elf-gcc", "-mlongcalls"], "xtensa-lx106-elf-size"),
}
C_FLAGS = ["-std=c99", "-Os", "-Wall", "-Wextra", "-pedantic"]


def object_size(c_file: Path, arch: str, timeout: float = 120) -> dict[str, Any]:
    """text/data/bss of one C file compiled for ``arch``, or why it could not be measured."""
    cmd, size_tool = CROSS[arch]
    if shutil.which(cmd[0]) is None or shutil.which(size_tool) is None:
        return {"status": "not installed", "compiler": cmd[0]}
    obj = c_file.with_suffix(f".{arch}.o")
    proc = subprocess.run([*cmd, *C_FLAGS, "-c", str(c_file), "-o", str(obj)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"status": "compile failed", "compiler": cmd[0], "stderr": proc.stderr[-2000:]}
    size = subprocess.run([size_tool, str(obj)], capture_output=True, text=True, timeout=timeout)
    text, data, bss = (int(v) for v in size.stdout.splitlines()[1].split()[:3])
    return {"status": "ok", "compiler": cmd[0], "text": text, "data": data, "bss": bss,
            "warnings": proc.stderr.count("warning:")}


def figures(tflite_bytes: bytes, target: str = "portable") -> dict[str, Any]:
    """Planned arena, weights and per-arch code size of the generated C for a model."""
    from tinyml.codegen.emit import generate

    gen = generate(tflite_bytes, prefix="model", target=target)
    with tempfile.TemporaryDirectory(prefix="tinyml-figures-") as tmp:
        d = Path(tmp)
        (d / "model.h").write_text(gen.header)
        (d / "model.c").write_text(gen.source)
        sizes = {arch: object_size(d / "model.c", arch) for arch in CROSS}
    return {"target": target, "arena_bytes": gen.arena_bytes, "weight_bytes": gen.report["weight_bytes"],
            "kernels": gen.report["kernels"], "code_size": sizes}
