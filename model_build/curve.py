"""Adapting to a new brand, measured: a checkpoint trained without the unseen entities is trained further on a
replay of RepLab plus k of each unseen entity's own labelled tweets (its earliest), and scored on its later ones."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

from .checkpoint import Checkpoint
from .data import Example
from .errors import BuildError
from .figures import pyplot, save_png
from .fsutil import atomic_dir, write_json, write_text
from .scoring import predict_tweets, validation_metrics
from .splits import Holdout
from .train import TrainConfig, train

MIN_TEST = 50  # an entity with fewer test tweets than this is left out of the curve


@dataclass(frozen=True)
class CurveSpec:
    """How the adaptation runs are made: the same settings as ``train --init ... --extra ... --sample``."""

    sizes: tuple[int, ...] = (0, 50, 100, 200, 400)
    pool: int = 400  # each entity's earliest tweets that may be added; the later ones are the test tweets
    weights: tuple[float, ...] = (1.0,)
    sample: int = 3000
    epochs: int = 2
    learning_rate: float = 3e-5
    seed: int = 13

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) < 0 or max(self.sizes) > self.pool:
            raise BuildError(f"sizes must be between 0 and {self.pool} tweets per entity, got {list(self.sizes)}")
        if not self.weights or not all(0 < w <= 1000 for w in self.weights):  # nan too
            raise BuildError(f"weights must be positive numbers up to 1000, got {list(self.weights)}")
        if self.epochs < 1:
            raise BuildError(f"adapting takes at least 1 epoch, got {self.epochs}")


def split_entities(examples: Sequence[Example], pool: int) -> tuple[dict[str, list[Example]], list[Example], list[str]]:
    """Each entity's earliest ``pool`` tweets (the tweets a user would label first), the later tweets of all of
    them (the test tweets), and the names of the entities left out for having too few later tweets."""
    by_entity: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        by_entity[e.entity_id or e.entity or ""].append(e)
    pools, test, left_out = {}, [], []
    for entity, group in sorted(by_entity.items()):
        group = sorted(group, key=lambda e: (e.timestamp or 0, e.tweet_id or ""))
        if len(group) - pool < MIN_TEST:
            left_out.append(group[0].entity)
            continue
        pools[entity], test = group[:pool], test + group[pool:]
    return pools, test, left_out


def _own_file(path: Path, examples: Sequence[Example]) -> Path:
    """The added tweets as a user's JSONL file (text,label,entity,related): tweet texts, kept in the work folder."""
    rows = [{"text": e.text, "label": e.label or "", "entity": e.entity,
             "related": "" if e.related is None else "related" if e.related else "unrelated"} for e in examples]
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _scores(checkpoint: Checkpoint, test: Sequence[Example]) -> dict:
    logits, related = predict_tweets(checkpoint.model(), checkpoint.encoder(), test)
    return validation_metrics(test, logits, related)


def run_curve(base: Checkpoint, spec: CurveSpec, work: Path, command: str, threads: int | None = None,
              data_source: str | None = None) -> dict:
    """Train (resumably, one run per weight and size under ``work``) and score every point of the curve."""
    if base.data.holdout.holdout is not Holdout.ENTITIES:
        raise BuildError(f"checkpoint {base.path} was not trained with --holdout entities")
    _, _, unseen = base.parts(data_source)
    pools, test, left_out = split_entities(unseen, spec.pool)
    if not pools:
        raise BuildError(f"no unseen entity has more than {spec.pool + MIN_TEST} tweets to add from and score on")
    zero = _scores(base, test)
    points = []
    for weight in spec.weights:
        for k in spec.sizes:
            if k == 0:
                points.append({"weight": weight, "per_entity": 0, "added": 0, "metrics": zero})
                continue
            run_dir = Path(work) / f"w{weight:g}-k{k}"
            own = _own_file(Path(work) / f"own-k{k}.jsonl", [e for pool in pools.values() for e in pool[:k]])
            data = replace(base.data, source=data_source or base.data.source, extra=(str(own),), extra_weight=weight,
                           sample=spec.sample)
            train_set, _ = data.splits()  # the unseen entities' RepLab tweets stay out; the own file goes in
            config = TrainConfig(base=base.base_model, out_dir=run_dir, input_format=base.input_format,
                                 epochs=spec.epochs, learning_rate=spec.learning_rate, patience=spec.epochs,
                                 seed=spec.seed, threads=threads, init=str(base.path),
                                 related_weight=base.summary["config"].get("related_weight", 1.0))
            adapted = train(config, data, train_set, [], command)  # no validation: the test tweets stay unseen
            points.append({"weight": weight, "per_entity": k, "added": k * len(pools), "metrics": _scores(adapted, test)})
            print(f"curve: weight {weight:g}, {k} tweets per entity: " + _line(points[-1]["metrics"]))
    return {"checkpoint": str(base.path), "spec": asdict(spec), "entities": [p[0].entity for p in pools.values()],
            "left_out": left_out,
            "test_tweets": len(test), "test_with_polarity": sum(e.label is not None for e in test),
            "command": command, "points": points}


def _line(m: dict) -> str:
    rel = m.get("relatedness")
    return (f"polarity accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f}"
            + (f", relatedness accuracy {rel['accuracy']:.4f} unrelated F1 {rel['per_class']['unrelated']['f1']:.4f}"
               if rel else ""))


def write_curve(result: dict, out: Path) -> str:
    """curve.json, curve.md and curve.png in ``out``, all three or none (``atomic_dir``); returns the Markdown."""
    with atomic_dir(Path(out), "curve.json") as tmp:
        return _write_curve(result, tmp)


def _write_curve(result: dict, out: Path) -> str:
    plt = pyplot()
    write_json(out / "curve.json", result)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for weight in sorted({p["weight"] for p in result["points"]}):
        rows = [p for p in result["points"] if p["weight"] == weight]
        x = [p["per_entity"] for p in rows]
        axes[0].plot(x, [p["metrics"]["macro_f1"] for p in rows], marker="o", label=f"own tweets' weight {weight:g}")
        axes[1].plot(x, [p["metrics"].get("relatedness", {}).get("accuracy") for p in rows], marker="o",
                     label=f"own tweets' weight {weight:g}")
    for ax, title in zip(axes, ("polarity macro-F1", "relatedness accuracy")):
        ax.set_xlabel("own labelled tweets per entity")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{len(result['entities'])} entities never seen in training, scored on their "
                 f"{result['test_tweets']} later tweets")
    fig.tight_layout()
    save_png(fig, out / "curve.png", dpi=110)
    lines = ["| own tweets per entity | weight | polarity accuracy | macro-F1 | negative F1 | relatedness accuracy | "
             "unrelated F1 |", "|---|---|---|---|---|---|---|"]
    for p in result["points"]:
        m, rel = p["metrics"], p["metrics"].get("relatedness")
        lines.append(f"| {p['per_entity']} | {p['weight']:g} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
                     f"{m['per_class']['negative']['f1']:.4f} | "
                     + (f"{rel['accuracy']:.4f} | {rel['per_class']['unrelated']['f1']:.4f} |" if rel else "| |"))
    text = (f"# Adapting to a new brand\n\nEntities: {', '.join(result['entities'])} (left out, too few later tweets: "
            f"{', '.join(result['left_out']) or 'none'}); test: each one's tweets after its first {result['spec']['pool']} "
            f"({result['test_tweets']} tweets, {result['test_with_polarity']} with polarity).\n\n"
            f"Command: `{result['command']}`\n\n" + "\n".join(lines) + "\n")
    write_text(out / "curve.md", text)
    return text
