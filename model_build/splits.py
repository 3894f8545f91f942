"""How labelled tweets are split for validation: a time-ordered holdout per entity, or unseen entities."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

from .data import Example
from .errors import BuildError

# RepLab 2013 entities held out whole to measure entities the model never saw, fixed once so that every bundle
# is measured on the same ones: of each category's entities in id order, the first, the (n//3)-th and the (2n//3)-th.
_UNSEEN = {
    1: (1, 12, 25),  # automotive: BMW, Nissan, Bentley
    2: (51, 56, 67),  # banking: RBS, Bank of America, Banco Santander
    3: (86, 89, 93),  # universities: Harvard, MIT, Yale
    4: (145, 155, 169),  # music: Adele, U2, Jennifer Lopez
}
UNSEEN_ENTITIES = tuple(f"RL2013D{domain:02d}E{entity:03d}" for domain, numbers in _UNSEEN.items() for entity in numbers)


class Holdout(str, Enum):
    """What validation holds out."""

    TIME = "time"  # the latest tweets of every entity, after a gap
    ENTITIES = "entities"  # every tweet of UNSEEN_ENTITIES


class Part(str, Enum):
    """A held-out part of a split, by the name its figures go under: a member reads as that name in dictionaries,
    JSON and text alike (enum.StrEnum, which does this, needs Python 3.11)."""

    VALIDATION = "validation"
    GAP = "gap"

    __str__ = str.__str__
    __format__ = str.__format__


def held_out_parts(gap: Sequence[Example], val: Sequence[Example]) -> list[tuple[str, Sequence[Example]]]:
    """A split's held-out parts, validation first, each with the name its figures go under."""
    return [(Part.VALIDATION, val), (Part.GAP, gap)]


@dataclass(frozen=True)
class SplitSpec:
    """A reproducible split of loaded examples into training and validation."""

    holdout: Holdout = Holdout.TIME
    val_fraction: float = 0.15
    gap_fraction: float = 0.0
    seed: int = 13

    def __post_init__(self) -> None:
        if not 0 <= self.val_fraction < 1 or not 0 <= self.gap_fraction < 1 or self.val_fraction + self.gap_fraction >= 1:
            raise BuildError(f"validation fraction {self.val_fraction} and gap {self.gap_fraction} must be in [0, 1) "
                             "and leave tweets to train on")

    def to_dict(self) -> dict:
        return {"holdout": self.holdout.value, "val_fraction": self.val_fraction, "gap_fraction": self.gap_fraction,
                "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict) -> SplitSpec:
        return cls(Holdout(data.get("holdout", Holdout.TIME.value)), float(data["val_fraction"]),
                   float(data.get("gap_fraction", 0.0)), int(data["seed"]))

    def apply(self, examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
        """(training, validation); the gap's tweets are in neither."""
        train, _, val = self.parts(examples)
        return train, val

    def parts(self, examples: Sequence[Example]) -> tuple[list[Example], list[Example], list[Example]]:
        """(training, gap, validation): the gap's tweets come between the other two in time (none with unseen
        entities held out)."""
        if self.holdout is Holdout.ENTITIES:
            held = set(UNSEEN_ENTITIES)
            return [e for e in examples if e.entity_id not in held], [], [e for e in examples if e.entity_id in held]
        return split_by_time(examples, self.val_fraction, self.seed, self.gap_fraction)


def split_by_time(examples: Sequence[Example], val_fraction: float, seed: int,
                  gap_fraction: float = 0.0) -> tuple[list[Example], list[Example], list[Example]]:
    """(training, gap, validation): the latest ``val_fraction`` of each entity's tweets held out, the
    ``gap_fraction`` before them set apart.

    Where some tweet of an entity has no time, that entity's tweets are shuffled with ``seed`` instead, and none
    are set apart (a gap in time means nothing there).
    """
    groups: dict[str | None, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[ex.entity_id or ex.entity].append(ex)
    rng = random.Random(seed)
    train, gap, val = [], [], []
    for key in sorted(groups, key=str):
        group = groups[key]
        timed = all(ex.timestamp is not None for ex in group)
        if timed:
            group = sorted(group, key=lambda ex: (ex.timestamp, ex.tweet_id or ""))
        else:
            group = list(group)
            rng.shuffle(group)
        held = round(len(group) * val_fraction)
        gapped = round(len(group) * gap_fraction) if timed else 0  # a gap in time only where there is a time
        train += group[: len(group) - held - gapped]
        gap += group[len(group) - held - gapped: len(group) - held]
        val += group[len(group) - held:]
    return train, gap, val
