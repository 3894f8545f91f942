"""Classification metrics from scikit-learn: accuracy, macro-F1, per-class precision / recall / F1, confusion."""

from __future__ import annotations

from typing import Sequence

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

RELATEDNESS_LABELS = ("unrelated", "related")


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


def relatedness_metrics(related: Sequence[bool], probability: Sequence[float], threshold: float = 0.5) -> dict:
    """Metrics of relatedness probabilities against RELATED / UNRELATED gold (classes unrelated, related)."""
    return classification_metrics([int(r) for r in related], [int(p >= threshold) for p in probability],
                                  RELATEDNESS_LABELS)
