"""Randomly initialised encoders saved in Hugging Face layout, loaded later through the same path
as pretrained ones: MobileBERT where its weights cannot be downloaded, tiny models for tests."""

from __future__ import annotations

from pathlib import Path

from .data import LABELS

ARCHITECTURES = ("bert", "mobilebert")
SIZES = ("tiny", "full")


def _config(arch: str, size: str, vocab_size: int):
    from transformers import BertConfig, MobileBertConfig

    if arch == "mobilebert" and size == "full":
        return MobileBertConfig(vocab_size=vocab_size)  # google/mobilebert-uncased's architecture
    if arch == "mobilebert":
        return MobileBertConfig(
            vocab_size=vocab_size, hidden_size=64, embedding_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, intra_bottleneck_size=32, true_hidden_size=32, num_feedforward_networks=2,
            max_position_embeddings=128,
        )
    if size == "full":
        return BertConfig(vocab_size=vocab_size)
    return BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128,
    )


def save_random_model(arch: str, size: str, vocab_file: Path, out_dir: Path, seed: int = 0) -> Path:
    """Write a random-weight sequence classifier, its config and tokenizer files into ``out_dir``."""
    import torch
    from transformers import AutoModelForSequenceClassification, BertTokenizerFast

    if arch not in ARCHITECTURES or size not in SIZES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES} and size one of {SIZES}")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    config = _config(arch, size, tokenizer.vocab_size)
    config.num_labels = len(LABELS)
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {name: i for i, name in enumerate(LABELS)}
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
