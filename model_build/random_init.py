"""Randomly initialised encoders saved in Hugging Face layout, loaded later through the same path
as pretrained ones: MobileBERT where its weights cannot be downloaded, tiny models for tests."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from app.text import TextSettings, TweetEncoder

from .base import Architecture
from .data import LABELS
from .errors import readable
from .fsutil import atomic_dir, write_json

RANDOM_FILE = "random_init.json"  # what init-random drew (architecture, size, seed), beside the weights


class Size(str, Enum):
    """The published architecture's size, or a tiny one for tests."""

    TINY = "tiny"
    FULL = "full"


def _config(arch: Architecture, size: Size, vocab_size: int):
    from transformers import BertConfig, MobileBertConfig

    if arch is Architecture.MOBILEBERT and size is Size.FULL:
        return MobileBertConfig(vocab_size=vocab_size)  # google/mobilebert-uncased's architecture
    if arch is Architecture.MOBILEBERT:
        return MobileBertConfig(
            vocab_size=vocab_size, hidden_size=64, embedding_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, intra_bottleneck_size=32, true_hidden_size=32, num_feedforward_networks=2,
            max_position_embeddings=128,
        )
    if size is Size.FULL:
        return BertConfig(vocab_size=vocab_size)
    return BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128,
    )


def save_random_model(arch: Architecture, size: Size, vocab_file: Path, out_dir: Path, seed: int = 0) -> Path:
    """Write a random-weight sequence classifier, its config and tokenizer files and RANDOM_FILE into ``out_dir``
    (whole or not at all)."""
    import torch
    from transformers import AutoModelForSequenceClassification, BertTokenizerFast

    with readable(f"vocabulary {vocab_file}"):  # a WordPiece vocabulary with BERT's special tokens, as training needs
        TweetEncoder(vocab_file, TextSettings(), pair=True)
        tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    config = _config(arch, size, tokenizer.vocab_size)
    config.num_labels = len(LABELS)
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {name: i for i, name in enumerate(LABELS)}
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    with atomic_dir(Path(out_dir), RANDOM_FILE) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / RANDOM_FILE, {"arch": arch.value, "size": size.value, "seed": seed})
    return Path(out_dir)
