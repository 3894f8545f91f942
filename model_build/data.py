"""Labelled tweets: RepLab 2013 in its official layout, or a plain CSV / JSONL file."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

from app.jsonl import READ_AS_JSONL, iter_jsonl
from app.offline import (
    EMPTY_TEXT,
    NOT_JSON,
    NOT_STRING,
    NOT_TEXT,
    SNIFF,
    SURPLUS,
    SURPLUS_KEY,
    describe_header,
    repeated_columns,
)
from app.text import text_lines, visible

from .errors import BuildError

LABELS = ("positive", "neutral", "negative")
STANCE_POLARITY = {"favor": "positive", "none": "neutral", "against": "negative"}  # towards the stance's target
_STANCE_TAG = re.compile(r"\s*#SemST\s*$", re.IGNORECASE)  # SemEval 2016's collection tag, on nearly every tweet
STANCE_TARGETS = {"abortion": "Legalization of Abortion", "atheism": "Atheism", "climate": "Climate Change is a Real "
                  "Concern", "feminist": "Feminist Movement", "hillary": "Hillary Clinton"}  # TweetEval's folders
_RELATED = {"related": True, "true": True, "1": True, "yes": True,
            "unrelated": False, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class Example:
    """A tweet with its polarity label (None for a tweet not about the entity) and, where known, relatedness."""

    text: str
    label: str | None
    entity: str | None = None
    entity_id: str | None = None
    category: str | None = None
    timestamp: int | None = None
    tweet_id: str | None = None
    related: bool | None = None
    weight: float = 1.0  # of its losses in training: a user's own tweets may count more than RepLab's
    sentiment: str | None = None  # a sentiment label (TweetEval's), for the auxiliary task: not reputation polarity
    language: str | None = None  # RepLab's language code (EN, ES), upper case; None where the source has none
    entity_name: str | None = None  # the entity's full name where the source has one (RepLab's: Bayerische Motoren Werke AG)
    near_duplicate: bool = False  # marked in RepLab's tweet_info as a near-duplicate of another tweet

    def named_in_full(self) -> Example:
        """This tweet paired with its entity's full name instead of its query (itself where no full name is known)."""
        return replace(self, entity=self.entity_name) if self.entity_name else self


def example_key(e: Example) -> tuple:
    """What identifies a tweet across loads: (entity, tweet id), or its text where it has no id."""
    return e.entity_id or e.entity, e.tweet_id, e.text if e.tweet_id is None else None


def with_polarity(examples: Sequence[Example]) -> list[Example]:
    """The examples that carry a polarity label."""
    return [e for e in examples if e.label is not None]


def parse_related(value: object) -> bool | None:
    """A relatedness cell (related/unrelated, true/false, 1/0, yes/no; empty is unknown); ValueError otherwise."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if not text:
        return None
    if text not in _RELATED:
        raise ValueError(f"related must be one of {sorted(_RELATED)}, got {value!r}")
    return _RELATED[text]


@dataclass
class LoadReport:
    """What was kept and what was dropped, and why."""

    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    undecodable_files: list[str] = field(default_factory=list)
    near_duplicates: int = 0
    without_entity: int = 0  # kept examples with no entity (a table's; each added file's goes into files)
    files: dict[str, dict] = field(default_factory=dict)  # each added file's own counts, by its path
    where: dict[str, list[str]] = field(default_factory=dict)  # the first few dropped records of a table, by reason
    unplaced: set[str] = field(default_factory=set)  # reasons some row was dropped for without a place to name

    SHOWN = 5  # records named per reason

    def drop(self, why: str, where: str | None = None) -> None:
        """Count a dropped row, and name the first few (``where``: "record 12") of each reason."""
        self.dropped[why] += 1
        if where is None:
            self.unplaced.add(why)
        elif len(named := self.where.setdefault(why, [])) < self.SHOWN:
            named.append(where)

    def why_dropped(self) -> str:
        """The reasons rows were dropped, with their counts, on one line ('' when none was)."""
        return _reasons(self.dropped)

    def lines(self) -> list[str]:
        out = [f"kept {self.kept} examples"]
        for why, n in sorted(self.dropped.items()):  # the first named only where every such row had a place
            named = self.where.get(why) if why not in self.unplaced else None
            out.append(f"dropped {n} rows: {why}"
                       + (f" ({', '.join(named)}{', ...' if n > len(named) else ''})" if named else ""))
        for name, counts in self.files.items():
            dropped = _reasons(counts["dropped"])
            out.append(f"{name}: kept {counts['kept']}" + (f", dropped {dropped}" if dropped else ""))
        if self.undecodable_files:
            out.append(
                f"read {len(self.undecodable_files)} file(s) that are not valid UTF-8 with replacement: "
                + ", ".join(self.undecodable_files)
            )
        if self.near_duplicates:
            out.append(f"kept {self.near_duplicates} near-duplicate tweets (marked in tweet_info)")
        return out

    def add(self, other: LoadReport, name: str) -> None:
        """Count another file's report in this one, and keep its own counts under ``name``."""
        self.kept += other.kept
        self.dropped.update(other.dropped)
        self.undecodable_files += other.undecodable_files
        self.near_duplicates += other.near_duplicates
        self.unplaced |= other.unplaced
        for why, named in other.where.items():
            mine = self.where.setdefault(why, [])
            mine += [f"{name} {where}" for where in named][: self.SHOWN - len(mine)]
        self.files[name] = {"kept": other.kept, "dropped": dict(sorted(other.dropped.items())),
                            "without_entity": other.without_entity}

    def to_dict(self) -> dict:
        return {
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "undecodable_files": list(self.undecodable_files),
            "near_duplicates": self.near_duplicates,
            **({"files": self.files} if self.files else {}),
        }


def _reasons(dropped: dict[str, int]) -> str:
    return "; ".join(f"{why}: {n}" for why, n in sorted(dropped.items()))


def _read_text(path: Path, report: LoadReport) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BuildError(f"{path}: file not found") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        report.undecodable_files.append(path.name)
    return text.removeprefix("\ufeff")


def _checked(reader, path: Path) -> Iterator:
    """A csv reader's rows; a BuildError saying by which line the csv module gave up (a field over its size limit,
    most often one that an unclosed quote on that line or before it ran on)."""
    try:
        yield from reader
    except csv.Error as exc:  # a DictReader counts only the lines of whole rows: its reader counts this one too
        line = getattr(reader, "reader", reader).line_num
        raise BuildError(f"{path}: {exc} by line {line} (an unclosed quote on it or before it?)") from None


def _rows(path: Path, columns: Sequence[str], report: LoadReport) -> Iterator[dict[str, str]]:
    """Rows of a RepLab tab-separated, double-quoted file, checked against its expected columns."""
    reader = csv.reader(io.StringIO(_read_text(path, report), newline=""), delimiter="\t")
    rows = _checked(reader, path)
    header = next(rows, None)
    if header is None or any(c not in header for c in columns):
        raise BuildError(f"{path}: expected columns {list(columns)}, found {describe_header(header, columns)}")
    index = [header.index(c) for c in columns]
    for row in rows:
        if len(row) != len(header):
            report.drop("malformed row")
            continue
        yield {c: row[i] for c, i in zip(columns, index)}


def load_replab(root: str | Path, split: str = "training", language: str | None = "EN",
                unrelated: bool = False) -> tuple[list[Example], LoadReport]:
    """Join RepLab's polarity and filtering gold with tweet_info and texts on (entity_id, tweet_id).

    Every kept tweet has a polarity label, unless ``unrelated`` also keeps the tweets that only carry a
    filtering label (those not about the entity, with ``label`` None).
    """
    root, report = Path(root), LoadReport()
    base = root / split
    for sub in ("tweet_info", "texts", "goldstandard"):
        if not (base / sub).is_dir():
            raise BuildError(f"{base / sub}: directory not found (expected the RepLab 2013 layout)")
    entities = {
        r["entity_id"]: (r["query"].strip('"').strip(), r["category"], r["entity_name"].strip())
        for r in _rows(root / "replab2013_entities.tsv", ("entity_id", "query", "category", "entity_name"), report)
    }
    info: dict[tuple[str, str], dict[str, str]] = {}
    for path in sorted((base / "tweet_info").glob("*.dat")):
        cols = ("tweet_id", "entity_id", "language", "timestamp", "is_near_duplicate_of")
        for r in _rows(path, cols, report):
            info[(r["entity_id"], r["tweet_id"])] = r
    texts: dict[tuple[str, str], str] = {}
    for path in sorted((base / "texts").glob("*.tsv")):
        for r in _rows(path, ("tweet_id", "entity_id", "text"), report):
            texts[(r["entity_id"], r["tweet_id"])] = r["text"]
    gold = base / "goldstandard"
    related: dict[tuple[str, str], bool] = {}
    for r in _rows(gold / "goldstandard_filtering.dat", ("entity_id", "tweet_id", "filtering"), report):
        value = r["filtering"].strip().upper()
        if value in ("RELATED", "UNRELATED"):
            related[(r["entity_id"], r["tweet_id"])] = value == "RELATED"
        else:
            report.drop("unknown filtering label (not RELATED or UNRELATED)")

    polarity: dict[tuple[str, str], str] = {}
    for r in _rows(gold / "goldstandard_polarity.dat", ("entity_id", "tweet_id", "polarity"), report):
        key = (r["entity_id"], r["tweet_id"])
        label = r["polarity"].strip().lower()
        if key in polarity:
            report.drop("duplicate (entity_id, tweet_id)")
        elif label not in LABELS:
            report.drop(f"unknown label (not one of {', '.join(LABELS)})")
        else:
            polarity[key] = label
    keys = list(polarity) + ([k for k in related if k not in polarity and not related[k]] if unrelated else [])

    examples = []
    for key in keys:
        why = None
        if key not in info:
            why = "no tweet_info row"
        elif key[0] not in entities:
            why = "unknown entity"
        elif language and info[key]["language"].upper() != language.upper():
            why = f"language not {language.upper()}"
        elif not visible(texts.get(key, "")):
            why = EMPTY_TEXT
        if why:
            report.drop(why)
            continue
        meta = info[key]
        near_duplicate = meta["is_near_duplicate_of"] not in ("", "-1")
        report.near_duplicates += near_duplicate
        name, category, full_name = entities[key[0]]
        try:
            timestamp = int(meta["timestamp"])
        except ValueError:
            timestamp = None
        examples.append(Example(texts[key], polarity.get(key), name, key[0], category, timestamp, key[1],
                                related.get(key, True if key in polarity else None), language=meta["language"].upper(),
                                entity_name=full_name or None, near_duplicate=near_duplicate))
    report.kept = len(examples)
    return examples, report


GIVEN_AGAIN = "the same entity and text given again later (the last one counts)"


def load_table(path: str | Path, unrelated: bool = False) -> tuple[list[Example], LoadReport]:
    """Read a CSV (header row) or JSONL file with text, label and optional entity and related columns.

    A row marked unrelated has no polarity (a label given there is ignored); such rows are kept only with
    ``unrelated``. A tweet given again with the same entity (corrected twice on the device) counts once, as last given.
    """
    path, report = Path(path), LoadReport()
    content = _read_text(path, report)
    if "\0" in content[:SNIFF]:  # NUL decodes as itself
        raise BuildError(f"{path}: {NOT_TEXT}")
    if path.suffix.lower() in READ_AS_JSONL:
        # None for a line that is not a JSON object; lines split as the offline command reads them (not at U+2028)
        records = list(iter_jsonl(io.StringIO(content, newline="")))
    else:
        # strict, as the offline command reads CSV: a quote left open is an error, not rows merged into one
        reader = csv.DictReader(io.StringIO(content, newline=""), restkey=SURPLUS_KEY, strict=True)
        records = list(_checked(reader, path))
        if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
            raise BuildError(f"{path}: expected columns text,label[,entity][,related], found "
                             f"{describe_header(reader.fieldnames, ('text', 'label', 'entity', 'related'))}")
        if why := repeated_columns(reader.fieldnames, ("text", "label", "entity", "related")):
            raise BuildError(f"{path}: {why}")
    latest: dict[tuple[str | None, str], tuple[str, Example]] = {}  # by (entity, text), in the order last given
    for number, record in enumerate(records, 1):  # as the offline command's "line": blank lines and the header not counted
        where = f"record {number}"
        if record is None or SURPLUS_KEY in record:
            report.drop(NOT_JSON if record is None else SURPLUS, where)
            continue
        text, raw_label, entity = record.get("text"), record.get("label"), record.get("entity")
        label = raw_label.strip().lower() or None if isinstance(raw_label, str) else None
        try:
            related = parse_related(record.get("related"))
        except ValueError:
            report.drop(f"unknown related value (not one of {', '.join(sorted(_RELATED))})", where)
            continue
        if related is False:  # a tweet not about the entity has no polarity for it: a label given is ignored
            label = None
        if text is not None and not isinstance(text, str):
            report.drop(NOT_STRING, where)
        elif not isinstance(text, str) or not visible(text):
            report.drop(EMPTY_TEXT, where)
        elif label is not None and label not in LABELS:
            report.drop(f"unknown label (not one of {', '.join(LABELS)})", where)
        elif label is None and related is None:
            report.drop("no polarity label", where)
        else:  # a label, or whether the tweet is about the entity (without a label: kept only with ``unrelated``)
            entity = entity if isinstance(entity, str) and visible(entity) else None  # as the service reads it
            if earlier := latest.pop((entity, text), None):  # a tweet corrected again: its last correction counts
                report.drop(GIVEN_AGAIN, earlier[0])
            if label is None and not unrelated:
                report.drop("not about the entity (no polarity)" if related is False else "no polarity label", where)
                continue
            latest[entity, text] = where, Example(text, label, entity, related=True if label and related is None else related)
    examples = [example for _, example in latest.values()]
    report.kept = len(examples)
    report.without_entity = sum(e.entity is None for e in examples)
    return examples, report


def _tweeteval_mapping(folder: Path, allowed: Sequence[str]) -> dict[str, str]:
    """A TweetEval folder's ``mapping.txt`` (``id<TAB>name`` lines) as {id: name}, its names among ``allowed``."""
    try:
        names = dict(line.split("\t") for line in text_lines(folder / "mapping.txt", "replace") if line.strip())
    except ValueError:
        raise BuildError(f"{folder / 'mapping.txt'}: expected lines 'id<TAB>name'") from None
    except OSError:
        raise BuildError(f"{folder}: no mapping.txt (expected a TweetEval folder)") from None
    if not set(names.values()) <= set(allowed):
        raise BuildError(f"{folder / 'mapping.txt'}: labels {sorted(names.values())} are not {list(allowed)}")
    return names


def _tweeteval_tweets(folder: Path, names: dict[str, str]) -> list[tuple[str, str]]:
    """(tweet, label name) of every ``{split}_text.txt`` in ``folder`` with its ``{split}_labels.txt``."""
    rows = []
    for text_file in sorted(folder.glob("*_text.txt")):
        texts = text_lines(text_file, "replace")
        labels_file = text_file.with_name(text_file.name.replace("_text.txt", "_labels.txt"))
        labels = text_lines(labels_file, "replace") if labels_file.is_file() else []
        if len(texts) != len(labels) or not set(labels) <= set(names):
            raise BuildError(f"{text_file}: {len(texts)} tweets against {len(labels)} labels, or an unknown label")
        rows += [(t, names[y]) for t, y in zip(texts, labels) if t.strip()]
    if not rows:
        raise BuildError(f"{folder}: no *_text.txt tweets")
    return rows


def load_sentiment(folder: str | Path) -> list[Example]:
    """A TweetEval-layout sentiment folder (``{split}_text.txt`` beside ``{split}_labels.txt``, one tweet per line,
    label names in ``mapping.txt``) as examples carrying only a ``sentiment`` label, every split present."""
    folder = Path(folder)
    return [Example(t, None, sentiment=y) for t, y in _tweeteval_tweets(folder, _tweeteval_mapping(folder, LABELS))]


def load_stance(folder: str | Path) -> list[Example]:
    """TweetEval's stance folder (``mapping.txt``: none, against, favor; a folder of TweetEval-layout splits per
    target) as polarity examples for their target: favour positive, against negative, none neutral. The target is
    the entity, named as SemEval 2016's task 6 names it (its folder's name where the task has no such target); the
    task's collection tag (a closing #SemST, on all but 100 of its tweets and on no RepLab tweet) is cut off."""
    folder = Path(folder)
    names = _tweeteval_mapping(folder, tuple(STANCE_POLARITY))
    targets = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not targets:
        raise BuildError(f"{folder}: no target folders (expected TweetEval's stance folder)")
    return [Example(_STANCE_TAG.sub("", t), STANCE_POLARITY[y], STANCE_TARGETS.get(target.name, target.name))
            for target in targets for t, y in _tweeteval_tweets(target, names)]


def load(source: str | Path, split: str = "training", language: str | None = "EN",
         unrelated: bool = False) -> tuple[list[Example], LoadReport]:
    """Load a RepLab root directory or a CSV / JSONL file (``unrelated``: keep tweets without polarity too)."""
    source = Path(source)
    if source.is_dir():
        return load_replab(source, split, language, unrelated)
    if not source.exists():
        raise BuildError(f"{source}: no such file or directory")
    return load_table(source, unrelated)
