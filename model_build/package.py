"""Writing a bundle: model, vocabulary and manifest, verified by the edge loader, renamed into place."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Sequence

from app.bundle import MANIFEST, SCHEMA_VERSION, Bundle, sha256_file
from app.classifier import Classifier
from app.text import TextSettings, name_key

from .checkpoint import SUMMARY_FILE, Checkpoint
from .data import Example, with_polarity
from .errors import BuildError
from .fsutil import atomic_dir, check_folder, check_output, write_json
from .metrics import best_threshold, relatedness_metrics
from .offsets import OffsetSource, in_short, negative_offset, offset_logits
from .runs import RUN_FILE
from .scoring import encode_examples, predict_tweets, validation_metrics
from .splits import UNSEEN_ENTITIES, Holdout, Part, held_out_parts

MODEL_FILE = "model.tflite"
BUNDLE_VOCAB_FILE = "vocab.txt"
_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")  # as the manifest's schema has it (ASCII digits)


def check_version(version: str) -> None:
    if not _VERSION.fullmatch(version):
        raise BuildError(f"version {version!r}: give MAJOR.MINOR.PATCH, three numbers (as 1.2.0)")


def write_bundle(
    out_dir: Path,
    *,
    flatbuffer: bytes,
    checkpoint: Checkpoint,
    quantization: str,
    name: str,
    version: str,
    extra: dict[str, Any],
    evaluate: Callable[[Path], dict] | None = None,
) -> Bundle:
    """Write a bundle of a checkpoint's converted model atomically; it replaces ``out_dir`` only once the edge
    loader has run it (and ``evaluate`` has measured it, its metrics going into the manifest)."""
    check_version(version)
    with atomic_dir(out_dir, MANIFEST) as tmp:
        (tmp / MODEL_FILE).write_bytes(flatbuffer)
        (tmp / BUNDLE_VOCAB_FILE).write_bytes(checkpoint.vocab_path.read_bytes())
        for f in (MODEL_FILE, BUNDLE_VOCAB_FILE):
            (tmp / f).chmod(0o644)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "version": version,
            "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "labels": list(checkpoint.labels),
            "outputs": ["polarity", "related"] if checkpoint.related else ["polarity"],
            "base_model": checkpoint.base_model,
            "input_format": checkpoint.input_format.value,
            "preprocessing": checkpoint.text_settings.to_dict(),
            "quantization": quantization,
            "model_file": MODEL_FILE,
            "vocab_file": BUNDLE_VOCAB_FILE,
            "files": {f: {"sha256": sha256_file(tmp / f), "bytes": (tmp / f).stat().st_size}
                      for f in (MODEL_FILE, BUNDLE_VOCAB_FILE)},
            "runtimes": {},
            **extra,
        }
        write_json(tmp / MANIFEST, manifest)
        classifier = Classifier(Bundle.load(tmp))
        manifest["runtimes"] = {classifier.runtime.name: classifier.runtime.version}
        del classifier
        if evaluate:
            manifest.setdefault("metrics", {}).update(evaluate(tmp))
        write_json(tmp / MANIFEST, manifest)
        Bundle.load(tmp)
    return Bundle.load(out_dir)


def package_checkpoint(checkpoint: Checkpoint, variants: Sequence[str], out: Path, *, name: str, version: str,
                       command: str, notes: str | None = None, calibration: int = 100, threads: int | None = None,
                       data_source: str | None = None, unseen: Checkpoint | None = None,
                       holdout_run: Checkpoint | None = None, related_threshold: float | None = None,
                       offset: float | OffsetSource | None = None) -> list[Bundle]:
    """Convert a checkpoint to each variant and write one bundle per variant, measured on the checkpoint's own
    validation split and time gap; ``unseen``, the same recipe trained without the unseen entities, adds their
    figures and chooses the relatedness threshold there (unless ``related_threshold`` is given; 0.5 without
    either), and ``holdout_run``, the same recipe trained with a time holdout, measures a checkpoint trained on
    everything. ``offset``, added to the negative logit (a number, or OffsetSource.CHOSEN on the measured run's
    validation split), applies to every figure. A pair-input bundle gets the full names of the entities trained on as
    entity aliases (``trained_names``)."""
    from .convert import VARIANTS, convert, representative_inputs
    from .evaluate import evaluate_bundle

    check_version(version)
    if not name:
        raise BuildError("--name: give the bundle a name")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise BuildError(f"variants: {f'unknown {unknown}' if unknown else 'none given'}; choose from {', '.join(VARIANTS)}")
    if len(set(variants)) < len(variants):
        raise BuildError(f"variants: {', '.join(sorted({v for v in variants if variants.count(v) > 1}))} given twice")
    if len(variants) > 1:  # the bundles' parent: a folder of its own, not a bundle, checkpoint or run
        check_folder(Path(out))
        if any((Path(out) / held).is_file() for held in (MANIFEST, SUMMARY_FILE, RUN_FILE)):
            raise BuildError(f"{out} is a bundle, checkpoint or run folder: give the variants a folder of their own")
    for variant in variants:  # before the conversion, not after it
        check_output(Path(out) if len(variants) == 1 else Path(out) / variant, MANIFEST)
    if unseen is not None and unseen.data.holdout.holdout is not Holdout.ENTITIES:
        raise BuildError(f"checkpoint {unseen.path} was not trained with --holdout entities")
    if unseen is not None:  # its figures and the threshold chosen on them stand for this checkpoint's
        _check_same_recipe(unseen, checkpoint, "--unseen-entities is the same recipe on the same data, trained "
                                               "without the unseen entities")
    if related_threshold is not None and not 0 < related_threshold < 1:
        raise BuildError(f"related threshold {related_threshold}: give a probability strictly between 0 and 1")
    other = next((c for c in (unseen, holdout_run) if c is not None and c.related != checkpoint.related), None)
    if other is not None:
        raise BuildError(f"checkpoint {other.path} {'has' if other.related else 'lacks'} the relatedness head that "
                         f"{checkpoint.path} {'has' if checkpoint.related else 'lacks'}: not the same recipe")
    if related_threshold is not None and not checkpoint.related:
        raise BuildError(f"related threshold: checkpoint {checkpoint.path} has no relatedness head")
    train_set, gap_set, val_set = checkpoint.parts(data_source)
    held_out = bool(with_polarity(val_set) or with_polarity(gap_set))
    _check_holdout_run(holdout_run, held_out, checkpoint)
    unseen_tweets = unseen.parts(data_source)[2] if unseen is not None else []
    _check_unseen(unseen, unseen_tweets, related_threshold)
    measured = holdout_run or checkpoint
    offsets, offset_figures = {}, {}
    if offset is not None:
        value, offset_figures = negative_offset(measured, offset, data_source)
        offsets = {"negative": value}
    unseen_polarity, unseen_plain, unseen_related = _unseen_figures(unseen, unseen_tweets, related_threshold, offsets)
    if unseen_related is not None:
        related_threshold = unseen_related["threshold"]
    stand_in = _holdout_figures(holdout_run, variants, out, command, threads, data_source, related_threshold,
                                offsets.get("negative"), calibration)
    aliases = trained_names(train_set, checkpoint.text_settings) if checkpoint.input_format.pair else {}
    encoder = checkpoint.encoder()
    calibration_inputs = representative_inputs(encode_examples(encoder, train_set), encoder, calibration)
    converted = convert(checkpoint, variants, calibration_inputs)
    summary = checkpoint.summary
    training = {k: summary.get(k) for k in ("config", "data", "load", "train_examples", "validation_examples",
                                            "train_label_counts", "train_related_counts", "token_lengths",
                                            "history", "best_epoch", "command", "seconds", "soup", "averaged",
                                            "split_digest")}
    metrics = {"framework_validation": offset_figures.pop(Part.VALIDATION, None) or measured.validation_metrics()}
    if Part.GAP in offset_figures or Part.GAP in measured.summary:
        metrics["framework_gap"] = offset_figures.pop(Part.GAP, None) or measured.summary[Part.GAP]
    if offsets:
        without = offset_figures.pop("without")
        metrics["negative_offset"] = {**offset_figures, **({"without": without, "model": f"the float model "
                                                            f"{_run_line(measured)}"} if without else {})}
    if holdout_run is not None:  # another model's figures: say whose
        for key in [k for k in ("framework_validation", "framework_gap") if metrics.get(k)]:
            metrics[key] = {**metrics[key], "model": f"the float model {_run_line(holdout_run)}"}
    if unseen is not None:
        held = {e.entity_id: e.entity for e in unseen_tweets}
        metrics["unseen_entities"] = {**unseen_polarity, **({"without_offset": unseen_plain} if unseen_plain else {}),
                                      "entities": [held[i] for i in UNSEEN_ENTITIES if i in held],  # their names
                                      "model": f"the float model trained without these entities ({_run_line(unseen)})",
                                      **({"relatedness_at_threshold": unseen_related} if unseen_related else {})}

    def evaluate(tmp: Path) -> dict:
        if not held_out:
            return stand_in.get(variant, {Part.VALIDATION: {}})
        found = {Part.VALIDATION: {}}
        for part, tweets in held_out_parts(gap_set, val_set):
            if with_polarity(tweets):
                found[part] = _recorded(evaluate_bundle(tmp, tweets, threads))
        return _with_relatedness(found)

    bundles = []
    for variant, (flatbuffer, note) in converted.items():
        target = Path(out) if len(variants) == 1 else Path(out) / variant
        bundles.append(write_bundle(
            target, flatbuffer=flatbuffer, checkpoint=checkpoint, quantization=variant, name=name, version=version,
            extra={"conversion": note, "training": training, "command": command, "metrics": dict(metrics),
                   **({"related_threshold": related_threshold} if related_threshold is not None else {}),
                   **({"label_offsets": offsets} if offsets else {}),
                   **({"entity_aliases": aliases} if aliases else {}),
                   **({"notes": notes} if notes else {})},
            evaluate=evaluate,
        ))
    return bundles


def trained_names(train_set: Sequence[Example], settings: TextSettings) -> dict[str, str]:
    """The bundle's entity aliases: the full names of the entities a model was trained on, each mapped to the name
    their training tweets carried (RepLab's query: Bayerische Motoren Werke AG to BMW). A name read as a trained one
    (a full name some training tweets carried, as with ``--full-names``), as nothing, or as the full name of two
    entities is left out."""
    trained = {name_key(e.entity, settings) for e in train_set if e.entity}
    named: dict[str, tuple[str, dict[str, str]]] = {}  # by key: a full name's first spelling, the names it stands for
    for e in train_set:
        key = name_key(e.entity_name, settings) if e.entity and e.entity_name else ""
        if key and key not in trained and name_key(e.entity, settings):
            named.setdefault(key, (e.entity_name, {}))[1].setdefault(name_key(e.entity, settings), e.entity)
    return dict(sorted((full, next(iter(names.values()))) for full, names in named.values() if len(names) == 1))


class ThresholdSource(str, Enum):
    """Where a bundle's relatedness threshold came from, as its manifest's unseen-entity figures say."""

    GIVEN = "given"
    CHOSEN = "the highest macro-F1 on these tweets"


def _check_unseen(unseen: Checkpoint | None, tweets: Sequence[Example], threshold: float | None) -> None:
    """Refuse unseen entities whose tweets are all related (or all not) where a threshold is to be chosen on them,
    before anything is computed."""
    gold = {e.related for e in tweets if e.related is not None}
    if unseen is not None and unseen.related and threshold is None and len(gold) == 1:
        raise BuildError(f"checkpoint {unseen.path}: its unseen entities' tweets are all "
                         f"{'related' if gold.pop() else 'unrelated'}; no threshold can be chosen on them "
                         f"(give --related-threshold)")


def _unseen_figures(unseen: Checkpoint | None, tweets: Sequence[Example], threshold: float | None,
                    offsets: dict[str, float]) -> tuple[dict, dict, dict | None]:
    """The float model trained without the unseen entities, scored on their tweets: polarity with ``offsets``
    (relatedness at 0.5 under ``relatedness``), in short without them where there are any, and relatedness at
    ``threshold`` or, where none is given, at the one of highest macro-F1 there (``threshold`` and ``chosen`` in
    those figures; None without relatedness labels)."""
    if unseen is None:
        return {}, {}, None
    logits, related = predict_tweets(unseen.model(), unseen.encoder(), tweets)
    polarity = validation_metrics(tweets, offset_logits(logits, offsets), related)
    plain = in_short(validation_metrics(tweets, logits, related)) if offsets else {}
    known = [i for i, e in enumerate(tweets) if e.related is not None]
    if related is None or not known:
        return polarity, plain, None
    gold, probability = [tweets[i].related for i in known], related[known]
    source = ThresholdSource.GIVEN if threshold is not None else ThresholdSource.CHOSEN
    threshold = best_threshold(gold, probability) if threshold is None else threshold
    return polarity, plain, {**relatedness_metrics(gold, probability, threshold), "threshold": threshold,
                             "chosen": source.value}


def _check_holdout_run(holdout_run: Checkpoint | None, held_out: bool, checkpoint: Checkpoint) -> None:
    """Refuse a --holdout-run that cannot stand in for this checkpoint's figures, before anything is computed: one
    validated after a time holdout, reading its input as the checkpoint does, trained on the same data (its split
    apart) from the same base."""
    if holdout_run is None:
        return
    if held_out:
        raise BuildError("--holdout-run measures a checkpoint trained on everything: this one has held-out tweets "
                         "(a validation split or a time gap)")
    if holdout_run.data.holdout.holdout is not Holdout.TIME or not holdout_run.validation_metrics():
        raise BuildError(f"checkpoint {holdout_run.path} was not trained with a time holdout and validated")
    _check_same_recipe(holdout_run, checkpoint, "--holdout-run is the same recipe on the same data, trained with a "
                                                "time holdout")


def _check_same_recipe(other: Checkpoint, checkpoint: Checkpoint, why: str) -> None:
    """Refuse ``other`` where it reads its input otherwise than ``checkpoint``, or was trained from another base or
    on other data (its split apart)."""
    same = {"input format": (other.input_format, checkpoint.input_format),
            "base": (other.base_model, checkpoint.base_model),
            "data": tuple(tuple(getattr(c.data, f.name) for f in fields(c.data) if f.name != "holdout")
                          for c in (other, checkpoint))}
    differs = [name for name, (a, b) in same.items() if a != b]
    if differs:
        raise BuildError(f"checkpoint {other.path} differs from {checkpoint.path} in its {', '.join(differs)}: {why}")


def _holdout_figures(holdout_run: Checkpoint | None, variants: Sequence[str], out: Path, command: str,
                     threads: int | None, data_source: str | None, related_threshold: float | None,
                     offset: float | None, calibration: int) -> dict[str, dict]:
    """Validation and gap figures per variant of the same recipe trained with a time holdout, converted and scored
    the same way (``calibration`` tweets for full-int8, relatedness at ``related_threshold``, ``offset`` on the
    negative logit), for a checkpoint trained on everything (none of its own tweets are unseen)."""
    if holdout_run is None:
        return {}
    figures = {}
    Path(out).parent.mkdir(parents=True, exist_ok=True)  # as the bundle's own folder will be (atomic_dir)
    with tempfile.TemporaryDirectory(dir=Path(out).parent, prefix=".holdout-run-") as tmp:
        for bundle in package_checkpoint(holdout_run, variants, Path(tmp) / "bundle", name="holdout-run",
                                         version="0.0.0", command=command, calibration=calibration, threads=threads,
                                         data_source=data_source, related_threshold=related_threshold, offset=offset):
            metrics = bundle.manifest()["metrics"]
            model = (f"trained on each entity's tweets before a time gap ({_run_line(holdout_run)}), "
                     f"{bundle.quantization}; this bundle saw these tweets")
            found = {}
            for part in Part:
                if part in metrics:
                    found[part] = {**metrics[part], "model": model}
                    if "relatedness" in found[part]:
                        found[part]["relatedness"] = {**found[part]["relatedness"], "model": model}
            figures[bundle.quantization] = _with_relatedness(found)
    return figures


def _with_relatedness(found: dict) -> dict:
    """A bundle's measured figures, with validation's relatedness also at the top (where the manifest has it)."""
    relatedness = found[Part.VALIDATION].get("relatedness")
    return {**found, **({"relatedness": relatedness} if relatedness else {})}


def _recorded(figures: dict) -> dict:
    """A bundle's evaluation as its manifest keeps it: without the directory it was evaluated in (a temporary one)
    and the name and version the manifest states already."""
    return {key: value for key, value in figures.items() if key not in ("bundle", "name", "version")}


def _run_line(checkpoint: Checkpoint) -> str:
    """Where a checkpoint is and how it was trained, for figures that stand in for another model's."""
    summary = checkpoint.summary
    config = summary.get("config", {})
    distilled, sentiment, stance = config.get("distillation"), config.get("sentiment"), config.get("stance")
    soup = summary.get("soup")
    trained = (f"a soup of {len(soup)} runs of {config.get('epochs')} epochs" if soup else
               f"best epoch {summary.get('best_epoch')} of {config.get('epochs')}")
    return (f"{checkpoint.path}: {trained}, learning rate "
            f"{config.get('learning_rate')}, relatedness weight {config.get('related_weight', 1.0)}, "
            f"seed {config.get('seed')}"
            + (f", distilled from {len(distilled['teachers'])} teachers (weight {distilled['weight']}, temperature "
               f"{distilled['temperature']})" if distilled else "")
            + (f", sentiment task weight {sentiment['weight']} ({summary.get('sentiment_examples')} tweets)"
               if sentiment else "")
            + (f", stance tweets on the {stance['head']} head, weight {stance['weight']} "
               f"({summary.get('stance_examples')} tweets)" if stance else ""))
