"""Linear probing before fine-tuning (LP-FT, Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and
Underperform Out-of-Distribution"): each head is first fitted as a logistic regression on the base's frozen pooled
features, so that fine-tuning starts from heads that already fit them rather than from random ones, whose first
gradients reach and distort the pretrained features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import BuildError

PROBE_FILE = "probe.json"  # in the run directory: the probe's figures


@dataclass(frozen=True)
class LinearProbe:
    """The heads fitted first by scikit-learn's logistic regression, L2 penalty of inverse strength ``c``."""

    c: float = 1.0

    def __post_init__(self) -> None:
        if not self.c > 0:
            raise BuildError(f"the probe's inverse regularisation strength must be positive, got {self.c}")


def fit_heads(model, features: tuple[np.ndarray, np.ndarray], rows: list[dict], polarity_weights: np.ndarray,
              probe: LinearProbe) -> dict:
    """Set each head of ``model`` (a ReputationModel) to the logistic regression of its labels on what it reads
    (``features``: the label heads' and the relatedness head's, as ``pooled_features`` gives them), for ``rows``'
    training targets as the Trainer gets them (rows without a head's label left out, each weighted as the head's
    gold-label loss weights it: polarity by class and row weight, the others by row weight); the accuracy of each
    on the rows it was fitted to."""
    import torch
    from sklearn.linear_model import LogisticRegression

    weight = np.array([r["weight"] for r in rows], dtype=np.float64)
    polarity = np.array([r["labels"] for r in rows])
    related = np.array([r["related"] for r in rows], dtype=np.float64)
    sentiment = np.array([r["sentiment"] for r in rows])
    polarity_head, related_head, sentiment_head = model.heads()
    fitted = {}
    label_features, related_features = features
    for name, head, read, labels, known, sample_weight in (
            ("polarity", polarity_head, label_features, polarity, polarity >= 0,
             polarity_weights[polarity.clip(0)] * weight),
            ("related", related_head, related_features, related, ~np.isnan(related), weight),
            ("sentiment", sentiment_head, label_features, sentiment, sentiment >= 0, weight)):
        if head is None or not known.any():
            continue
        y = labels[known].astype(int)
        classes = max(head.out_features, 2)  # one logit: a binary head
        if len(np.unique(y)) < classes:
            raise BuildError(f"--probe-first: the {name} head's training tweets lack one of its {classes} labels")
        fit = LogisticRegression(C=probe.c, max_iter=2000).fit(read[known], y, sample_weight=sample_weight[known])
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(fit.coef_).to(head.weight))
            head.bias.copy_(torch.from_numpy(fit.intercept_).to(head.bias))
        fitted[name] = round(float(fit.score(read[known], y)), 4)
    return fitted
