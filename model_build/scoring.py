"""Encoding tweets with the served text pipeline and scoring them with a PyTorch model (``ReputationModel``): what
training, packaging, reports and the recipes' commands all predict and measure with."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from app.text import InputFormat, TextSettings, TweetEncoder

from .data import LABELS, Example
from .errors import readable
from .metrics import classification_metrics, relatedness_metrics
from .settings import Pooling


def text_encoder(vocab: Path, settings: TextSettings, input_format: InputFormat) -> TweetEncoder:
    """The text pipeline training uses: the one the edge serves (app.text), with the base model's vocabulary."""
    with readable(f"vocabulary {vocab}"):
        return TweetEncoder(vocab, settings, input_format.pair)


def encode_examples(encoder: TweetEncoder, examples: Sequence[Example]):
    return encoder.encode([e.text for e in examples], [e.entity for e in examples] if encoder.pair else None)


def _tensors(encoder: TweetEncoder, encodings, rows: Sequence[int], device):
    import torch

    batch = [encodings[i] for i in rows]
    arrays = encoder.pad(batch, max(len(e.ids) for e in batch))
    return {k: torch.from_numpy(v.astype(np.int64)).to(device) for k, v in arrays.items()}


def _batches(model, encoder: TweetEncoder, encodings, batch_size: int):
    """The encoded tweets' row numbers and input tensors, a batch of similar lengths at a time (the model in eval
    mode: no dropout)."""
    device = next(model.parameters()).device
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    model.eval()
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        yield rows, _tensors(encoder, encodings, rows, device)


def predict(model, encoder: TweetEncoder, encodings, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray | None]:
    """Polarity logits and relatedness probabilities (None without that head) for encoded tweets, in order."""
    import torch

    logits = np.zeros((len(encodings), model.config.num_labels), dtype=np.float32)
    related = np.zeros(len(encodings), dtype=np.float32) if model.related_head is not None else None
    with torch.inference_mode():
        for rows, inputs in _batches(model, encoder, encodings, batch_size):
            polarity, relatedness = model(**inputs)
            logits[rows] = polarity.float().cpu().numpy()
            if related is not None:
                related[rows] = torch.sigmoid(relatedness.float()).squeeze(-1).cpu().numpy()
    return logits, related


def predict_tweets(model, encoder: TweetEncoder, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`predict` of ``examples``, encoded by ``encoder``."""
    return predict(model, encoder, encode_examples(encoder, examples))


def pooled_features(model, encoder: TweetEncoder, encodings, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """What the label heads and the relatedness head read for each encoded tweet, in order: ``[tweets, hidden]``
    float32 each, one array twice where they read the same."""
    import torch

    labels = np.zeros((len(encodings), model.config.hidden_size), dtype=np.float32)
    related = labels if Pooling.of(model.config).heads_read_alike else np.zeros_like(labels)
    with torch.inference_mode():
        for rows, inputs in _batches(model, encoder, encodings, batch_size):
            read_by_labels, read_by_related = model.pooled(**inputs)
            labels[rows] = read_by_labels.float().cpu().numpy()
            if related is not labels:
                related[rows] = read_by_related.float().cpu().numpy()
    return labels, related


def validation_metrics(examples: Sequence[Example], logits: np.ndarray, related: np.ndarray | None) -> dict:
    """Polarity metrics on the examples that have a polarity label, and relatedness metrics where known."""
    rows = [i for i, e in enumerate(examples) if e.label is not None]
    metrics = classification_metrics([LABELS.index(examples[i].label) for i in rows], logits[rows].argmax(1), LABELS)
    known = [i for i, e in enumerate(examples) if e.related is not None]
    if related is not None and known:
        metrics["relatedness"] = relatedness_metrics([examples[i].related for i in known], related[known])
    return metrics
