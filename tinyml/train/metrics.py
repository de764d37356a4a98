"""Classification and anomaly metrics in plain numpy, so every stage scores models the same way."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro F1, per-class precision/recall/F1 and the confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    actual = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = actual > 0  # macro F1 over the classes that occur in this split
    return {
        "n": int(cm.sum()),
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(actual[i])}
                      for i, name in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
    }


def roc_auc(scores: np.ndarray, is_anomaly: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank-sum statistic (ties count half); None if one side is empty."""
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(is_anomaly, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def score_histogram(scores: np.ndarray, labels: np.ndarray, classes: list[str], threshold: float,
                    bins: int = 30) -> dict:
    """Anomaly scores counted per class over shared bins from 0 to past the threshold and most
    scores (the last bin holds everything above), so a report can draw them without the data."""
    scores = np.asarray(scores, np.float64)
    top = max(float(np.percentile(scores, 98)) if scores.size else 0.0, 2.0 * threshold, 1e-9)
    edges = np.linspace(0.0, top, bins + 1)
    clipped = np.clip(scores, 0.0, top)
    counts = {name: np.histogram(clipped[np.asarray(labels) == i], edges)[0].tolist()
              for i, name in enumerate(classes) if (np.asarray(labels) == i).any()}
    return {"edges": [round(float(e), 6) for e in edges], "counts": counts}


def pick_threshold(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> float:
    """The score threshold for 'anomaly': best balanced accuracy on validation data when it has
    anomalies, otherwise just above the 99th percentile of normal scores."""
    normal_scores = np.asarray(normal_scores, dtype=np.float64)
    anomaly_scores = np.asarray(anomaly_scores, dtype=np.float64)
    if anomaly_scores.size == 0:
        return float(np.percentile(normal_scores, 99) * 1.05)
    candidates = np.unique(np.concatenate([normal_scores, anomaly_scores]))
    tnr = np.searchsorted(np.sort(normal_scores), candidates, side="right") / normal_scores.size
    tpr = 1.0 - np.searchsorted(np.sort(anomaly_scores), candidates, side="right") / anomaly_scores.size
    best = int(np.argmax(tnr + tpr))
    # midway to the next candidate so the threshold is not sitting on a sample
    nxt = candidates[best + 1] if best + 1 < candidates.size else candidates[best] * 1.05 + 1e-9
    return float((candidates[best] + nxt) / 2.0)


def reconstruction_error(inputs: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """The autoencoder's anomaly score: mean squared error per window, in standardised units."""
    diff = np.asarray(inputs, np.float64) - np.asarray(reconstructions, np.float64)
    return (diff.reshape(diff.shape[0], -1) ** 2).mean(axis=1)
