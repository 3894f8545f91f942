"""JSONL, as every command reads it: which file names hold it, and its records."""

from __future__ import annotations

import json
from typing import Iterable, Iterator

JSONL_SUFFIXES = (".jsonl", ".ndjson")
READ_AS_JSONL = (*JSONL_SUFFIXES, ".json")  # input files read as JSONL (offline, bulk, the build side)


def iter_jsonl(lines: Iterable[str]) -> Iterator[dict | None]:
    """The JSON objects of JSONL lines; None for a non-blank line that is not one."""
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, an integer over 4,300 digits, nested too deeply
            record = None
        yield record if isinstance(record, dict) else None
