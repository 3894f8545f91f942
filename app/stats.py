"""What the service has been doing (GET /v1/stats, the page's live panel), from its own Prometheus metrics.

Counts over the last 5 and 60 minutes need time buckets that every gunicorn worker fills and any worker
can read. They are Prometheus gauges in a ring of 60 one-minute slots per process (``RecentCounts``): a
slot holds the Unix minute it counts and that minute's tweets per label, answered classification
requests and error responses; the first count in a new minute zeroes the slot it reuses. In multiprocess mode the
gauges are kept per process (``multiprocess_mode="all"``), so whichever worker answers /v1/stats reads
every worker's ring, dead workers' included, from the metrics directory and sums the slots whose minute
is in the window: exact to the minute, a fixed number of series per process, no background thread and no
second store. Sampling the cumulative counters into a ring inside each worker was the alternative; it
only knows what the answering worker happened to sample, and nothing before its first /v1/stats call.
The ring is left out of /metrics: Prometheus takes its own rates of the counters.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import Metric

SLOTS = 60
WINDOWS = (5, 60)  # minutes; a window is the current minute and the ones before it
RING_PREFIX = "reputation_recent_"
# The metrics read here, named here for app/metrics.py too.
LATENCY = "reputation_http_request_duration_seconds"
ERRORS = "reputation_errors"
RESIDENT = "reputation_worker_resident_memory_bytes"
STARTED = "reputation_start_time_seconds"


class RecentCounts:
    """This process's ring of per-minute counts (see the module docstring). Thread-safe."""

    def __init__(self, registry: CollectorRegistry | None):
        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(RING_PREFIX + name, doc, labels, registry=registry, multiprocess_mode="all")

        self.minute = gauge("minute", "The Unix minute (time // 60) a ring slot counts.", ["slot"])
        self.tweets = gauge("tweets", "Tweets classified in a ring slot's minute, by label.", ["label", "slot"])
        self.requests = gauge("requests", "Classification requests answered in a ring slot's minute.", ["slot"])
        self.errors = gauge("errors", "Error responses in a ring slot's minute.", ["slot"])
        self._minutes: list[int | None] = [None] * SLOTS
        self._labels: set[str] = set()
        self._lock = threading.Lock()

    def add(self, tweets: Mapping[str, int] | None = None, requests: int = 0, errors: int = 0,
            now: float | None = None) -> None:
        """Count tweets by label, requests and errors in the current minute."""
        minute = int((time.time() if now is None else now) // 60)
        with self._lock:
            slot = str(minute % SLOTS)
            if self._minutes[minute % SLOTS] != minute:  # a new minute: zero the slot, then claim it
                for label in self._labels:
                    self.tweets.labels(label, slot).set(0)
                self.requests.labels(slot).set(0)
                self.errors.labels(slot).set(0)
                self.minute.labels(slot).set(minute)
                self._minutes[minute % SLOTS] = minute
            for label, n in (tweets or {}).items():
                self._labels.add(label)
                self.tweets.labels(label, slot).inc(n)
            if requests:
                self.requests.labels(slot).inc(requests)
            if errors:
                self.errors.labels(slot).inc(errors)


def without_ring(families: Iterable[Metric]) -> list[Metric]:
    """The metric families less the ring's, for /metrics."""
    return [f for f in families if not f.name.startswith(RING_PREFIX)]


def _quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Estimate a quantile from cumulative histogram buckets (upper bound, count) as Prometheus's
    histogram_quantile does: linear within the bucket; the highest finite bound for the +Inf bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower


def service_stats(families: Iterable[Metric], labels: Sequence[str], now: float) -> dict:
    """The /v1/stats body: counts in the last 5 and 60 minutes, latency, errors and workers, all workers
    together. ``labels`` are the bundle's, listed even at zero. No tweet text is in any metric."""
    ring: dict[tuple[int, str], dict] = {}  # (pid, slot) -> minute and counts
    latency: Counter[float] = Counter()
    errors: dict[str, int] = {}
    resident: dict[int, float] = {}
    started = now
    for family in families:
        for s in family.samples:
            if family.name.startswith(RING_PREFIX):
                pid = int(s.labels.get("pid", os.getpid()))  # no pid label: a single process, this one
                cell = ring.setdefault((pid, s.labels["slot"]), {"tweets": Counter()})
                kind = family.name.removeprefix(RING_PREFIX)
                if kind == "tweets":
                    cell["tweets"][s.labels["label"]] += int(s.value)
                else:
                    cell[kind] = int(s.value)
            elif family.name == LATENCY and s.name.endswith("_bucket") and s.labels.get("endpoint") == "/classify" \
                    and s.labels.get("method") == "POST" and s.labels.get("status") == "200":  # not an OPTIONS
                latency[float(s.labels["le"])] += s.value
            elif family.name == ERRORS and s.name == ERRORS + "_total":
                errors[s.labels["code"]] = errors.get(s.labels["code"], 0) + int(s.value)
            elif family.name == RESIDENT:
                resident[int(s.labels.get("pid", os.getpid()))] = s.value
            elif family.name == STARTED:
                started = min(started, s.value)
    this_minute = int(now // 60)
    windows = {}
    for minutes in WINDOWS:
        cells = [c for c in ring.values() if "minute" in c and 0 <= this_minute - c["minute"] < minutes]
        tweets = Counter({label: 0 for label in labels})
        for c in cells:
            tweets.update(c["tweets"])
        seconds = max(1.0, now - max(started, (this_minute - minutes + 1) * 60))  # 1 s at least: no rate of 0 s
        requests = sum(c.get("requests", 0) for c in cells)
        windows[f"last_{minutes}m"] = {
            "seconds": round(seconds, 1), "tweets": dict(tweets), "requests": requests,
            "requests_per_second": round(requests / seconds, 3),
            "errors": sum(c.get("errors", 0) for c in cells),
        }
    hour = [(pid, c) for (pid, _), c in ring.items() if "minute" in c and 0 <= this_minute - c["minute"] < 60]
    buckets = sorted(latency.items())
    quantile = {f"p{round(q * 100)}": round(v * 1000, 2) for q in (0.5, 0.95) if (v := _quantile(q, buckets)) is not None}
    return {
        "time": round(now, 3),
        "uptime_seconds": round(now - started, 1),
        **windows,
        "latency_ms": {**quantile, "requests": int(buckets[-1][1]) if buckets else 0},
        "errors_since_start": {code: n for code, n in errors.items() if n},  # the counter's series start at 0
        "workers": [{"pid": pid, "resident_bytes": int(rss),
                     "tweets_last_60m": sum(sum(c["tweets"].values()) for p, c in hour if p == pid)}
                    for pid, rss in sorted(resident.items())],
    }
