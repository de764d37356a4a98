"""Build the generated C into a host program and run many inputs through it at once.

Used to check the C against the TFLM interpreter: one process reads N int8 inputs from
stdin and writes N outputs to stdout, so thousands of inferences cost one exec.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from tinyml.codegen.emit import Generated
from tinyml.errors import ToolError
from tinyml.outputs import write_atomic

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]


def write(gen: Generated, out_dir: Path) -> list[Path]:
    """Write NAME.h and NAME.c into out_dir."""
    h, c = out_dir / f"{gen.prefix}.h", out_dir / f"{gen.prefix}.c"
    return [write_atomic(h, gen.header), write_atomic(c, gen.source)]


# for C generated with trace=True: every tensor a kernel wrote, as int32 op, tensor, n, then n bytes, on stderr
_TRACE = """void tml_trace(int op, int tensor, const int8_t *data, int32_t n);
void tml_trace(int op, int tensor, const int8_t *data, int32_t n)
{
    int32_t head[3];
    head[0] = op;
    head[1] = tensor;
    head[2] = n;
    fwrite(head, sizeof head, 1, stderr);
    fwrite(data, 1, (size_t)n, stderr);
}
"""


def _harness(prefix: str, trace: bool = False) -> str:
    return f"""#include <stdio.h>
#include "{prefix}.h"
{_TRACE if trace else ""}int main(void)
{{
    static int8_t in[{prefix}_input_size];
    static int8_t out[{prefix}_output_size];
    while (fread(in, 1, sizeof in, stdin) == sizeof in) {{
        if ({prefix}_invoke(in, out) != 0) {{
            return 2;
        }}
        if (fwrite(out, 1, sizeof out, stdout) != sizeof out) {{
            return 3;
        }}
    }}
    return 0;
}}
"""


def build(gen: Generated, work: Path, sanitize: bool = False, cc: str = "gcc") -> Path:
    """Compile the generated C plus a stdin/stdout harness with strict warnings."""
    if shutil.which(cc) is None:
        raise ToolError(f"host compiler {cc!r} not found", hint="install gcc (apt-get install gcc)")
    write(gen, work)
    (work / "harness.c").write_text(_harness(gen.prefix, bool(gen.report.get("trace"))))
    exe = work / ("harness_asan" if sanitize else "harness")
    cmd = [cc, *STRICT, *(SANITIZE if sanitize else []), "-o", str(exe),
           str(work / "harness.c"), str(work / f"{gen.prefix}.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise ToolError(f"generated C does not compile: {proc.stderr.strip()[:2000]}",
                        hint="this is a code generator bug; report it with the model")
    return exe


def run(exe: Path, inputs: np.ndarray, output_size: int, timeout: float = 300) -> np.ndarray:
    """Outputs for a batch of int8 inputs (shape [N, input_size])."""
    batch = np.ascontiguousarray(inputs, dtype=np.int8)
    proc = subprocess.run([str(exe)], input=batch.tobytes(), capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise ToolError(f"generated C failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[:2000]}",
                        hint="this is a code generator bug; report it with the model")
    return np.frombuffer(proc.stdout, dtype=np.int8).reshape(len(batch), output_size)


def run_trace(exe: Path, row: np.ndarray, timeout: float = 60) -> list[tuple[int, int, np.ndarray]]:
    """(op index, tensor index, bytes) for every tensor a traced build wrote on one input, in order."""
    proc = subprocess.run([str(exe)], input=np.ascontiguousarray(row, np.int8).tobytes(), capture_output=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise ToolError(f"generated C failed (exit {proc.returncode})", hint="this is a code generator bug")
    records, raw, at = [], proc.stderr, 0
    while at + 12 <= len(raw):
        op, tensor, n = np.frombuffer(raw, np.int32, 3, at)
        records.append((int(op), int(tensor), np.frombuffer(raw, np.int8, int(n), at + 12).copy()))
        at += 12 + int(n)
    return records
