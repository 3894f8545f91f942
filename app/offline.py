"""Offline classification of a file of tweets (CSV or JSONL in, JSONL out), without HTTP."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator

from tqdm import tqdm

from .classifier import Classifier
from .errors import AppError

CHUNK = 64


class InputError(AppError):
    """An input file that cannot be read at all."""


JSONL_SUFFIXES = (".jsonl", ".ndjson")


def iter_jsonl(lines: Iterable[str]) -> Iterator[dict | None]:
    """The JSON objects of JSONL lines; None for a non-blank line that is not one."""
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        yield record if isinstance(record, dict) else None


def read_records(path: Path) -> Iterator[dict]:
    """Records with at least 'text' (and optionally 'entity'); malformed JSONL lines become errors."""
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        if path.suffix.lower() in JSONL_SUFFIXES:
            for record in iter_jsonl(fh):
                yield record if record is not None else {"_error": "line is not a JSON object"}
        else:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "text" not in reader.fieldnames:
                raise InputError(f"{path}: a CSV needs a header row with a 'text' column, found {reader.fieldnames}")
            yield from reader


# What a result line says: an input field of one of these names is written as input_<name> (as bulk/ does).
OUTPUT_FIELDS = ("line", "label", "scores", "related", "error")


def classify_file(classifier: Classifier, source: Path, out: IO[str], progress: bool = True) -> dict:
    """Write one JSON line per input record, in order: its fields except the text (one named like an output as
    ``input_<name>``), plus label, scores and related."""
    counts = {"classified": 0, "errors": 0}
    pending: list[tuple[int, dict]] = []

    def flush() -> None:
        if not pending:
            return
        predictions = classifier.classify([r["text"] for _, r in pending], [r.get("entity") or None for _, r in pending])
        for (line, record), p in zip(pending, predictions):
            fields = {f"input_{k}" if k in OUTPUT_FIELDS else k: v for k, v in record.items() if k != "text"}
            out.write(json.dumps({"line": line, **fields, **p.to_dict()}, ensure_ascii=False) + "\n")
        counts["classified"] += len(pending)
        pending.clear()

    records = read_records(source)
    for line, record in enumerate(tqdm(records, unit="tweet", disable=not progress, file=sys.stderr), 1):
        text = record.get("text")
        error = record.get("_error") or (None if isinstance(text, str) and text.strip() else "empty or missing text")
        if error:
            flush()
            out.write(json.dumps({"line": line, "error": error}) + "\n")
            counts["errors"] += 1
            continue
        pending.append((line, record))
        if len(pending) >= CHUNK:
            flush()
    flush()
    return counts
