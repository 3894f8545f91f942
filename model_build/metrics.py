"""Classification metrics: accuracy, macro-F1, per-class precision / recall / F1, confusion matrix."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Metrics for integer class ids; the confusion matrix has true labels as rows."""
    k = len(labels)
    true, pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (true, pred), 1)
    per_class = {}
    for i, name in enumerate(labels):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(confusion[i].sum()),
        }
    n = int(confusion.sum())
    return {
        "n": n,
        "accuracy": round(float(np.trace(confusion) / n), 4) if n else 0.0,
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class.values()])), 4),
        "per_class": per_class,
        "labels": list(labels),
        "confusion": confusion.tolist(),
    }
