"""Evaluation of a bundle with the edge runtime: quality, size and per-tweet latency."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from app.bundle import Bundle
from app.classifier import Classifier

from .checkpoint import DataSpec
from .data import LABELS, Example
from .errors import BuildError
from .metrics import RELATEDNESS_LABELS, classification_metrics


def holdout_examples(bundle: Bundle, data: str, gap: bool = False) -> tuple[list[Example], DataSpec]:
    """The validation tweets (or, with ``gap``, the time gap's) of the run a bundle was packaged from, split again
    from ``data`` as its manifest says, and that run's data spec."""
    try:
        training = bundle.manifest()["training"]
        spec = DataSpec.from_dict(training["data"])
    except (ValueError, KeyError, TypeError):
        raise BuildError(f"bundle {bundle.path}: its manifest records no training split to hold out") from None
    _, gap_set, val_set = spec.parts(data, training.get("split_digest"))
    examples = gap_set if gap else val_set
    if not examples:
        part = "time gap of its own (so with an entity holdout, --gap-fraction 0 or tweets without a time)" if gap \
            else "validation split of its own"
        raise BuildError(f"bundle {bundle.path}: no {part}; one trained on every tweet has none, and its manifest's "
                         "metrics name the run its figures came from")
    return examples, spec


def named_in_full(examples: Sequence[Example], data: str) -> list[Example]:
    """The examples paired with their entity's full name instead of its query (RepLab's entity_name)."""
    named = sum(e.entity_name is not None for e in examples)
    if not named:
        raise BuildError(f"{data}: no entity full names to pair the tweets with (RepLab's entity file has them)")
    print(f"evaluate: {named} of {len(examples)} tweets paired with their entity's full name")
    return [e.named_in_full() for e in examples]


def latency_summary(seconds: Sequence[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"median_ms": round(float(np.median(ms)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def evaluate_bundle(path: str | Path, examples: Sequence[Example], threads: int | None = None) -> dict:
    """Classify each tweet on its own (as the service does for one request) and score the labels.

    Polarity is scored on the tweets with a polarity label; relatedness (bundles with that head) on every
    tweet with a relatedness label at the bundle's threshold, under ``relatedness``.
    """
    if not any(e.label is not None for e in examples):
        raise BuildError("no tweets with a polarity label to score")
    bundle = Bundle.load(path)
    if sorted(bundle.labels) != sorted(LABELS):
        raise BuildError(f"bundle labels {list(bundle.labels)} differ from the data's {list(LABELS)}")
    started = time.perf_counter()
    classifier = Classifier(bundle, threads=threads)
    load_seconds = time.perf_counter() - started
    predictions, seconds = [], []
    for ex in examples:
        t0 = time.perf_counter()
        (pred,) = classifier.classify([ex.text], [ex.entity])
        seconds.append(time.perf_counter() - t0)
        predictions.append(pred)
    polar = [(e, p) for e, p in zip(examples, predictions) if e.label is not None]
    labels = list(bundle.labels)
    metrics = classification_metrics([labels.index(e.label) for e, _ in polar],
                                      [labels.index(p.label) for _, p in polar], labels)
    if bundle.pair_input and (alone := sum(e.entity is None for e, _ in polar)):
        metrics["read_without_entity"] = alone  # the tweet alone, as the service reads it: not the pairs it learnt
    if aliased := sum(bool(e.entity and classifier.encoder.alias(e.entity)) for e, _ in polar):
        metrics["read_by_alias"] = aliased  # the entity named otherwise than in training: read as that name
    labelled = [(e, p) for e, p in zip(examples, predictions) if e.related is not None]
    known = [(e, p) for e, p in labelled if p.about is not None]  # a pair model says nothing without an entity
    if bundle.has_related and known:
        metrics["relatedness"] = {**classification_metrics([int(e.related) for e, _ in known],
                                                            [int(p.about) for _, p in known], RELATEDNESS_LABELS),
                                  "threshold": bundle.related_threshold}
        if len(known) < len(labelled):
            metrics["relatedness"]["without_entity"] = len(labelled) - len(known)
    metrics.update(
        bundle=str(path),
        name=bundle.name,
        version=bundle.version,
        quantization=bundle.quantization,
        model_bytes=bundle.model_bytes,
        bundle_bytes=sum(int(f["bytes"]) for f in bundle.manifest()["files"].values()),  # its model and vocabulary
        runtime=f"{classifier.runtime.name} {classifier.runtime.version}",
        threads=threads,
        load_seconds=round(load_seconds, 3),
        latency=latency_summary(seconds),
    )
    return metrics


def format_metrics(m: dict) -> str:
    """A plain-text summary of evaluation metrics."""
    lines = [f"n={m['n']}  accuracy={m['accuracy']:.4f}  macro-F1={m['macro_f1']:.4f}"]
    if alone := m.get("read_without_entity"):
        lines[0] += f"  ({alone} without an entity, read as the tweet alone: the bundle learnt (entity, tweet) pairs)"
    if aliased := m.get("read_by_alias"):
        lines[0] += f"  ({aliased} with an entity named by one of the bundle's entity_aliases, read as the name it maps to)"
    if "latency" in m:
        lat = m["latency"]
        lines.append(
            f"model {m['model_bytes']:,} bytes (bundle {m['bundle_bytes']:,}), {m['quantization']}, "
            f"latency median {lat['median_ms']:.2f} ms p95 {lat['p95_ms']:.2f} ms per tweet ({m['runtime']})"
        )
    lines.append(f"{'':10s} precision  recall  f1      support")
    for name in m["labels"]:  # in the labels' order, as the confusion matrix (a manifest's keys come sorted)
        c = m["per_class"][name]
        lines.append(f"{name:10s} {c['precision']:.4f}     {c['recall']:.4f}  {c['f1']:.4f}  {c['support']}")
    lines.append("confusion (rows true, columns predicted: " + ", ".join(m["labels"]) + ")")
    lines += ["  " + " ".join(f"{v:6d}" for v in row) for row in m["confusion"]]
    if "relatedness" in m:
        at = f" at {m['relatedness']['threshold']}" if "threshold" in m["relatedness"] else ""
        skipped = m["relatedness"].get("without_entity")
        at += f" ({skipped} tweets without an entity not scored)" if skipped else ""
        lines += [f"relatedness{at}: " + format_metrics(m["relatedness"]).replace("\n", "\n  ")]
    return "\n".join(lines)
