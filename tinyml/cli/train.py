"""`tinyml train`, `tinyml quantize` and `tinyml predict`: parse, call the library, print."""

from __future__ import annotations

from pathlib import Path

import click

from tinyml.cli.outpath import OUT_DIR, OUT_FILE


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--model", "model_name", default="cnn1d", show_default=True,
              help="cnn1d (raw windows), mlp (features) or autoencoder (features, anomaly).")
@click.option("--out", "out_dir", type=OUT_DIR, required=True, help="Run directory to write.")
@click.option("--epochs", default=40, show_default=True, help="Maximum epochs (early stopping may end sooner).")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--seed", default=0, show_default=True, help="Random seed for a reproducible run.")
@click.option("--features", "features", default=None,
              help="Feature spec for mlp/autoencoder: a preset (vibration, temperature) or a JSON file.")
@click.option("--patience", default=8, show_default=True, help="Early-stopping patience in epochs.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--arithmetic", type=click.Choice(["integer", "float64"]), default="integer", show_default=True,
              help="Preprocessing arithmetic: integer (fixed point, bit-identical on every board) or float64.")
def train(data: Path, model_name: str, out_dir: Path, epochs: int, batch_size: int, seed: int,
          features: str | None, patience: int, quiet: bool, arithmetic: str) -> None:
    """Train a model on DATA (.npz) and write RUN_DIR (model, metrics, plots, preprocessing)."""
    from tinyml.data.dataset import load
    from tinyml.train.fit import TrainOptions
    from tinyml.train.fit import train as train_model
    from tinyml.train.specs import feature_spec_option
    from tinyml.train.zoo import model_kind

    model_kind(model_name)  # reject a bad name before loading anything
    ds = load(data)
    spec = feature_spec_option(features)
    result = train_model(ds, model_name, out_dir, TrainOptions(epochs, batch_size, seed, patience, quiet,
                                                                   arithmetic),
                         spec, dataset_path=data)
    line = f"{model_name}: accuracy {result['accuracy']:.4f}, macro F1 {result['macro_f1']:.4f}"
    if result.get("auc") is not None:
        line += f", AUC {result['auc']:.4f}, threshold {result['threshold']:.4g}"
    click.echo(f"{line} on the {result['evaluated_on']} split ({result['n']} windows) -> {out_dir}")


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset (.npz); defaults to the one the run was trained on.")
@click.option("--tolerance", type=float, default=None,
              help="Allowed int8 loss: points of accuracy (default: 1 point or 2 evaluated windows, whichever "
                   "is larger) or AUC for anomaly models (default 0.01).")
def quantize(run_dir: Path, data: Path | None, tolerance: float | None) -> None:
    """Full-int8 quantization of RUN_DIR/model.keras with a float-vs-int8 report."""
    from tinyml.quantize import quantize_run

    res = quantize_run(run_dir, data, tolerance)
    r = res.report
    m = r["metric"]
    click.echo(f"{m}: float {r['float'][m]:.4f}, int8 LiteRT {r['int8_litert'][m]:.4f}, "
               f"int8 TFLM {r['int8_tflm'][m]:.4f} ({r['tflite_bytes']} bytes) -> {res.tflite_path}")


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", "out_path", type=OUT_FILE, required=True, help="CSV file to write.")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="all", show_default=True)
@click.option("--runtime", type=click.Choice(["litert", "tflm"]), default="litert", show_default=True,
              help="Interpreter for an int8 .tflite MODEL.")
def predict(model: Path, data: Path, out_path: Path, split: str, runtime: str) -> None:
    """Score every window of DATA with MODEL (run dir, model.keras or model_int8.tflite)."""
    from tinyml.train.predict import format_summary, predict_file

    click.echo(format_summary(predict_file(model, data, out_path, split, runtime), out_path))
