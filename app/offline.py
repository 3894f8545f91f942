"""Offline classification of a file of tweets (CSV or JSONL in, JSONL out), without HTTP."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from tqdm import tqdm

from .classifier import Classifier
from .errors import AppError
from .jsonl import READ_AS_JSONL, iter_jsonl
from .text import visible

CHUNK = 64


# A record's errors, in the words bulk/ and model_build/ use too.
EMPTY_TEXT, NOT_JSON, NOT_STRING = "empty or missing text", "line is not a JSON object", "text is not a string"
SURPLUS = "more fields than the header"
SURPLUS_KEY = object()  # where csv.DictReader puts a row's fields beyond the header's
ERROR_KEY = object()  # where the reader puts why a record could not be read: no field name of the user's can be it
_NAME = re.compile(r"[A-Za-z_][\w.-]{0,39}")


def text_error(text: object, max_chars: int) -> str | None:
    """Why a text cannot be classified (missing, blank or of only invisible characters, not a string, over
    ``max_chars``: MAX_TEXT_CHARS, as the API's 413), or None."""
    if text is not None and not isinstance(text, str):  # a JSON number, list or object
        return NOT_STRING
    if not (isinstance(text, str) and visible(text)):
        return EMPTY_TEXT
    return f"text longer than {max_chars} characters (MAX_TEXT_CHARS)" if len(text) > max_chars else None


def describe_columns(names: Iterable[object]) -> str:
    """Column names for an error message: those that look like names; the others (a header row that is a tweet,
    say) only counted, so that no tweet text reaches a message."""
    names = [str(n) for n in names]
    shown = [n for n in names if _NAME.fullmatch(n)]
    hidden = len(names) - len(shown)
    return ", ".join(shown + ([f"{hidden} more not shown (not a column name)"] if hidden else [])) or "none"


def describe_header(names: Sequence[str] | None, known: Iterable[str]) -> str:
    """A CSV header row for an error message: the names among ``known`` (matched without case or surrounding spaces, so
    that a 'Text' column is shown), the others only counted, since in a file without a header row they are a tweet's
    words; with a word on names that differ from the expected ones in case, and on a file that is not comma-separated."""
    names, known = list(names or ()), set(known)
    shown = [n if n in known else repr(n) for n in names if n.strip().lower() in known]
    hidden = len(names) - len(shown)
    listed = sorted(known)
    only = f"{', '.join(listed[:-1])} and {listed[-1]}" if len(listed) > 1 else listed[0]
    found = ", ".join(shown + ([f"{hidden} other{'s' * (hidden > 1)} (a name other than {only} is not shown: without a "
                                "header row it is a tweet's)"] if hidden else []))
    if any(n not in known for n in shown):  # quoted
        found += "; column names are matched exactly, in lower case"
    if len(names) == 1 and any(sep in names[0] for sep in ";\t|"):
        found += "; one column, that looks separated by ';', tabs or '|': a CSV here is comma-separated"
    return found or "none"


def repeated_columns(names: Sequence[str] | None, read: Iterable[str]) -> str | None:
    """Why a CSV header cannot be read, where it names a column read more than once (the csv module would keep the
    last, silently), else None."""
    names = list(names or ())
    twice = sorted({n for n in read if names.count(n) > 1})
    return f"column {', '.join(twice)} appears more than once in the header: give each column once" if twice else None


# The longest CSV field read (the csv module's default is 131,072 characters): four times MAX_TEXT_CHARS's highest
# value, so that a text over MAX_TEXT_CHARS is its record's error, not the file's; a longer field is an unclosed quote.
FIELD_CHARS = 1 << 22

# A file with NUL in its first SNIFF bytes is not text (as git tells binary files): refused with NOT_TEXT.
SNIFF = 8000
NOT_TEXT = "not a text file: it holds NUL bytes (compressed, a spreadsheet, or UTF-16?); give UTF-8 CSV or JSONL"


def read_records(path: Path) -> Iterator[dict]:
    """Records with at least 'text' (and optionally 'entity'); malformed JSONL lines and CSV rows with more fields
    than the header become errors."""
    with path.open("rb") as raw:  # opened once: a pipe (/dev/stdin, <(zcat ...)) can be read only once
        if b"\0" in raw.peek(SNIFF)[:SNIFF]:
            raise AppError(f"{path}: {NOT_TEXT}")
        fh = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")  # -sig: Excel's CSV's BOM
        if path.suffix.lower() in READ_AS_JSONL:
            for record in iter_jsonl(fh):
                yield record if record is not None else {ERROR_KEY: NOT_JSON}
        else:
            # strict: a quote inside a quoted field that is not doubled (an unclosed quote that closes on a later
            # row, which would merge the rows between) or a quote still open at the end is an error, not a merge.
            csv.field_size_limit(max(csv.field_size_limit(), FIELD_CHARS))
            reader = csv.DictReader(fh, restkey=SURPLUS_KEY, strict=True)
            try:
                if not reader.fieldnames or "text" not in reader.fieldnames:
                    raise AppError(f"{path}: a CSV needs a header row with a 'text' column, found "
                                   f"{describe_header(reader.fieldnames, ('text', 'entity'))}")
                if why := repeated_columns(reader.fieldnames, ("text", "entity")):
                    raise AppError(f"{path}: {why}")
                for record in reader:  # a row cut by an unquoted comma: its fields are pieces of the tweet
                    yield {ERROR_KEY: SURPLUS} if SURPLUS_KEY in record else record
            except csv.Error as exc:  # an unclosed quote ran on, or a field over the csv module's size limit
                line = reader.reader.line_num  # of the file, header included (DictReader's counts whole rows only)
                raise AppError(f"{path}: {exc} by file line {line} (an unclosed quote on it or before it?)") from None


def record_error(record: dict, max_chars: int) -> str | None:
    """Why a record cannot be classified, or None."""
    error = text_error(record.get("text"), max_chars)
    entity = record.get("entity")
    if error is None and entity is not None and not isinstance(entity, str):
        return "entity is not a string"
    return error


# What a result line says: an input field of one of these names is written as input_<name> (as bulk/ does).
OUTPUT_FIELDS = ("line", "label", "scores", "related", "about", "error")


def _kept(record: dict) -> dict:
    """A record's fields as written beside its result: all but the text (and the reader's own), one named like an
    output as ``input_<name>``."""
    return {f"input_{k}" if k in OUTPUT_FIELDS else k: v for k, v in record.items()
            if k != "text" and k is not ERROR_KEY}


def _json_line(result: dict) -> str:
    """A result as one JSON line, UTF-8 as written; with JSON's \\u escapes where a field copied from the input holds a
    lone surrogate (a JSON escape such as \\ud800 decodes to one; UTF-8 cannot hold it)."""
    line = json.dumps(result, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(result)
    return line + "\n"


def classify_file(classifier: Classifier, source: Path, out: IO[str], max_chars: int, progress: bool = True) -> dict:
    """Write one JSON line per input record, in order: its fields except the text (one named like an output as
    ``input_<name>``), plus label, scores, related and about, or the error that kept it from being classified.
    A file none of whose lines is a JSON object, or none of whose records has a 'text' field, is refused."""
    counts = {"classified": 0, "errors": 0}
    pending: list[tuple[int, dict]] = []
    fields_seen: dict[str, None] = {}
    objects = 0  # records read as such (all but JSONL lines that are not a JSON object)
    held: list[str] = []  # error lines before the first record with a 'text' field: a file refused writes nothing

    def flush() -> None:
        if not pending:
            return
        predictions = classifier.classify([r["text"] for _, r in pending], [r.get("entity") for _, r in pending])
        for (line, record), p in zip(pending, predictions):
            out.write(_json_line({"line": line, **_kept(record), **p.to_dict()}))
        counts["classified"] += len(pending)
        pending.clear()

    records = read_records(source)
    for line, record in enumerate(tqdm(records, unit="tweet", disable=not progress, file=sys.stderr), 1):
        fields_seen.update(dict.fromkeys(k for k in record if k is not ERROR_KEY))
        if held and "text" in fields_seen:
            out.write("".join(held))
            held.clear()
        objects += record.get(ERROR_KEY) != NOT_JSON
        error = record.get(ERROR_KEY) or record_error(record, max_chars)
        if error:
            flush()
            row = _json_line({"line": line, **_kept(record), "error": error})
            (out.write if "text" in fields_seen else held.append)(row)
            counts["errors"] += 1
            continue
        pending.append((line, record))
        if len(pending) >= CHUNK:
            flush()
    flush()
    if counts["errors"] and not objects:
        raise AppError(f"{source}: no line is a JSON object (JSONL: one object per line)")
    if fields_seen and "text" not in fields_seen:
        raise AppError(f"{source}: no record has a 'text' field (fields: {describe_columns(fields_seen)})")
    out.write("".join(held))  # records with no field at all ({}), each that record's error
    return counts


def check_input(source: Path) -> None:
    """Refuse an input that is not there or is a folder (checked before a model is loaded; a pipe is not opened)."""
    if not source.exists():
        raise AppError(f"{source}: No such file or directory")
    if source.is_dir():
        raise AppError(f"{source} is a folder: give a CSV or JSONL file")


# A descriptor the shell set up (``/dev/stdout`` of ``> file`` or ``>> file``, ``/dev/fd/3``), which a rename would
# replace: written as it is.
_DESCRIPTOR = re.compile(r"/dev/(stdout|stderr|fd/\d+)|/proc/(self|\d+)/fd/\d+")


def _in_place(out: Path) -> bool:
    """Whether ``--out`` is written as it is, as the results come, rather than replaced: a pipe, a terminal or a device,
    or a descriptor the shell set up (:data:`_DESCRIPTOR`)."""
    return bool(_DESCRIPTOR.fullmatch(str(out))) or (out.exists() and not (out.is_file() or out.is_dir()))


def check_output(out: Path, source: Path) -> None:
    """Refuse an output path that cannot be written, or that is the input (checked before a model is loaded)."""
    target = Path(os.path.realpath(out))
    if target.is_file() and source.is_file() and target.samefile(source):
        raise AppError(f"{out} is the input file: give another --out")
    if _in_place(out):
        return
    if not target.parent.is_dir():
        raise AppError(f"{out}: folder {target.parent} does not exist")
    if target.is_dir():
        raise AppError(f"{out} is a folder: give a file name")


def classify_into(classifier: Classifier, source: Path, out: Path, max_chars: int, progress: bool = True) -> dict:
    """:func:`classify_file` into the file ``out`` (:func:`check_output`), written whole or not at all: into a file
    of this process's own beside it, synced, then renamed into place (two runs writing the same ``out`` do not mix
    their lines). A symlink's target is written, not the link replaced; a pipe, a device or a descriptor the shell set
    up is written as it is, appended to (``/dev/stdout`` of a shell's ``>> file`` keeps what the file held)."""
    if _in_place(out):
        with out.open("a", encoding="utf-8") as stream:
            return classify_file(classifier, source, stream, max_chars, progress)
    out = Path(os.path.realpath(out))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")  # one left by a killed run of this pid is written over
    try:
        with tmp.open("w", encoding="utf-8") as stream:
            counts = classify_file(classifier, source, stream, max_chars, progress)
            stream.flush()
            os.fsync(stream.fileno())
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return counts
