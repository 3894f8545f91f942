"""Reputation classification of tweets with a bundle's TFLite model, sized to each input."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .bundle import Bundle
from .errors import AppError
from .runtime import load_runtime

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class Prediction:
    """A tweet's polarity label and scores (the softmax of its logits plus the bundle's label offsets), and where the
    bundle has a relatedness head (None otherwise, and for a tweet without an entity where the bundle reads pairs) the
    probability that it is about the entity and the verdict at the bundle's threshold."""

    label: str
    scores: dict[str, float]
    tokens: int
    related: float | None = None
    about: bool | None = None

    def to_dict(self) -> dict:
        """The result as the API and the offline mode write it (no ``related`` or ``about`` without them)."""
        out = {"label": self.label, "scores": self.scores}
        if self.related is not None:
            out["related"] = self.related
            out["about"] = self.about
        return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class Classifier:
    """A bundle's tokenizer and interpreter. Thread-safe: one inference at a time per instance.

    Tweets run at their token length rounded up to a multiple of ``bucket`` (1: exact length);
    the tweets of one call are grouped by that length into batches of at most ``max_batch``.
    """

    def __init__(self, bundle: Bundle, threads: int | None = None, bucket: int = 8,
                 max_batch: int = 16):
        self.bundle = bundle
        self.bucket = max(1, bucket)
        self.max_batch = max(1, max_batch)
        try:
            self.encoder = bundle.encoder()
        except ValueError as exc:
            raise AppError(f"bundle {bundle.path}: {exc}") from None
        self.runtime = load_runtime()
        self._lock = threading.Lock()
        try:
            self._interpreter = self.runtime.interpreter_class(model_path=str(bundle.model_path), num_threads=threads)
            details = self._interpreter.get_input_details()
            self._inputs = {name: next(d["index"] for d in details if name in d["name"]) for name in INPUT_NAMES}
            outputs = self._interpreter.get_output_details()
            self._shape: tuple[int, int] | None = None
        except StopIteration:
            raise AppError(f"bundle {bundle.path}: model lacks inputs {INPUT_NAMES}") from None
        except (ValueError, RuntimeError) as exc:
            raise self._incompatible(exc) from None
        # Outputs are told apart by width: polarity has one logit per label, relatedness one probability.
        widths = sorted(int(o["shape"][-1]) for o in outputs)
        expected = sorted([len(bundle.labels)] + [1] * bundle.has_related)
        if widths != expected:
            raise AppError(f"bundle {bundle.path}: model outputs have widths {widths}, the manifest's labels and "
                           f"outputs need {expected}")
        self._output = next(o["index"] for o in outputs if o["shape"][-1] == len(bundle.labels))
        self._related = next((o["index"] for o in outputs if o["shape"][-1] == 1), None)
        try:
            self.classify(["warm up"], ["warm up"])
        except (ValueError, RuntimeError) as exc:
            raise self._incompatible(exc) from None

    def _incompatible(self, exc: Exception) -> AppError:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        verified = ", ".join(f"{name} {version}" for name, version in self.bundle.runtimes) or "none recorded"
        return AppError(
            f"bundle {self.bundle.path}: {self.runtime.name} {self.runtime.version} cannot run this model "
            f"({reason}); verified runtimes: {verified}"
        )

    def invoke(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """One interpreter call on padded inputs (resized when their shape changes); the polarity logits."""
        with self._lock:
            return self._invoke(inputs)[:, : len(self.bundle.labels)]

    def _invoke(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Polarity logits, followed by the relatedness probability as one more column where there is one."""
        shape = inputs["input_ids"].shape
        if shape != self._shape:
            for index in self._inputs.values():
                self._interpreter.resize_tensor_input(index, shape)
            self._interpreter.allocate_tensors()
            self._shape = shape
        for name, index in self._inputs.items():
            self._interpreter.set_tensor(index, inputs[name])
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._output)
        if self._related is None:
            return logits.copy()
        return np.concatenate([logits, self._interpreter.get_tensor(self._related)], axis=1)

    def logits(self, encodings, pad_to: int | None = None) -> np.ndarray:
        """Logits for encoded tweets in input order, then the relatedness probability as a last column where the
        bundle has one; ``pad_to`` forces one fixed length."""
        out = np.empty((len(encodings), len(self.bundle.labels) + self.bundle.has_related), dtype=np.float32)
        limit = self.bundle.text_settings.max_length
        groups: dict[int, list[int]] = {}
        for i, enc in enumerate(encodings):
            length = pad_to or min(limit, -(-len(enc.ids) // self.bucket) * self.bucket)
            groups.setdefault(length, []).append(i)
        batches = [
            (chunk, self.encoder.pad([encodings[i] for i in chunk], length))
            for length, rows in sorted(groups.items())
            for chunk in (rows[s:s + self.max_batch] for s in range(0, len(rows), self.max_batch))
        ]
        with self._lock:  # only the interpreter is shared; padding happened above
            for chunk, inputs in batches:
                out[chunk] = self._invoke(inputs)
        return out

    def classify(self, texts: Sequence[str], entities: Sequence[str | None] | None = None) -> list[Prediction]:
        """Labels and scores for tweets (entities are used when the bundle takes pairs)."""
        encodings = self.encoder.encode(texts, entities if self.bundle.pair_input else None)
        labels = self.bundle.labels
        outputs = self.logits(encodings)
        probabilities = _softmax(self.bundle.adjusted(outputs[:, : len(labels)]))
        related: list = [None] * len(texts)
        if self.bundle.has_related:
            # A pair model was trained to say whether a tweet is about a named entity: with none, or one of which the
            # model reads no token (zero-width characters, which preprocessing drops; U+FFFD or lone combining accents,
            # which the tokenizer's normaliser drops), it has nothing to say. The entity's tokens are those of the
            # first segment (type 0) besides [CLS] and [SEP].
            for i, encoding in enumerate(encodings):
                if not self.bundle.pair_input or encoding.type_ids.count(0) > 2:
                    related[i] = outputs[i, len(labels)]
        return [
            Prediction(labels[int(p.argmax())], {name: round(float(x), 6) for name, x in zip(labels, p)}, len(enc.ids),
                       *self._relatedness(r))
            for p, r, enc in zip(probabilities, related, encodings)
        ]

    def _relatedness(self, probability) -> tuple[float | None, bool | None]:
        """The relatedness probability as results give it (6 decimals) and the verdict on that very number at the
        bundle's threshold, so that the two never disagree; None twice without one."""
        if probability is None:
            return None, None
        related = round(float(probability), 6)
        return related, related >= self.bundle.related_threshold
