"""The PyTorch model: a BERT-family sequence classifier for polarity, with an optional relatedness head
reading the same pooled output (one encoder pass, two outputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

RELATED_HEAD_FILE = "related_head.safetensors"


class ReputationModel(torch.nn.Module):
    """Polarity logits ``[batch, labels]`` and, with a relatedness head, relatedness logits ``[batch, 1]``."""

    def __init__(self, classifier, related: bool):
        super().__init__()
        self.classifier = classifier
        self.related_head = torch.nn.Linear(classifier.config.hidden_size, 1) if related else None

    @property
    def config(self):
        return self.classifier.config

    @classmethod
    def from_base(cls, base: str, labels: Sequence[str], related: bool) -> ReputationModel:
        """A new model on a pretrained encoder (hub name or path), heads initialised by transformers' rules."""
        from transformers import AutoModelForSequenceClassification

        classifier = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)})
        model = cls(classifier, related)
        if model.related_head is not None:
            classifier._init_weights(model.related_head)
        return model

    @classmethod
    def from_pretrained(cls, path: Path) -> ReputationModel:
        """A fine-tuned model saved by :meth:`save_pretrained`."""
        from safetensors.torch import load_file
        from transformers import AutoModelForSequenceClassification

        path = Path(path)
        head = path / RELATED_HEAD_FILE
        model = cls(AutoModelForSequenceClassification.from_pretrained(str(path)), head.is_file())
        if model.related_head is not None:
            model.related_head.load_state_dict(load_file(str(head)))
        return model

    def save_pretrained(self, path: Path) -> None:
        from safetensors.torch import save_file

        self.classifier.save_pretrained(str(path))
        if self.related_head is not None:
            save_file({k: v.contiguous() for k, v in self.related_head.state_dict().items()},
                      str(Path(path) / RELATED_HEAD_FILE))

    def forward(self, input_ids, attention_mask, token_type_ids) -> tuple[torch.Tensor, torch.Tensor | None]:
        encoder = getattr(self.classifier, self.classifier.base_model_prefix)
        pooled = encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).pooler_output
        pooled = self.classifier.dropout(pooled)
        related = self.related_head(pooled) if self.related_head is not None else None
        return self.classifier.classifier(pooled), related
