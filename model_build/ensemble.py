"""An ensemble of fine-tuned checkpoints (probabilities averaged) scored on one run's validation and gap tweets: the
most that a student distilled from them could carry into one model of the served size."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .checkpoint import Checkpoint, check_distinct
from .data import with_polarity
from .distill import Distillation, check_unseen, teacher_targets
from .errors import BuildError
from .offsets import OffsetSource, best_negative_offset, in_short, negative_offset_figures
from .splits import Part, held_out_parts


def score_ensemble(paths: Sequence[str | Path], choice: float | OffsetSource, data_source: str | None = None) -> dict:
    """The ensemble's figures on the first checkpoint's validation and gap tweets (``validation``, ``gap``), each
    member's in short (``members``), with the negative offset given or chosen on the ensemble's validation figures.
    A member trained on any of those tweets is refused."""
    if len(paths) < 2:
        raise BuildError(f"an ensemble takes at least 2 checkpoints, got {len(paths)}")
    check_distinct(paths, "an ensemble's members are different runs")
    members = [Checkpoint.load(p) for p in paths]
    _, gap, val = members[0].parts(data_source)
    parts = {name: tweets for name, tweets in held_out_parts(gap, val) if with_polarity(tweets)}
    if Part.VALIDATION not in parts:
        raise BuildError(f"checkpoint {members[0].path} has no validation split (trained on everything): give a run "
                         "with one first, to score the ensemble on")
    for member in members[1:]:  # the first one's own split is the one scored; data it named is read from --data too
        check_unseen(member, [*val, *gap], "ensemble member", f"give runs that left out {members[0].path}'s validation "
                     "and gap tweets (trained on its split, or on fewer tweets)",
                     data_source if member.data.source == members[0].data.source else None)
    targets = teacher_targets(Distillation(tuple(str(m.path) for m in members)), [*val, *gap], role="member")
    rows = {Part.VALIDATION: slice(0, len(val)), Part.GAP: slice(len(val), None)}
    held = {name: targets.rows(rows[name]) for name in parts}
    related = {name: None if np.isnan(t.related).all() else t.related for name, t in held.items()}
    logits = {name: np.log(t.soft(1.0)) for name, t in held.items()}
    offset = best_negative_offset(val, logits[Part.VALIDATION]) if choice is OffsetSource.CHOSEN else float(choice)
    result: dict = {"checkpoints": [str(m.path) for m in members], "negative_offset": offset,
                    "offset": (choice if choice is OffsetSource.CHOSEN else OffsetSource.GIVEN).value}
    for name, tweets in parts.items():
        result[name] = negative_offset_figures(tweets, logits[name], related[name], offset)
    result["members"] = [{"checkpoint": str(m.path),
                          **{name: in_short(negative_offset_figures(tweets, held[name].logits[i], None, offset))
                             for name, tweets in parts.items()}}
                         for i, m in enumerate(members)]
    result["members_mean"] = {name: {k: float(np.mean([m[name][k] for m in result["members"]]))
                                     for k in ("accuracy", "macro_f1", "negative_f1")} for name in parts}
    return result


def format_ensemble(result: dict) -> str:
    """One line per member, their mean, and the ensemble's, each on validation and the gap."""

    def short(figures: dict) -> str:
        return f"{figures['accuracy']:.4f} / {figures['macro_f1']:.4f} (negative F1 {figures['negative_f1']:.3f})"

    parts = [p for p in Part if p in result]
    lines = [f"{m['checkpoint']}: " + ", ".join(f"{name} {short(m[name])}" for name in parts) for m in result["members"]]
    lines.append("members' mean: " + ", ".join(f"{name} {short(result['members_mean'][name])}" for name in parts))
    lines.append(f"ensemble of {len(result['members'])}, probabilities averaged, {result['negative_offset']:+g} on "
                 "negative: " + ", ".join(f"{name} {short(in_short(result[name]))}" + (
                     f", relatedness {result[name]['relatedness']['accuracy']:.4f}" if "relatedness" in result[name]
                     else "") for name in parts))
    return "\n".join(lines)
