"""Prometheus metrics, per process or in multiprocess mode under gunicorn."""

from __future__ import annotations

import os
import time
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

from .config import MULTIPROC_ENV
from .errors import AppError
from .feedback import NO_LABEL, Outcome
from .stats import ERRORS, LATENCY, RESIDENT, STARTED, RecentCounts, without_ring
from .validation import ErrorCode

disable_created_metrics()  # no *_created series: the multiprocess mode has none, so both modes export the same

# Request latency spans a 1 ms health check to a 64-tweet batch of several hundred ms.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
INFERENCE_BUCKETS = (0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
TOKEN_BUCKETS = (8, 16, 24, 32, 40, 48, 64, 96, 128)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
ROUTE_KEY = "reputation.route"  # where the service leaves a request's route in its WSGI environ, for the access log


def method_label(method: str) -> str:
    """A request's method as a metric label: any other is "other" (a client chooses it: one series each would grow
    /metrics without end)."""
    return method if method in METHODS else "other"


class Relatedness(str, Enum):
    """The predictions counter's ``related`` label: the relatedness verdict at the bundle's threshold, or none."""

    RELATED = "related"
    UNRELATED = "unrelated"
    UNKNOWN = "unknown"  # the bundle has no relatedness head, or the tweet no entity for a pair model

    @classmethod
    def of(cls, about: bool | None) -> Relatedness:
        if about is None:
            return cls.UNKNOWN
        return cls.RELATED if about else cls.UNRELATED

    @classmethod
    def possible(cls, has_related: bool, pair_input: bool) -> list[Relatedness]:
        """The values a bundle's predictions can take: unknown without the head, or for a pair model's tweet
        without an entity."""
        return [cls.RELATED, cls.UNRELATED] * has_related + [cls.UNKNOWN] * (not has_related or pair_input)


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Metrics:
    """The service's metrics. With ``multiprocess_dir`` every worker writes there and any one exports all."""

    def __init__(self, multiprocess_dir: Path | None = None):
        named = os.environ.get(MULTIPROC_ENV)
        if multiprocess_dir is not None and (not named or Path(named) != Path(multiprocess_dir)):
            # prometheus-client writes its values where that variable, read when it was imported, says
            raise AppError(f"metrics directory {multiprocess_dir} is not {MULTIPROC_ENV} ({named or 'unset'}): set "
                           "that variable before the service starts")
        self.multiprocess_dir = multiprocess_dir
        self._memory_read_at = float("-inf")
        registry = None if multiprocess_dir else CollectorRegistry()
        self._registry = registry
        self.requests = Histogram(
            LATENCY, "HTTP request latency by endpoint and status.",
            ["endpoint", "method", "status"], buckets=REQUEST_BUCKETS, registry=registry)
        self.inference = Histogram(
            "reputation_inference_duration_seconds", "Tokenisation and model time of one request's tweets.",
            buckets=INFERENCE_BUCKETS, registry=registry)
        self.tokens = Histogram(
            "reputation_tweet_tokens", "Tokens per tweet, special tokens included.",
            buckets=TOKEN_BUCKETS, registry=registry)
        self.batch = Histogram(
            "reputation_batch_size", "Tweets per classification request.", buckets=BATCH_BUCKETS, registry=registry)
        self.predictions = Counter(
            "reputation_predictions", "Predicted labels, and whether the tweet was judged about the entity.",
            ["label", "related"], registry=registry)
        self.errors = Counter(ERRORS, "Error responses by error code.", ["code"], registry=registry)
        self.feedback = Counter(
            "reputation_feedback", "Corrections sent to POST /feedback that passed validation, by outcome and label.",
            ["outcome", "label"], registry=registry)
        self.resident = Gauge(
            RESIDENT, "Resident memory of each worker process.",
            registry=registry, multiprocess_mode="liveall")
        self.model_info = Gauge(
            "reputation_model_info", "The loaded bundle (value 1).", ["name", "version", "quantization", "runtime"],
            registry=registry, multiprocess_mode="livemax")
        self.model_bytes = Gauge(
            "reputation_model_file_bytes", "Size of the loaded model file.", ["name", "version"],
            registry=registry, multiprocess_mode="livemax")
        self.started = Gauge(STARTED, "Unix time the first worker started.",
                             registry=registry, multiprocess_mode="min")
        self.started.set(time.time())
        self.recent = RecentCounts(registry)

    def start_series(self, labels: Sequence[str], related: Sequence[Relatedness], feedback: bool) -> None:
        """Every series the counters can have, at 0 from the start, so that rate() and alerts see a first event."""
        for label in labels:
            for value in related:
                self.predictions.labels(label, value.value)
        for code in ErrorCode:
            if code.counted:
                self.errors.labels(code.value)
        for outcome in Outcome if feedback else ():
            for label in (*labels, NO_LABEL):
                self.feedback.labels(outcome.value, label)

    def observe_memory(self, max_age: float = 0.0) -> None:
        """Update this process's resident memory, unless it was read less than ``max_age`` seconds ago."""
        now = time.monotonic()
        if now - self._memory_read_at >= max_age:
            self._memory_read_at = now
            self.resident.set(_resident_bytes())

    def collect(self) -> list[Metric]:
        """Every metric family, all workers' in multiprocess mode."""
        if self.multiprocess_dir:
            return list(multiprocess.MultiProcessCollector(None, path=str(self.multiprocess_dir)).collect())
        return list(self._registry.collect())

    def export(self) -> bytes:
        """The text exposition of all metrics but the per-minute ring (app/stats.py)."""
        families = without_ring(self.collect())
        return generate_latest(SimpleNamespace(collect=lambda: families))
