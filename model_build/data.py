"""Labelled tweets: RepLab 2013 in its official layout, or a plain CSV / JSONL file."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from app.offline import JSONL_SUFFIXES, iter_jsonl

LABELS = ("positive", "neutral", "negative")


class DataError(Exception):
    """Input data that cannot be read at all (missing file, wrong columns)."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    entity: str | None = None
    entity_id: str | None = None
    category: str | None = None
    timestamp: int | None = None
    tweet_id: str | None = None


@dataclass
class LoadReport:
    """What was kept and what was dropped, and why."""

    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    undecodable_files: list[str] = field(default_factory=list)
    near_duplicates: int = 0

    def lines(self) -> list[str]:
        out = [f"kept {self.kept} examples"]
        out += [f"dropped {n} rows: {why}" for why, n in sorted(self.dropped.items())]
        if self.undecodable_files:
            out.append(
                f"read {len(self.undecodable_files)} file(s) that are not valid UTF-8 with replacement: "
                + ", ".join(self.undecodable_files)
            )
        if self.near_duplicates:
            out.append(f"kept {self.near_duplicates} near-duplicate tweets (marked in tweet_info)")
        return out

    def to_dict(self) -> dict:
        return {
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "undecodable_files": list(self.undecodable_files),
            "near_duplicates": self.near_duplicates,
        }


def _read_text(path: Path, report: LoadReport) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        report.undecodable_files.append(path.name)
    return text.removeprefix("\ufeff")


def _rows(path: Path, columns: Sequence[str], report: LoadReport) -> Iterator[dict[str, str]]:
    """Rows of a RepLab tab-separated, double-quoted file, checked against its expected columns."""
    reader = csv.reader(io.StringIO(_read_text(path, report), newline=""), delimiter="\t")
    header = next(reader, None)
    if header is None or any(c not in header for c in columns):
        raise DataError(f"{path}: expected columns {list(columns)}, found {header}")
    index = [header.index(c) for c in columns]
    for row in reader:
        if len(row) != len(header):
            report.dropped["malformed row"] += 1
            continue
        yield {c: row[i] for c, i in zip(columns, index)}


def load_replab(root: str | Path, split: str = "training", language: str | None = "EN") -> tuple[list[Example], LoadReport]:
    """Join RepLab polarity gold, tweet_info and texts on (entity_id, tweet_id)."""
    root, report = Path(root), LoadReport()
    base = root / split
    for sub in ("tweet_info", "texts", "goldstandard"):
        if not (base / sub).is_dir():
            raise DataError(f"{base / sub}: directory not found (expected the RepLab 2013 layout)")
    entities = {
        r["entity_id"]: (r["query"].strip('"').strip(), r["category"])
        for r in _rows(root / "replab2013_entities.tsv", ("entity_id", "query", "category"), report)
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

    examples, seen = [], set()
    gold = base / "goldstandard" / "goldstandard_polarity.dat"
    for r in _rows(gold, ("entity_id", "tweet_id", "polarity"), report):
        key = (r["entity_id"], r["tweet_id"])
        label = r["polarity"].strip().lower()
        why = None
        if key in seen:
            why = "duplicate (entity_id, tweet_id)"
        elif label not in LABELS:
            why = f"unknown label {r['polarity']!r}"
        elif key not in info:
            why = "no tweet_info row"
        elif r["entity_id"] not in entities:
            why = "unknown entity"
        elif language and info[key]["language"].upper() != language.upper():
            why = f"language not {language.upper()}"
        elif not texts.get(key, "").strip():
            why = "empty or missing text"
        if why:
            report.dropped[why] += 1
            continue
        seen.add(key)
        meta = info[key]
        report.near_duplicates += meta["is_near_duplicate_of"] not in ("", "-1")
        name, category = entities[r["entity_id"]]
        try:
            timestamp = int(meta["timestamp"])
        except ValueError:
            timestamp = None
        examples.append(Example(texts[key], label, name, r["entity_id"], category, timestamp, r["tweet_id"]))
    report.kept = len(examples)
    return examples, report


def load_table(path: str | Path) -> tuple[list[Example], LoadReport]:
    """Read a CSV (header row) or JSONL file with text, label and an optional entity."""
    path, report = Path(path), LoadReport()
    content = _read_text(path, report)
    if path.suffix.lower() in JSONL_SUFFIXES:
        records = []
        for record in iter_jsonl(content.splitlines()):
            if record is None:
                report.dropped["line is not a JSON object"] += 1
            else:
                records.append(record)
    else:
        reader = csv.DictReader(io.StringIO(content, newline=""))
        if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
            raise DataError(f"{path}: expected columns text,label[,entity], found {reader.fieldnames}")
        records = list(reader)
    examples = []
    for record in records:
        text, label, entity = record.get("text"), record.get("label"), record.get("entity")
        label = label.strip().lower() if isinstance(label, str) else None
        if not isinstance(text, str) or not text.strip():
            report.dropped["empty or missing text"] += 1
        elif label not in LABELS:
            report.dropped[f"unknown label {record.get('label')!r}"] += 1
        else:
            examples.append(Example(text, label, entity if isinstance(entity, str) and entity.strip() else None))
    report.kept = len(examples)
    return examples, report


def load(source: str | Path, split: str = "training", language: str | None = "EN") -> tuple[list[Example], LoadReport]:
    """Load a RepLab root directory or a CSV / JSONL file."""
    source = Path(source)
    if source.is_dir():
        return load_replab(source, split, language)
    if not source.exists():
        raise DataError(f"{source}: no such file or directory")
    return load_table(source)


def split_by_time(examples: Sequence[Example], val_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out the latest ``val_fraction`` of each entity's tweets (seeded shuffle where no time is known)."""
    groups: dict[str | None, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[ex.entity_id or ex.entity].append(ex)
    rng = random.Random(seed)
    train, val = [], []
    for key in sorted(groups, key=str):
        group = groups[key]
        if all(ex.timestamp is not None for ex in group):
            group = sorted(group, key=lambda ex: (ex.timestamp, ex.tweet_id or ""))
        else:
            group = list(group)
            rng.shuffle(group)
        cut = len(group) - round(len(group) * val_fraction)
        train += group[:cut]
        val += group[cut:]
    return train, val
