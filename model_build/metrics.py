"""Classification metrics from scikit-learn: accuracy, macro-F1, per-class precision / recall / F1, confusion."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from app.bundle import DEFAULT_RELATED_THRESHOLD

RELATEDNESS_LABELS = ("unrelated", "related")
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # the relatedness thresholds tried: 0.05 to 0.95


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Metrics for integer class ids; the confusion matrix has true labels as rows. Rounded only when reported."""
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)), 4),
        "per_class": {
            name: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                   "support": int(s)}
            for name, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "labels": list(labels),
        "confusion": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def relatedness_metrics(related: Sequence[bool], probability: Sequence[float],
                        threshold: float = DEFAULT_RELATED_THRESHOLD) -> dict:
    """Metrics of relatedness probabilities against RELATED / UNRELATED gold (classes unrelated, related)."""
    return classification_metrics([int(r) for r in related], [int(p >= threshold) for p in probability],
                                  RELATEDNESS_LABELS)


def best_threshold(related: Sequence[bool], probability: Sequence[float]) -> float:
    """The relatedness threshold of THRESHOLDS with the highest macro-F1 of unrelated and related (the lowest of
    equals)."""
    gold = [int(r) for r in related]
    scores = [f1_score(gold, (np.asarray(probability) >= t).astype(int), labels=[0, 1], average="macro",
                       zero_division=0) for t in THRESHOLDS]
    return THRESHOLDS[int(np.argmax(scores))]
