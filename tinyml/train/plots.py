"""Training curves, confusion matrices and anomaly score histograms as PNG files for people."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from tinyml.outputs import write_atomic


def _figure_bytes(fig) -> bytes:  # noqa: ANN001 - a matplotlib Figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history: dict[str, list[float]], path: Path, *, title: str = "",
                    best_epoch: int | None = None) -> Path:
    return write_atomic(path, _figure_bytes(training_figure(history, title=title, best_epoch=best_epoch)))


def training_figure(history: dict[str, list[float]], *, title: str = "", best_epoch: int | None = None) -> Any:
    """Loss (and accuracy when present) per epoch, training and validation, on whole-epoch ticks;
    ``best_epoch`` (1-based) marks the epoch whose weights early stopping restored."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    panels = [m for m in ("loss", "accuracy") if m in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.7), squeeze=False,
                             layout="constrained")
    for ax, metric in zip(axes[0], panels, strict=True):
        epochs = np.arange(1, len(history[metric]) + 1)
        ax.plot(epochs, history[metric], label="train")
        val = history.get(f"val_{metric}")
        if val is not None:
            ax.plot(epochs, val, label="validation")
        if best_epoch is not None and 1 <= best_epoch <= len(epochs):
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
            marked = val if val is not None else history[metric]
            ax.plot([best_epoch], [marked[best_epoch - 1]], "o", color="black",
                    label=f"restored: epoch {best_epoch}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def confusion(panels: list[tuple[str, list[list[int]]]], labels: list[str], path: Path, title: str) -> Path:
    return write_atomic(path, _figure_bytes(confusion_figure(panels, labels, title)))


def confusion_figure(panels: list[tuple[str, list[list[int]]]], labels: list[str], title: str) -> Any:
    """Confusion matrices side by side (e.g. float and int8), each cell its count and the share
    of its true class (row percent), so small classes read as clearly as big ones."""
    plt = _pyplot()
    size = 1.2 + 0.9 * len(labels)
    fig, axes = plt.subplots(1, len(panels), figsize=((size + 1.3) * len(panels), size + 0.6),
                             squeeze=False, layout="constrained")
    for ax, (name, cm) in zip(axes[0], panels, strict=True):
        arr = np.asarray(cm, dtype=np.int64)
        rows = arr.sum(axis=1, keepdims=True)
        share = np.divide(arr, rows, out=np.zeros(arr.shape), where=rows > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name)
        for (i, j), v in np.ndenumerate(arr):
            ax.text(j, i, f"{v}\n{100 * share[i, j]:.0f}%", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    fig.suptitle(title)
    return fig


def score_histogram(scores: np.ndarray, labels: list[str], classes: list[str], threshold: float, path: Path,
                    title: str) -> Path:
    return write_atomic(path, _figure_bytes(score_figure(scores, labels, classes, threshold, title)))


def score_figure(scores: np.ndarray, labels: list[str], classes: list[str], threshold: float, title: str) -> Any:
    """Anomaly scores, one histogram per class on shared bins, and the decision threshold:
    how far each class sits from it shows what the threshold trades."""
    plt = _pyplot()
    scores = np.asarray(scores, dtype=np.float64)
    positive = scores[scores > 0]
    low = positive.min() if positive.size else 1e-6
    high = max(scores.max() if scores.size else 1.0, threshold) * 1.05
    bins = np.geomspace(min(low, threshold) * 0.95, high, 40)
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
    for name in classes:
        mine = scores[np.asarray(labels) == name]
        if mine.size:
            ax.hist(np.clip(mine, bins[0], None), bins=bins, histtype="step", linewidth=1.5,
                    label=f"{name} ({mine.size})")
    ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_xscale("log")
    ax.set_xlabel("anomaly score (reconstruction error)")
    ax.set_ylabel("windows")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
