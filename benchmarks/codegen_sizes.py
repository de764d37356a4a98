"""Print the code generator's planned arena, constant bytes and object sizes for the reference
models, next to TFLM's smallest working arena (from ../shared/models/README.md (beside the checkout)).

Usage: .venv/bin/python benchmarks/codegen_sizes.py [MODELS_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from tinyml.codegen import figures
from tinyml.paths import shared_dir

TFLM_MIN_ARENA = {"vib_cnn_int8": 4736, "feat_ae_int8": 2308, "toycar_ad_int8": 2700}


def main() -> None:
    models = Path(sys.argv[1]) if len(sys.argv) > 1 else shared_dir() / "models"
    print("| model | arena B (TFLM min) | constants B | Cortex-M4 text/data/bss | rv32imc text | lx106 text |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, tflm in TFLM_MIN_ARENA.items():
        fig = figures((models / f"{name}.tflite").read_bytes())
        m4, rv, xt = (fig["code_size"][a] for a in ("cortex-m4", "rv32imc", "xtensa-lx106"))
        print(f"| {name} | {fig['arena_bytes']:,} ({tflm:,}) | {fig['weight_bytes']:,} | "
              f"{m4.get('text', '-')}/{m4.get('data', '-')}/{m4.get('bss', '-')} | "
              f"{rv.get('text', '-')} | {xt.get('text', '-')} |")


if __name__ == "__main__":
    main()
