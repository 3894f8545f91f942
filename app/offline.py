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
# A record's errors, in the words bulk/ and model_build/ use too.
EMPTY_TEXT, NOT_JSON = "empty or missing text", "line is not a JSON object"


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
                yield record if record is not None else {"_error": NOT_JSON}
        else:
            reader = csv.DictReader(fh)
            try:
                if not reader.fieldnames or "text" not in reader.fieldnames:
                    raise InputError(f"{path}: a CSV needs a header row with a 'text' column, found "
                                     f"{reader.fieldnames}")
                yield from reader
            except csv.Error as exc:  # a field over the csv module's size limit: an unclosed quote ran on
                line = reader.reader.line_num  # of the file, header included (DictReader's counts whole rows only)
                raise InputError(f"{path}: {exc} by file line {line} (an unclosed quote on it or before it?)") from None


def record_error(record: dict) -> str | None:
    """Why a record cannot be classified, or None."""
    text, entity = record.get("text"), record.get("entity")
    if not (isinstance(text, str) and text.strip()):
        return EMPTY_TEXT
    if entity is not None and not isinstance(entity, str):
        return "entity is not a string"
    return None


# What a result line says: an input field of one of these names is written as input_<name> (as bulk/ does).
OUTPUT_FIELDS = ("line", "label", "scores", "related", "about", "error")


def classify_file(classifier: Classifier, source: Path, out: IO[str], progress: bool = True) -> dict:
    """Write one JSON line per input record, in order: its fields except the text (one named like an output as
    ``input_<name>``), plus label, scores, related and about."""
    counts = {"classified": 0, "errors": 0}
    pending: list[tuple[int, dict]] = []

    def flush() -> None:
        if not pending:
            return
        predictions = classifier.classify([r["text"] for _, r in pending], [r.get("entity") for _, r in pending])
        for (line, record), p in zip(pending, predictions):
            fields = {f"input_{k}" if k in OUTPUT_FIELDS else k: v for k, v in record.items() if k != "text"}
            out.write(json.dumps({"line": line, **fields, **p.to_dict()}, ensure_ascii=False) + "\n")
        counts["classified"] += len(pending)
        pending.clear()

    records = read_records(source)
    for line, record in enumerate(tqdm(records, unit="tweet", disable=not progress, file=sys.stderr), 1):
        error = record.get("_error") or record_error(record)
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
