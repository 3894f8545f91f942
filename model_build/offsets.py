"""The negative-logit offset a bundle carries: a constant added to the negative polarity logit before the argmax,
chosen for the highest macro-F1 on a run's validation split (the class weights make a model over-call negative)."""

from __future__ import annotations

from enum import Enum
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import f1_score

from .checkpoint import Checkpoint
from .data import LABELS, Example, with_polarity
from .errors import BuildError
from .scoring import predict_tweets, validation_metrics
from .splits import Part, held_out_parts

GRID = tuple(round(-1.5 + 0.1 * i, 1) for i in range(21))  # the offsets tried: -1.5 to 0.5, step 0.1
LIMIT = 10.0  # an offset given by hand is at most this far from 0


class OffsetSource(str, Enum):
    """Where a bundle's negative offset came from, as its manifest's figures say."""

    GIVEN = "given"
    CHOSEN = "the highest macro-F1 on the validation split"


def parse_offset(value: str) -> float | OffsetSource:
    """``chosen`` (OffsetSource.CHOSEN: choose it on validation) or an offset, a number within +-LIMIT."""
    if value == "chosen":
        return OffsetSource.CHOSEN
    try:
        offset = float(value)
    except ValueError:
        offset = float("nan")
    if not -LIMIT <= offset <= LIMIT:  # nan too
        raise BuildError(f"negative offset {value!r}: give 'chosen' or a number from {-LIMIT:g} to {LIMIT:g}")
    return offset


def offset_logits(logits: np.ndarray, offsets: Mapping[str, float]) -> np.ndarray:
    """Polarity logits (columns in LABELS order) with ``offsets`` added to their labels' columns."""
    return logits + np.array([offsets.get(label, 0.0) for label in LABELS], dtype=logits.dtype)


def negative_offset_figures(tweets: Sequence[Example], logits: np.ndarray, related: np.ndarray | None,
                            offset: float) -> dict:
    """The figures of polarity logits with ``offset`` added to the negative one (relatedness from ``related``)."""
    return validation_metrics(tweets, offset_logits(logits, {"negative": offset}), related)


def best_negative_offset(examples: Sequence[Example], logits: np.ndarray) -> float:
    """The offset of GRID with the highest polarity macro-F1 on the examples with a polarity label (of equals, the
    nearest 0)."""
    rows = [i for i, e in enumerate(examples) if e.label is not None]
    gold = [LABELS.index(examples[i].label) for i in rows]
    ids = list(range(len(LABELS)))
    scores = {offset: f1_score(gold, offset_logits(logits[rows], {"negative": offset}).argmax(1), labels=ids,
                               average="macro", zero_division=0) for offset in GRID}
    return max(sorted(GRID, key=abs), key=scores.get)


def negative_offset(checkpoint: Checkpoint, choice: float | OffsetSource,
                    data_source: str | None = None) -> tuple[float, dict]:
    """The offset (a number given, or OffsetSource.CHOSEN on the checkpoint's validation split) and the checkpoint's
    float figures with it on its validation split and time gap (``validation``, ``gap``, where it has them), the
    same figures without it in short beside them (``without``)."""
    given = None if choice is OffsetSource.CHOSEN else float(choice)
    _, gap_set, val_set = checkpoint.parts(data_source)
    if given is None and not with_polarity(val_set):
        raise BuildError(f"checkpoint {checkpoint.path} has no validation split to choose the negative offset on "
                         "(give --holdout-run, or a number)")
    model, encoder = checkpoint.model(), checkpoint.encoder()
    scored = {part: (tweets, *predict_tweets(model, encoder, tweets))
              for part, tweets in held_out_parts(gap_set, val_set) if with_polarity(tweets)}
    offset = best_negative_offset(*scored[Part.VALIDATION][:2]) if given is None else given
    source = OffsetSource.CHOSEN if given is None else OffsetSource.GIVEN
    figures: dict = {"offset": offset, "chosen": source.value, "without": {}}
    if given is None:
        figures["grid"] = f"{GRID[0]} to {GRID[-1]}, step 0.1"
    for part, (tweets, logits, related) in scored.items():
        figures[part] = negative_offset_figures(tweets, logits, related, offset)
        figures["without"][part] = in_short(validation_metrics(tweets, logits, related))
    return offset, figures


def in_short(metrics: dict) -> dict:
    """Polarity accuracy, macro-F1 and negative F1 of a set of metrics."""
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "negative_f1": metrics["per_class"]["negative"]["f1"]}
