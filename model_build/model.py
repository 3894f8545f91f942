"""The PyTorch model: a BERT-family sequence classifier for polarity, with an optional relatedness head (served)
and an optional sentiment head (an auxiliary task's, training only), reading one encoder pass pooled as :class:`Pooling`
says ([CLS] through the pooler, the tokens' mean, or the mean for the label heads and [CLS] for relatedness)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import torch

from .settings import POOLING_CONFIG_KEY, Pooling

RELATED_HEAD_FILE = "related_head.safetensors"
SENTIMENT_HEAD_FILE = "sentiment_head.safetensors"  # an auxiliary task's head: trained, never converted or served
_ENCODER_LAYER = re.compile(r"\.layer\.(\d+)\.")  # BERT's and MobileBERT's encoder.layer.N.


class ReputationModel(torch.nn.Module):
    """Polarity logits ``[batch, labels]`` and, with a relatedness head, relatedness logits ``[batch, 1]``; with a
    sentiment head (training only), :meth:`outputs` also gives sentiment logits ``[batch, labels]``."""

    def __init__(self, classifier, related: bool, sentiment: bool = False):
        super().__init__()
        self.classifier = classifier
        hidden = classifier.config.hidden_size
        self.related_head = torch.nn.Linear(hidden, 1) if related else None
        self.sentiment_head = torch.nn.Linear(hidden, classifier.config.num_labels) if sentiment else None

    def _head_files(self):
        return ((RELATED_HEAD_FILE, self.related_head), (SENTIMENT_HEAD_FILE, self.sentiment_head))

    @property
    def config(self):
        return self.classifier.config

    @classmethod
    def from_base(cls, base: str, labels: Sequence[str], related: bool, sentiment: bool = False,
                  pooling: Pooling = Pooling.CLS) -> ReputationModel:
        """A new model on a pretrained encoder (hub name or path), heads initialised by transformers' rules."""
        from transformers import AutoModelForSequenceClassification

        classifier = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)})
        setattr(classifier.config, POOLING_CONFIG_KEY, pooling.value)  # saved in config.json with the weights
        model = cls(classifier, related, sentiment)
        for _, head in model._head_files():
            if head is not None:
                classifier._init_weights(head)
        return model

    @classmethod
    def from_pretrained(cls, path: Path) -> ReputationModel:
        """A fine-tuned model saved by :meth:`save_pretrained`."""
        from safetensors.torch import load_file
        from transformers import AutoModelForSequenceClassification

        path = Path(path)
        model = cls(AutoModelForSequenceClassification.from_pretrained(str(path)), (path / RELATED_HEAD_FILE).is_file(),
                    (path / SENTIMENT_HEAD_FILE).is_file())
        for name, head in model._head_files():
            if head is not None:
                head.load_state_dict(load_file(str(path / name)))
        return model

    def save_pretrained(self, path: Path) -> None:
        from safetensors.torch import save_file

        self.classifier.save_pretrained(str(path))
        for name, head in self._head_files():
            if head is not None:
                save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(Path(path) / name))

    def pooled(self, input_ids, attention_mask, token_type_ids) -> tuple[torch.Tensor, torch.Tensor]:
        """What the label heads (polarity, sentiment) and the relatedness head read, each ``[batch, hidden]``,
        before dropout: one tensor twice where they read the same."""
        encoder = getattr(self.classifier, self.classifier.base_model_prefix)
        out = encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        pooling, cls = Pooling.of(self.config), out.pooler_output
        if not pooling.labels_read_mean:
            return cls, cls
        mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        mean = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1)
        return mean, mean if pooling.related_reads_mean else cls

    def layer_rates(self, decay: float) -> dict[str, float]:
        """Each parameter's learning-rate factor under layer-wise decay (ELECTRA-style, Clark et al. 2020): 1 for the
        heads and the pooler, ``decay ** k`` for the k-th encoder layer from the top, ``decay ** (layers + 1)`` for
        the embeddings, so that fine-tuning moves the base's lower layers less."""
        layers = self.config.num_hidden_layers
        rates = {}
        for name, _ in self.named_parameters():
            layer = _ENCODER_LAYER.search(name)
            depth = int(layer.group(1)) + 1 if layer else 0 if ".embeddings." in name else layers + 1
            rates[name] = decay ** (layers + 1 - depth)
        return rates

    def heads(self) -> tuple[torch.nn.Linear, torch.nn.Linear | None, torch.nn.Linear | None]:
        """The polarity, relatedness and sentiment heads (None for one the model lacks)."""
        return self.classifier.classifier, self.related_head, self.sentiment_head

    def outputs(self, input_ids, attention_mask, token_type_ids) -> tuple[torch.Tensor, ...]:
        """Polarity, relatedness and sentiment logits (None for a head the model lacks), one encoder pass."""
        labels, related = self.pooled(input_ids, attention_mask, token_type_ids)
        dropped = self.classifier.dropout(labels)  # once where both read the same, as before mean-cls existed
        dropped_related = dropped if related is labels else self.classifier.dropout(related)
        polarity_head, related_head, sentiment_head = self.heads()
        return (polarity_head(dropped), None if related_head is None else related_head(dropped_related),
                None if sentiment_head is None else sentiment_head(dropped))

    def forward(self, input_ids, attention_mask, token_type_ids) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Polarity and relatedness logits: what is served."""
        return self.outputs(input_ids, attention_mask, token_type_ids)[:2]
