"""The fine-tuned float model as one object: its files, labels, text pipeline and the data it was trained on."""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from app.bundle import MANIFEST
from app.text import InputFormat, TextSettings, TweetEncoder

from .data import Example, LoadReport, example_key, load, load_table
from .errors import BuildError, readable
from .fsutil import atomic_dir, check_weights, write_json
from .settings import Pooling
from .splits import UNSEEN_ENTITIES, Holdout, SplitSpec

SUMMARY_FILE = "train_summary.json"
VOCAB_FILE = "vocab.txt"
SETTINGS_FILE = "text_settings.json"
VALIDATION_FILE = "validation.json"
_REQUIRED = (SUMMARY_FILE, VOCAB_FILE, SETTINGS_FILE, "config.json")


@dataclass(frozen=True)
class DataSpec:
    """Which labelled tweets a model was trained on, and how they were split."""

    source: str
    split: str = "training"
    language: str | None = "EN"
    limit: int | None = None
    unrelated: bool = False
    holdout: SplitSpec = SplitSpec()
    extra: tuple[str, ...] = ()  # CSV / JSONL files of a user's own labelled tweets, added to ``source``
    extra_weight: float = 1.0  # the weight of their examples' losses
    sample: int | None = None  # a seeded random N of ``source``'s examples (replayed beside ``extra``)
    also_language: str | None = None  # RepLab tweets of this language train too; validation stays in ``language``
    full_names: float = 0.0  # a seeded share of the training tweets named by the entity's full name, not its query
    recency: float | None = None  # each entity's oldest training tweet's weight against its newest's (None: alike)

    def __post_init__(self) -> None:
        if self.also_language is not None:
            object.__setattr__(self, "also_language", self.also_language.upper())  # as RepLab's tweet_info spells it
        if self.also_language is not None and (self.language is None or self.also_language == self.language.upper()):
            raise BuildError(f"training also on {self.also_language} tweets needs another language to validate on, "
                             f"got {self.language or 'every language'}")
        if not self.extra_weight > 0:
            raise BuildError(f"the extra examples' weight must be positive, got {self.extra_weight}")
        if self.sample is not None and self.sample < 1:
            raise BuildError(f"the sample of the data must be at least 1 example, got {self.sample}")
        if not 0 <= self.full_names <= 1:
            raise BuildError(f"the share of training tweets named by the entity's full name must be in [0, 1], "
                             f"got {self.full_names}")
        if self.recency is not None and not 0 < self.recency <= 1:
            raise BuildError(f"each entity's oldest training tweet's weight must be in (0, 1], got {self.recency}")

    def to_dict(self) -> dict:
        return {"source": self.source, "split": self.split, "language": self.language, "limit": self.limit,
                "unrelated": self.unrelated, **self.holdout.to_dict(), "extra": list(self.extra),
                "extra_weight": self.extra_weight, "sample": self.sample, "also_language": self.also_language,
                "full_names": self.full_names, "recency": self.recency}

    @classmethod
    def from_dict(cls, data: dict) -> DataSpec:
        return cls(str(data["source"]), data.get("split", "training"), data.get("language"), data.get("limit"),
                   bool(data.get("unrelated", False)), SplitSpec.from_dict(data), tuple(data.get("extra", ())),
                   float(data.get("extra_weight", 1.0)), data.get("sample"), data.get("also_language"),
                   float(data.get("full_names", 0.0)), data.get("recency"))

    def load(self, source: str | Path | None = None) -> tuple[list[Example], LoadReport]:
        """The examples (from ``source`` when the data moved; the first ``limit``, then a seeded random ``sample``
        of them), then the extra files' (weighted), before the split."""
        if self.also_language is None:
            examples, report = load(source or self.source, self.split, self.language, self.unrelated)
        else:
            examples, report = load(source or self.source, self.split, None, self.unrelated)
            kept = {self.language.upper(), self.also_language}
            if other := sum(e.language not in kept for e in examples):
                report.dropped[f"language not {self.language} or {self.also_language}"] += other
            examples = [e for e in examples if e.language in kept]
        if self.limit is not None and self.limit < len(examples):
            report.dropped[f"beyond the first {self.limit} (--limit)"] += len(examples) - self.limit
            examples = examples[: self.limit]
        if self.sample is not None and self.sample < len(examples):
            report.dropped[f"not among a seeded random {self.sample} (--sample)"] += len(examples) - self.sample
            examples = random.Random(self.holdout.seed).sample(examples, self.sample)
        report.kept = len(examples)
        report.without_entity = sum(e.entity is None for e in examples)  # of those kept (--limit, --sample)
        origin: list[str | None] = [None] * len(examples)  # each example's file: None for the data's own
        for path in self.extra:
            more, more_report = load_table(path, self.unrelated)
            if not more:
                _no_usable(path, more_report)
            report.add(more_report, str(path))
            examples, origin = _not_given_again(examples, origin, more, str(path), report)
            examples += [replace(e, weight=self.extra_weight) for e in more]
            origin += [str(path)] * len(more)
        if not examples:
            _no_usable(source or self.source, report)
        report.near_duplicates = sum(e.near_duplicate for e in examples)  # of those kept (--limit, --sample, --extra)
        return examples, report

    def check(self, examples: Sequence[Example], report: LoadReport, input_format: InputFormat) -> list[str]:
        """Refuse loaded examples that this spec's settings cannot use for a model reading ``input_format`` (the
        entity holdout without RepLab's held-out entities, full names without any, an extra file without entities
        for pairs); notes on what it can use only in part."""
        if self.holdout.holdout is Holdout.ENTITIES and not {e.entity_id for e in examples} & set(UNSEEN_ENTITIES):
            raise BuildError("--holdout entities validates on 12 of RepLab's entities (model_build/splits.py): none is "
                             f"in {self.source}")
        if self.holdout.holdout is Holdout.ENTITIES and self.extra:  # an extra file's tweets all train
            names = {n.casefold() for e in examples if e.entity_id in UNSEEN_ENTITIES for n in (e.entity, e.entity_name) if n}
            if named := sorted({e.entity for e in examples if e.entity_id is None and (e.entity or "").casefold() in names}):
                raise BuildError(f"--holdout entities validates on entities no training tweet is about, and --extra tweets "
                                 f"name {', '.join(named)}, one of them: leave those tweets out, or hold out by time")
        if self.full_names and not any(e.entity_name for e in examples):
            raise BuildError(f"--full-names pairs tweets with their entity's full name: {self.source} has none "
                             "(RepLab's entity_name)")
        notes = []
        own = report.kept - sum(counts["kept"] for counts in report.files.values())  # the --data table's, as kept
        tables = {self.source: {"kept": own, "without_entity": report.without_entity}} \
            if Path(self.source).is_file() and own else {}
        for name, counts in {**tables, **report.files}.items() if input_format.pair else ():
            if counts["without_entity"] == counts["kept"]:
                raise BuildError(f"{name}: no tweet has an entity, and the model reads (entity, tweet) pairs: add an "
                                 "entity column (your brand's name as you will send it to /classify)"
                                 + (", or train on the tweets alone (--input-format text)" if name in tables else ""))
            if counts["without_entity"]:
                notes.append(f"{name}: {counts['without_entity']} of {counts['kept']} tweets have no entity")
        return notes

    def partition(self, examples: Sequence[Example]) -> tuple[list[Example], list[Example], list[Example]]:
        """(training, gap, validation) of loaded examples (the gap's tweets, between the other two in time, in
        neither), a seeded ``full_names`` share of the training tweets named by their entity's full name (the
        others keep the query), weighted by ``recency``."""
        train, gap, val = self._holdout(examples)
        if self.full_names:
            train = [e.named_in_full() if self._gets_full_name(e) else e for e in train]
        if self.recency is not None:
            train = self._by_recency(train)
        return train, gap, val

    def _by_recency(self, train: list[Example]) -> list[Example]:
        """Each entity's training tweets with a time weighted by their order in time, linearly from ``recency`` (the
        oldest) to 1 (the newest), then scaled to average 1 (a lone tweet: 1), so that tweets without a time (an
        ``extra`` file's) keep their share: the tweets to be labelled come later than all of them."""
        timed: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(train):
            if e.timestamp is not None and e.entity_id is not None:
                timed[e.entity_id].append(i)
        if not timed:
            raise BuildError("--recency weights each entity's tweets by their time: none of the training tweets has "
                             "one (RepLab's do)")
        weighted, mean = list(train), (1 + self.recency) / 2
        for indices in timed.values():
            indices.sort(key=lambda i: (train[i].timestamp, train[i].tweet_id or ""))
            for rank, i in enumerate(indices):
                newness = rank / (len(indices) - 1) if len(indices) > 1 else 0.5
                ramp = self.recency + (1 - self.recency) * newness
                weighted[i] = replace(train[i], weight=train[i].weight * ramp / mean)
        return weighted

    def _gets_full_name(self, e: Example) -> bool:
        return random.Random(f"{self.holdout.seed}:{example_key(e)}").random() < self.full_names

    def _holdout(self, examples: Sequence[Example]) -> tuple[list[Example], list[Example], list[Example]]:
        """(training, gap, validation). Tweets of ``also_language`` only train: with a time holdout those no later
        than their entity's latest training tweet (or all when nothing is held out), with an entity holdout those of
        the entities kept."""
        if self.also_language is None:
            return self.holdout.parts(examples)
        train, gap, val = self.holdout.parts([e for e in examples if e.language != self.also_language])
        more = [e for e in examples if e.language == self.also_language]
        if self.holdout.holdout is Holdout.ENTITIES:
            more = self.holdout.apply(more)[0]
        elif val or gap:
            latest: dict[str | None, int] = {}
            for e in train:
                if e.timestamp is not None:
                    latest[e.entity_id] = max(latest.get(e.entity_id, e.timestamp), e.timestamp)
            more = [e for e in more if e.timestamp is not None and e.timestamp <= latest.get(e.entity_id, -1)]
        return train + more, gap, val

    def parts(self, source: str | Path | None = None, digest: str | None = None
              ) -> tuple[list[Example], list[Example], list[Example]]:
        """(training, gap, validation) exactly as the model saw them; given the run's ``digest`` (its summary's
        ``split_digest``), data that now gives another split is refused rather than scored as the run's."""
        parts = self.partition(self.load(source)[0])
        if digest is not None and split_digest(parts) != digest:
            extra = f" and {', '.join(self.extra)}" if self.extra else ""
            raise BuildError(f"{source or self.source}{extra}: these tweets split otherwise than when the run trained (one "
                             "of them changed since? a feedback file still collecting: train on a copy of it): give the "
                             "data it was trained on")
        return parts

    def splits(self, source: str | Path | None = None) -> tuple[list[Example], list[Example]]:
        """(training, validation) exactly as the model saw them."""
        train, _, val = self.parts(source)
        return train, val

    def with_holdout(self, holdout: SplitSpec) -> DataSpec:
        return replace(self, holdout=holdout)


def _not_given_again(examples: list[Example], origin: list[str | None], more: Sequence[Example], name: str,
                     report: LoadReport) -> tuple[list[Example], list[str | None]]:
    """``examples`` (each from its ``origin``) less the tweets that the file ``name`` gives again (the same
    :func:`example_key`, or a RepLab tweet's text under its query or full name, or under none where the file gives no
    entity, as a table, which has no tweet ids, gives it): its copy counts, as a later line's does within one file, and
    a tweet in two files would otherwise train in one part of the split and validate in another. Each is counted as
    dropped from its file."""
    again = {example_key(e) for e in more}
    texts = {((e.entity or "").casefold(), e.text) for e in more}
    reason = f"given again in {name} (the later file's copy counts)"
    kept: list[tuple[Example, str | None]] = []
    for example, source in zip(examples, origin):
        names = ("", *(n.casefold() for n in (example.entity, example.entity_name) if n)) if example.tweet_id else ()
        if example_key(example) not in again and not any((n, example.text) in texts for n in names):
            kept.append((example, source))
            continue
        report.drop(reason)
        report.kept -= 1
        if source is None:
            report.without_entity -= example.entity is None
        else:
            counts = report.files[source]
            counts["kept"] -= 1
            counts["without_entity"] -= example.entity is None
            counts["dropped"][reason] = counts["dropped"].get(reason, 0) + 1
    return [e for e, _ in kept], [o for _, o in kept]


def _no_usable(source: str | Path, report: LoadReport) -> None:
    why = report.why_dropped()
    raise BuildError(f"{source}: no usable examples" + (f" (dropped: {why})" if why else ""))


def split_digest(parts: Sequence[Sequence[Example]]) -> str:
    """Which tweets (by :func:`example_key`) are in each part of a split, as a short digest (no text)."""
    keys = [sorted(repr(example_key(e)) for e in part) for part in parts]
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    """A fine-tuned checkpoint directory, validated; build it with :meth:`Checkpoint.load`."""

    path: Path
    labels: tuple[str, ...]
    related: bool
    input_format: InputFormat
    base_model: str
    text_settings: TextSettings
    data: DataSpec
    summary_json: str
    pooling: Pooling  # what its heads read (its config.json's)

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """Read and check a checkpoint directory; BuildError with a one-line reason otherwise."""
        from .model import RELATED_HEAD_FILE

        root = Path(path)
        if not root.is_dir():
            what = "not a directory" if root.exists() else "no such directory"
            raise BuildError(f"checkpoint {root}: {what} (a 'train' run's best/)")
        if (root / MANIFEST).is_file():
            raise BuildError(f"checkpoint {root}: this is a bundle; give the checkpoint it was packaged from (its "
                             "manifest's training.config.out_dir, then best/)")
        missing = [name for name in _REQUIRED if not (root / name).is_file()]
        if missing:
            raise BuildError(f"checkpoint {root}: missing {', '.join(missing)} (is this a 'train' run's best/ directory?)")
        try:
            summary = json.loads((root / SUMMARY_FILE).read_text())
            config = json.loads((root / "config.json").read_text())
            id2label = {int(k): v for k, v in config["id2label"].items()}
            checkpoint = cls(
                path=root,
                labels=tuple(id2label[i].lower() for i in range(len(id2label))),
                related=(root / RELATED_HEAD_FILE).is_file(),
                input_format=InputFormat(summary["config"]["input_format"]),
                base_model=str(summary["config"]["base"]),
                text_settings=TextSettings.from_dict(json.loads((root / SETTINGS_FILE).read_text())),
                data=DataSpec.from_dict(summary["data"]),
                summary_json=json.dumps(summary, sort_keys=True),
                pooling=Pooling.of(SimpleNamespace(**config)),
            )
            checkpoint.validation_metrics()  # read when asked: a file there must read now
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # AttributeError: a list where a map goes
            raise BuildError(f"checkpoint {root}: unreadable ({type(exc).__name__}: {exc})") from None
        except BuildError as exc:  # a pooling it does not know
            raise BuildError(f"checkpoint {root}: {exc}") from None
        checkpoint.encoder()  # its vocabulary reads, and its weights' headers (a file cut off, or of garbage)
        with readable(f"checkpoint {root}"):
            check_weights(root)
        return checkpoint

    @property
    def summary(self) -> dict[str, Any]:
        """A fresh copy of the training summary."""
        return json.loads(self.summary_json)

    def parts(self, source: str | Path | None = None) -> tuple[list[Example], list[Example], list[Example]]:
        """(training, gap, validation) of the run, from its data (as now at ``source``), checked against its split."""
        return self.data.parts(source, self.summary.get("split_digest"))

    @property
    def vocab_path(self) -> Path:
        return self.path / VOCAB_FILE

    def encoder(self) -> TweetEncoder:
        with readable(f"checkpoint {self.path}'s vocabulary"):
            return TweetEncoder(self.vocab_path, self.text_settings, self.input_format.pair)

    def model(self):
        """The PyTorch model (``ReputationModel``), in evaluation mode."""
        from .model import ReputationModel

        with readable(f"checkpoint {self.path}"):
            return ReputationModel.from_pretrained(self.path).eval()

    def validation_metrics(self) -> dict:
        """The float model's metrics on its validation split, as measured when it was saved."""
        path = self.path / VALIDATION_FILE
        return json.loads(path.read_text()) if path.is_file() else {}


def save_checkpoint(out: Path, model, vocab: Path, settings: TextSettings, summary: dict,
                    metrics: dict | None = None, logits: np.ndarray | None = None) -> Checkpoint:
    """Write a checkpoint directory atomically and load it back."""
    with atomic_dir(out, SUMMARY_FILE) as tmp:
        model.save_pretrained(tmp)
        (tmp / VOCAB_FILE).write_bytes(Path(vocab).read_bytes())
        write_json(tmp / SETTINGS_FILE, settings.to_dict())
        write_json(tmp / SUMMARY_FILE, summary)
        if metrics is not None:
            write_json(tmp / VALIDATION_FILE, metrics)
        if logits is not None:
            np.save(tmp / "validation_logits.npy", logits)
    return Checkpoint.load(out)


def check_distinct(paths: Sequence[str | Path], members: str) -> None:
    """Refuse a checkpoint given twice, by any path to it; ``members`` says why they must differ."""
    resolved = [Path(p).resolve() for p in paths]
    twice = sorted({str(p) for p, r in zip(paths, resolved) if resolved.count(r) > 1})
    if twice:
        raise BuildError(f"checkpoint {', '.join(twice)} given twice: {members}")
