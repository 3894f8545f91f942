"""Distillation: an ensemble of fine-tuned teachers' averaged, softened probabilities as training targets."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .checkpoint import Checkpoint
from .data import LABELS, Example, example_key
from .errors import BuildError
from .fsutil import write_bytes

TARGETS_FILE = "teacher_targets.npz"  # in the run directory, so that a resumed run does not predict again


@dataclass(frozen=True)
class Distillation:
    """Teachers (checkpoint paths), the soft targets' share of each loss, and the softening temperature."""

    teachers: tuple[str, ...]
    weight: float = 0.5
    temperature: float = 2.0

    def __post_init__(self) -> None:
        if not self.teachers:
            raise BuildError("distillation needs at least one teacher checkpoint")
        if not 0 < self.weight <= 1:
            raise BuildError(f"the distillation weight must be in (0, 1], got {self.weight}")
        if not self.temperature > 0:
            raise BuildError(f"the distillation temperature must be positive, got {self.temperature}")


@dataclass(frozen=True)
class TeacherTargets:
    """Each teacher's polarity logits and the teachers' mean relatedness probability (NaN where no teacher has
    the head), one row per example."""

    logits: np.ndarray  # [teachers, examples, labels]
    related: np.ndarray  # [examples]

    def soft(self, temperature: float) -> np.ndarray:
        """Mean over teachers of their softmax at ``temperature``."""
        z = self.logits / temperature
        p = np.exp(z - z.max(-1, keepdims=True))
        return (p / p.sum(-1, keepdims=True)).mean(0)

    def rows(self, rows: slice) -> TeacherTargets:
        return TeacherTargets(self.logits[:, rows], self.related[rows])


def check_unseen(checkpoint: Checkpoint, held_out: Sequence[Example], role: str = "teacher",
                 remedy: str = "use one trained on this run's split (or one that leaves them out), or hold out none "
                               "(--val-fraction 0 --gap-fraction 0)", source: str | None = None) -> None:
    """Refuse a teacher, ``--init`` checkpoint or ensemble member that was trained on any of the held-out tweets (its
    targets or its weights would leak them into the figures)."""
    if not held_out:
        return
    try:
        seen = {example_key(e) for e in checkpoint.parts(source)[0]}  # its split as recorded, or refused
    except BuildError as exc:
        raise BuildError(f"{role} {checkpoint.path}: its training data, to check it against the held-out tweets: {exc}") \
            from None
    leaked = sum(example_key(e) in seen for e in held_out)
    if leaked:
        raise BuildError(f"{role} {checkpoint.path} was trained on {leaked} of the held-out tweets (validation and "
                         f"gap): {remedy}")


def teacher_targets(distillation: Distillation, examples: Sequence[Example], cache: Path | None = None,
                    role: str = "teacher") -> TeacherTargets:
    """Every teacher's predictions on ``examples`` (read from ``cache`` when it holds them for as many); ``role``
    names them in what is printed."""
    from .scoring import predict_tweets

    if cache is not None and cache.is_file():
        try:
            with np.load(cache) as saved:
                if saved["logits"].shape[:2] == (len(distillation.teachers), len(examples)):
                    return TeacherTargets(saved["logits"], saved["related"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # a cache cut off or damaged: predict again
            print(f"note: {cache} cannot be read: the teachers predict again")
    logits, related = [], []
    for path in distillation.teachers:
        teacher = Checkpoint.load(path)
        if teacher.labels != LABELS:
            raise BuildError(f"{role} {teacher.path} has labels {list(teacher.labels)}, not {list(LABELS)}")
        polarity, relatedness = predict_tweets(teacher.model(), teacher.encoder(), examples)
        logits.append(polarity)
        if relatedness is not None:
            related.append(relatedness)
        print(f"{role} {path}: predicted {len(examples)} tweets")
    targets = TeacherTargets(np.stack(logits), np.mean(related, 0) if related else np.full(len(examples), np.nan))
    if cache is not None:
        buffer = io.BytesIO()
        np.savez(buffer, logits=targets.logits, related=targets.related)
        write_bytes(cache, buffer.getvalue())
    return targets
