"""A model soup: the mean of the weights of several runs of one recipe on one split, started from the same base
(Wortsman et al. 2022), one model of the served size; validated and scored on the gap as a run of its own."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

from .checkpoint import Checkpoint, check_distinct, save_checkpoint, split_digest
from .data import Example, with_polarity
from .errors import BuildError
from .fsutil import check_output
from .scoring import predict_tweets, validation_metrics
from .splits import Holdout, Part
from .train import mean_weights, score_gap

# What may differ between a soup's runs: the seed, and where and on what each ran.
_RUN_ONLY = ("seed", "out_dir", "threads", "device", "checkpoint_every")
# What a soup's summary keeps of its first run's: how the runs were trained, on what; not what one run did alone.
_KEPT = ("data", "load", "train_examples", "validation_examples", "sentiment_examples", "stance_examples",
         "train_label_counts", "polarity_class_weights", "train_related_counts", "related_head", "pooling",
         "token_lengths", "max_length", "split_digest")


def _check_ingredients(checkpoints: Sequence[Checkpoint]) -> tuple[list[Example], list[Example]]:
    """Runs of one recipe on one split (their seeds apart), or a one-line refusal naming what differs; the (gap,
    validation) tweets they share."""
    first = checkpoints[0]

    def traits(c: Checkpoint) -> dict:
        config = c.summary["config"]
        return {"data": replace(c.data, holdout=replace(c.data.holdout, seed=0)),
                "pooling": c.pooling,
                "text settings": c.text_settings, "labels": c.labels, "relatedness head": c.related,
                "vocabulary": c.vocab_path.read_bytes(),
                **{f"--{k.replace('_', '-')}": v for k, v in config.items() if k not in _RUN_ONLY}}

    expected, parts = traits(first), first.parts()  # each run's split as the data now gives it, checked against its own
    for other in checkpoints[1:]:
        found = traits(other)
        differs = [name for name in {**expected, **found} if found.get(name) != expected.get(name)]
        if not differs and split_digest(other.parts()) != split_digest(parts):
            differs = ["split"]
        if differs:
            raise BuildError(f"checkpoint {other.path} differs from {first.path} in its {', '.join(differs)}: a soup "
                             "averages runs of one recipe on one split")
    return parts[1], parts[2]


def make_soup(paths: Sequence[str | Path], out: Path, command: str) -> Checkpoint:
    """``out/best``: the mean weights of the checkpoints at ``paths``, with its validation figures, scored once on
    the gap's tweets (:func:`score_gap`); its summary's ``soup`` lists the runs and their own figures. The same
    soup made earlier is returned as it is, its gap scored if a cut-off run had not yet."""
    if len(paths) < 2:
        raise BuildError(f"a soup averages at least 2 checkpoints, got {len(paths)}")
    check_distinct(paths, "a soup averages different runs")
    if (out / "best").exists():
        earlier = Checkpoint.load(out / "best")
        if [i["checkpoint"] for i in earlier.summary.get("soup", ())] != [str(Path(p)) for p in paths]:
            raise BuildError(f"{out / 'best'} exists and is not this soup: give a new --out (a soup never replaces "
                             "a run)")
        holdout = earlier.data.holdout
        scored = Part.GAP in earlier.summary or not holdout.gap_fraction or holdout.holdout is Holdout.ENTITIES  # or none
        print(f"soup made earlier in {out}: nothing to do" + ("" if scored else " but score its gap"))
        return earlier if scored else score_gap(earlier.path, earlier.parts()[1])
    check_output(out, "best", "soup (best/)")
    checkpoints = [Checkpoint.load(p) for p in paths]
    gap, val = _check_ingredients(checkpoints)
    models = [c.model() for c in checkpoints]
    states = [m.state_dict() for m in models]
    if any(s.keys() != states[0].keys() for s in states[1:]):
        raise BuildError("the checkpoints' weights differ in their heads: a soup averages runs of one recipe")
    model = models[0]
    model.load_state_dict(mean_weights(states))
    first = checkpoints[0]
    ingredients = [{"checkpoint": str(c.path), "seed": c.summary["config"].get("seed"),
                    "best_epoch": c.summary.get("best_epoch"),
                    Part.VALIDATION: {k: (c.summary.get(Part.VALIDATION) or {}).get(k) for k in ("accuracy", "macro_f1")}}
                   for c in checkpoints]
    config = {**first.summary["config"], "out_dir": str(out), "seed": [i["seed"] for i in ingredients]}
    summary = {k: v for k, v in first.summary.items() if k in _KEPT}
    summary |= {"config": config, "command": command, "soup": ingredients}
    metrics = logits = None
    if with_polarity(val):
        logits, related = predict_tweets(model, first.encoder(), val)
        metrics = validation_metrics(val, logits, related)
        summary[Part.VALIDATION] = metrics
        print(f"soup of {len(checkpoints)}: validation accuracy {metrics['accuracy']:.4f} "
              f"macro-F1 {metrics['macro_f1']:.4f}")
    saved = save_checkpoint(out / "best", model, first.vocab_path, first.text_settings, summary, metrics, logits)
    return score_gap(saved.path, gap)
