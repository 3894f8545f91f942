"""The cheap baseline every figure is read against: TF-IDF + logistic regression (scikit-learn)."""

from __future__ import annotations

import re
from typing import Sequence

from app.text import TextSettings, preprocess

from .data import LABELS, Example
from .metrics import classification_metrics

_SETTINGS = TextSettings()


def _document(ex: Example) -> str:
    entity = re.sub(r"\W+", "_", ex.entity or "none").lower()
    return f"{preprocess(ex.text, _SETTINGS).lower()} entity_{entity}"


def tfidf_baseline(train_set: Sequence[Example], val_set: Sequence[Example]) -> dict:
    """Fit on the training split (with the entity as a token), score on validation."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced"),
    )
    model.fit([_document(e) for e in train_set], [LABELS.index(e.label) for e in train_set])
    predicted = model.predict([_document(e) for e in val_set])
    return classification_metrics([LABELS.index(e.label) for e in val_set], predicted, LABELS)
