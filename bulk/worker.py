"""What runs in each Spark Python worker: the bundle loaded once from SparkFiles, app's Classifier on Arrow batches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa

from app.bundle import Bundle
from app.classifier import Classifier
from app.offline import NOT_JSON, text_error

from .formats import CORRUPT

TEXT, ENTITY = "text", "entity"
LABEL, SCORES, RELATED, ABOUT, ERROR = "label", "scores", "related", "about", "error"
PREDICTED = (LABEL, SCORES, RELATED, ABOUT, ERROR)


@dataclass(frozen=True)
class Task:
    """What each task needs, pickled to the executors: names and settings, no path of the driver's."""

    archive: str                # the bundle's archive, unpacked by Spark under SparkFiles
    labels: tuple[str, ...]
    has_related: bool
    threads: int
    bucket: int
    max_batch: int
    max_chars: int              # MAX_TEXT_CHARS: a longer text is an error, as offline and in the API
    dropped: tuple[str, ...]    # input columns not written: the text unless asked for, Spark's corrupt-record column


_classifiers: dict[tuple, Classifier] = {}


def classifier(task: Task) -> Classifier:
    """This worker's classifier for the task's bundle: loaded and verified once per process, then reused."""
    key = (task.archive, task.threads, task.bucket, task.max_batch)
    if key not in _classifiers:
        from pyspark import SparkFiles

        # The tokenizer's thread pool, started on first use, gets the task's cores too (Spark runs tasks side by side).
        os.environ.setdefault("RAYON_NUM_THREADS", str(task.threads))
        bundle = Bundle.load(SparkFiles.get(task.archive))
        _classifiers[key] = Classifier(bundle, threads=task.threads, bucket=task.bucket, max_batch=task.max_batch)
    return _classifiers[key]


def classify_batches(task: Task, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The function given to ``mapInArrow``: each batch with its predictions (or the reason it has none)."""
    model = classifier(task)
    for batch in batches:
        yield annotate(task, model, batch)


def _column(batch: pa.RecordBatch, name: str) -> list:
    index = batch.schema.get_field_index(name)
    return batch.column(index).to_pylist() if index >= 0 else [None] * batch.num_rows


def annotate(task: Task, model: Classifier, batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch's kept columns, then label, scores (a struct by label), related and about (where the bundle has
    that head) and error: None for a classified row, else why it was not classified."""
    texts, entities = _column(batch, TEXT), _column(batch, ENTITY)
    corrupt = batch.schema.get_field_index(CORRUPT)  # the raw line, maybe not even UTF-8: only its presence is read
    unreadable = batch.column(corrupt).is_valid().to_pylist() if corrupt >= 0 else [False] * batch.num_rows
    errors = [NOT_JSON if bad else text_error(text, task.max_chars) for text, bad in zip(texts, unreadable)]
    rows = [i for i, error in enumerate(errors) if error is None]
    predictions = model.classify([texts[i] for i in rows], [entities[i] or None for i in rows]) if rows else []
    n = batch.num_rows
    labels, scores, related, about = [None] * n, {name: [None] * n for name in task.labels}, [None] * n, [None] * n
    for i, p in zip(rows, predictions):
        labels[i], related[i], about[i] = p.label, p.related, p.about
        for name in task.labels:
            scores[name][i] = p.scores[name]
    string = batch.schema.field(TEXT).type  # Spark's string type for this session (plain or large)
    failed = pa.array([error is not None for error in errors])
    kept = [i for i, name in enumerate(batch.schema.names) if name not in task.dropped]
    names = [batch.schema.names[i] for i in kept] + [LABEL, SCORES]
    arrays = [batch.column(i) for i in kept] + [
        pa.array(labels, string),
        pa.StructArray.from_arrays([pa.array(scores[name], pa.float64()) for name in task.labels],
                                   names=list(task.labels), mask=failed),
    ]
    if task.has_related:
        names += [RELATED, ABOUT]
        arrays += [pa.array(related, pa.float64()), pa.array(about, pa.bool_())]
    names.append(ERROR)
    arrays.append(pa.array(errors, string))
    return pa.RecordBatch.from_arrays(arrays, names=names)
