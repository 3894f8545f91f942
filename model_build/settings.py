"""The closed sets that training settings choose from."""

from __future__ import annotations

from enum import Enum

from .errors import BuildError


class ClassWeighting(str, Enum):
    """Polarity loss weights from the training label counts."""

    NONE = "none"
    SQRT = "sqrt"  # 1 / sqrt(count)
    BALANCED = "balanced"  # 1 / count


class StanceHead(str, Enum):
    """Which head the stance tweets train: polarity (their stance as polarity towards the target), or the sentiment
    task's, unserved (the same labels there, so that they shape the encoder and leave the polarity head alone)."""

    POLARITY = "polarity"
    SENTIMENT = "sentiment"


POOLING_CONFIG_KEY = "reputation_pooling"  # where a fine-tuned model's config.json records its Pooling


class Pooling(str, Enum):
    """What the heads read from the encoder: the [CLS] token through BERT's pooler (its tanh layer), the mean of
    every attended token's last hidden state (the pooling sentence-embedding bases such as all-MiniLM-L6-v2 were
    trained with), or the mean for the label heads (polarity, sentiment) and [CLS] for the relatedness head
    (mean-cls). Absent from a config (models fine-tuned before the choice existed): cls."""

    CLS = "cls"
    MEAN = "mean"
    MEAN_CLS = "mean-cls"

    @property
    def labels_read_mean(self) -> bool:
        """Whether the polarity and sentiment heads read the tokens' mean (else [CLS])."""
        return self is not Pooling.CLS

    @property
    def related_reads_mean(self) -> bool:
        """Whether the relatedness head reads the tokens' mean (else [CLS])."""
        return self is Pooling.MEAN

    @property
    def heads_read_alike(self) -> bool:
        """Whether every head reads the same pooled output."""
        return self.labels_read_mean == self.related_reads_mean

    @classmethod
    def of(cls, config) -> Pooling:
        """The pooling a transformers config records (PyTorch and TensorFlow read the same config.json)."""
        value = getattr(config, POOLING_CONFIG_KEY, cls.CLS.value)
        try:
            return cls(value)
        except ValueError:
            raise BuildError(f"config.json: {POOLING_CONFIG_KEY} {value!r} is not one of "
                             f"{', '.join(p.value for p in cls)}") from None


class Device(str, Enum):
    """Where a run trains: a GPU when PyTorch sees one (auto), the CPU, or a CUDA GPU that must be there."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"

    def check(self) -> None:
        """Refuse CUDA where PyTorch sees no CUDA GPU, before a run starts rather than hours into one on the CPU."""
        import torch

        if self is Device.CUDA and not torch.cuda.is_available():
            raise BuildError("--device cuda: PyTorch sees no CUDA GPU here (auto uses one when there is one)")
