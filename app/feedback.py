"""Corrections collected on the device (opt-in, ``FEEDBACK_FILE``): one JSON line per correction, appended to a
local JSONL file that the build side reads as training data (text, label, entity, related; other fields ignored)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from prometheus_client import Counter

from .jsonl import JSONL_SUFFIXES
from .validation import ApiError, ErrorCode

log = logging.getLogger(__name__)
# O_NONBLOCK: a FIFO put there fails to open at once (no reader) instead of blocking; a file ignores it
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NO_LABEL = "none"  # the feedback counter's label for a correction without one


class Outcome(str, Enum):
    """The feedback counter's ``outcome`` label."""

    STORED = "stored"
    FULL = "full"  # FEEDBACK_MAX_BYTES reached
    FAILED = "failed"  # the disk refused the write


@dataclass(frozen=True)
class Correction:
    """What a user says a tweet's label is (and, when given, whether it is about the entity); a tweet not about the
    entity may have no label."""

    text: str
    entity: str
    label: str | None
    related: bool | None = None

    @property
    def counted_as(self) -> str:
        """The feedback counter's ``label``: the label, or ``none``."""
        return self.label or NO_LABEL

    def line(self, model: dict) -> bytes:
        """The JSON line: ASCII only, so no character of the text (U+2028, NEL, ...) can split the line."""
        record = {"text": self.text, "entity": self.entity, "label": self.label}
        if self.related is not None:
            record["related"] = self.related
        record.update(time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), model=model)
        return (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


def check_file(path: Path) -> str | None:
    """Why ``path`` cannot be the feedback file, or None. Its name must end as JSONL (the build side's loader goes by
    the suffix) and it must open for appending (created, mode 0600, when missing)."""
    if path.suffix.lower() not in JSONL_SUFFIXES:
        return f"must end in {' or '.join(JSONL_SUFFIXES)} (the build side reads it as JSONL), got {str(path)!r}"
    try:
        os.close(_open(path))
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    return None


def _open(path: Path) -> int:
    """A descriptor appending to ``path`` (created, mode 0600, when missing); OSError for a FIFO, said before opening
    (one with a reader would open and pass the lines on, one without fails obscurely) and after (put there since)."""
    if path.is_fifo():
        raise OSError(errno.EINVAL, "a FIFO (named pipe), not a file")
    fd = os.open(path, _FLAGS, 0o600)
    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "a FIFO (named pipe), not a file")
    return fd


class FeedbackLog:
    """Appends corrections to one JSONL file, up to ``max_bytes``, counting each outcome in ``counter``.

    Each line is written by one ``os.write`` on an ``O_APPEND`` descriptor: on a local file system the kernel
    moves the offset to the end and writes the whole buffer in one step, so lines from gunicorn's worker processes
    never interleave or overwrite each other. A thread lock serialises this process's appends (also where ``flock``
    is emulated per process, as on NFS), and an exclusive ``flock`` held from the size check to the write makes the
    limit exact across workers (a line that would pass it is refused, nothing written); a line that fails to be
    written or synced is cut back off. The file is opened for each append, so deleting it takes effect at once: the
    next correction starts a new file. Each line is fsynced before the answer: corrections are rare and cost a
    person's attention, and a device on an SD card is often switched off at the plug.
    """

    def __init__(self, path: Path, max_bytes: int, model: dict, counter: Counter):
        self.path, self.max_bytes, self._model, self._counter = path, max_bytes, model, counter
        self._lock = threading.Lock()

    def append(self, correction: Correction) -> None:
        """Store one correction; ApiError 507 when the file is full or the disk is, 500 for another disk error."""
        try:
            outcome = self._store(correction.line(self._model))
        except OSError as exc:
            self._counter.labels(Outcome.FAILED.value, correction.counted_as).inc()
            log.error("feedback: cannot write %s: %s", self.path, exc.strerror)
            if exc.errno in _NO_SPACE:
                raise ApiError(507, ErrorCode.INSUFFICIENT_STORAGE, "the device has no room for the correction; "
                               "nothing was stored") from None
            raise ApiError(500, ErrorCode.STORAGE_ERROR, "the correction could not be written to the device's storage") from None
        self._counter.labels(outcome.value, correction.counted_as).inc()
        if outcome is Outcome.FULL:
            raise ApiError(507, ErrorCode.FEEDBACK_FULL, f"this correction would take the feedback file over its limit of "
                           f"{self.max_bytes} bytes (FEEDBACK_MAX_BYTES); nothing was stored")

    def _store(self, line: bytes) -> Outcome:
        with self._lock:
            fd = _open(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor is closed
                size = os.fstat(fd).st_size
                if size + len(line) > self.max_bytes:
                    return Outcome.FULL
                try:
                    if os.write(fd, line) != len(line):  # the disk filled up mid-line
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    os.fsync(fd)
                    if size == 0:  # a new file: its directory entry must survive a power cut too
                        _fsync_dir(self.path.parent)
                except OSError:
                    with contextlib.suppress(OSError):  # cut a part-written or unsynced line back off
                        os.ftruncate(fd, size)
                    raise
                return Outcome.STORED
            finally:
                os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
