"""The run directory's pictures: what each one shows is checked on the figure itself."""

from __future__ import annotations

import json
import struct

import numpy as np

from tinyml.train import plots


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_training_figure_has_title_whole_epochs_and_the_restored_epoch():
    history = {"loss": [1.0, 0.7, 0.5, 0.45, 0.44], "val_loss": [1.1, 0.8, 0.6, 0.65, 0.7],
               "accuracy": [0.4, 0.6, 0.7, 0.75, 0.8], "val_accuracy": [0.4, 0.55, 0.7, 0.68, 0.66]}
    fig = plots.training_figure(history, title="cnn1d on v.npz: 5 epochs, best 3", best_epoch=3)
    assert fig._suptitle.get_text() == "cnn1d on v.npz: 5 epochs, best 3"
    for ax in fig.axes:
        fig.canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        marker = next(line for line in ax.get_lines() if line.get_label() == "restored: epoch 3")
        assert list(marker.get_xdata()) == [3]
    loss_marker = next(line for line in fig.axes[0].get_lines() if line.get_label().startswith("restored"))
    assert list(loss_marker.get_ydata()) == [0.6]  # on the validation curve


def test_confusion_figure_shows_row_percentages_and_both_models():
    cm_float, cm_int8 = [[5, 1], [2, 8]], [[4, 2], [2, 8]]
    fig = plots.confusion_figure([("float", cm_float), ("int8 (TFLM)", cm_int8)], ["normal", "anomaly"], "t")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["float", "int8 (TFLM)"]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["5\n83%", "1\n17%", "2\n20%", "8\n80%"]
    assert [t.get_text() for t in fig.axes[1].texts][0] == "4\n67%"


def test_score_figure_has_a_histogram_per_class_and_the_threshold():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0.5, 1.5, 20), rng.uniform(3, 30, 10), rng.uniform(5, 50, 10)])
    labels = ["normal"] * 20 + ["step"] * 10 + ["runaway"] * 10
    fig = plots.score_figure(scores, labels, ["normal", "step", "runaway", "stuck"], 2.5, "scores")
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["normal (20)", "step (10)", "runaway (10)", "threshold 2.5"]  # no empty class
    threshold = next(line for line in ax.get_lines() if line.get_label() == "threshold 2.5")
    assert list(threshold.get_xdata()) == [2.5, 2.5]


def test_a_trained_and_quantized_run_has_its_pictures(trained_run):
    info = json.loads((trained_run.run_dir / "model.json").read_text())
    assert 1 <= info["best_epoch"] <= info["epochs_run"]
    width, height = _png_size(trained_run.run_dir / "confusion.png")
    assert width > 1.6 * height  # float and int8 side by side after quantize
    assert (trained_run.run_dir / "training.png").stat().st_size > 10_000
