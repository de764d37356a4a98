"""Training curves and the confusion matrix as PNG files for people to look at."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tinyml.files import write_bytes


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


def training_curves(history: dict[str, list[float]], path: Path) -> Path:
    """Loss (and accuracy when present) per epoch, training and validation."""
    plt = _pyplot()
    panels = [m for m in ("loss", "accuracy") if m in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], panels, strict=True):
        epochs = np.arange(1, len(history[metric]) + 1)
        ax.plot(epochs, history[metric], label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    return write_bytes(path, _figure_bytes(fig))


def confusion(cm: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    """A confusion matrix with counts in each cell."""
    plt = _pyplot()
    arr = np.asarray(cm)
    size = 1.2 + 0.9 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ax.imshow(arr, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = arr.max() if arr.size else 0
    for (i, j), v in np.ndenumerate(arr):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > peak / 2 else "black")
    return write_bytes(path, _figure_bytes(fig))
