"""`tinyml codegen`: an int8 .tflite becomes NAME.h + NAME.c (+ NAME.codegen.json)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tinyml.cli.outpath import OUT_DIR
from tinyml.codegen import kernels
from tinyml.outputs import write_atomic


@click.command("codegen")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=OUT_DIR,
              help="Folder for NAME.h, NAME.c and NAME.codegen.json.")
@click.option("--prefix", default="model", show_default=True, help="C identifier prefix and file name.")
@click.option("--target", default=kernels.PORTABLE, show_default=True,
              type=click.Choice(kernels.targets()), help="Kernel variant set.")
@click.option("--verify", "verify_n", type=click.IntRange(min=0), default=0, show_default=True,
              help="Compile on the host and compare N random inputs with TFLM (and LiteRT).")
@click.option("--preprocess", "run_dir", type=click.Path(file_okay=False, path_type=Path), metavar="RUN",
              help="Also write RUN's preprocessing (raw window -> int8 input) as C: tinyml_run.c/.h "
                   "(+ the feature extractor for feature models). MODEL must be RUN's model_int8.tflite.")
def codegen(model: Path, out_dir: Path, prefix: str, target: str, verify_n: int, run_dir: Path | None) -> None:
    """Generate dependency-free C99 from an int8 .tflite, bit-exact with TFLM."""
    from tinyml.codegen import generate
    from tinyml.codegen.host import write
    from tinyml.errors import InputError

    if verify_n and target != kernels.PORTABLE:
        raise InputError(f"--verify compiles for this computer, and target {target} is for another CPU",
                         hint="verify with --target portable: every target gives the same output bytes")
    from tinyml.rundir import open_model

    pre_model = _preprocess_model(model, run_dir) if run_dir is not None else None
    model = open_model(model).tflite_file()  # a run's model_int8.tflite only while it matches the run
    gen = generate(model, prefix=prefix, target=target, origin=model.name)
    if verify_n:
        import tempfile

        from tinyml.codegen.verify import verify

        with tempfile.TemporaryDirectory(prefix="tinyml-verify-") as work:
            gen.report["verify"] = verify(gen, model.read_bytes(), verify_n, Path(work))
    paths = write(gen, out_dir)
    if pre_model is not None:
        from tinyml.firmware.render import write_preprocess_sources

        paths += write_preprocess_sources(pre_model, out_dir)
    report = out_dir / f"{prefix}.codegen.json"
    write_atomic(report, json.dumps(gen.report, indent=2) + "\n")
    r = gen.report
    click.echo(f"wrote {', '.join(str(p) for p in [*paths, report])}")
    click.echo(f"arena {r['arena_bytes']} B, constants {r['weight_bytes']} B, "
               f"{sum(1 for s in r['steps'] if s['kind'] == 'call')} kernel calls "
               f"({', '.join(r['kernels'])}), target {target}")
    if verify_n:
        v = r["verify"]
        click.echo(f"verify: {v['inputs']} inputs, C vs the reference {v['reference_mismatches']} mismatching bytes "
                   f"(vs TFLM {_count(v['tflm_mismatches'])}, vs LiteRT {_count(v['litert_mismatches'])})")
        from tinyml.codegen.semantics import describe

        for d in v["departures"]:
            click.echo(f"note: {describe(d)}")
        if v["reference_mismatches"]:
            raise verify_failure(v)


def _count(n: int | None) -> str:
    return "cannot run" if n is None else str(n)


def verify_failure(v: dict) -> Exception:
    """The one-line error for a failed --verify: the C differs from the reference semantics."""
    from tinyml.errors import CheckFailed

    op = v.get("c_first_wrong_op")
    where = f", first at op {op['op_index']} {op['op']} ({op['values']} values)" if op else ""
    return CheckFailed(f"generated C differs from the reference semantics in {v['reference_mismatches']} output bytes"
                       f"{where}",
                       hint="this is a code generator bug; report it with the model (docs/codegen.md, "
                            "'Reference semantics')")


def _preprocess_model(model: Path, run_dir: Path):  # noqa: ANN202 - tinyml.rundir.Int8Model
    """RUN's int8 model record, refused when MODEL is not its int8 model (other input scales)."""
    from tinyml.errors import InputError
    from tinyml.rundir import int8_model

    info = int8_model(run_dir)
    if not model.is_file() or model.read_bytes() != info.data:
        raise InputError(f"{model} is not {info.tflite}, so RUN's preprocessing would quantize for another model",
                         f"generate from it: tinyml codegen {info.tflite} --preprocess {run_dir} ...")
    return info
