"""Point 5 (and the reliability runs): gunicorn under a closed-loop load generator on loopback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from .loadgen import LoadSpec, run_load
from .server import serve

SOAK_WARMUP = 60.0  # seconds of a soak before its memory baseline


def load_points(bundle: Path, bodies: Sequence[bytes], workers: Sequence[int], clients: Sequence[int],
                seconds: float, cores: int) -> list[dict]:
    """Tweets per second and latency percentiles at each client count, for each worker count; interpreter
    threads per worker = cores / workers; worker memory at the end of each worker count's runs."""
    rows = []
    for w in workers:
        tflite_threads = max(1, cores // w)
        with serve(bundle, workers=w, threads=max(clients), tflite_threads=tflite_threads) as service:
            run_load(LoadSpec(service.port, clients=w, seconds=2), bodies)  # warm-up
            for c in clients:
                result = run_load(LoadSpec(service.port, clients=c, seconds=seconds), bodies)
                rows.append({"workers": w, "tflite_threads": tflite_threads, "ready_seconds": service.ready_seconds,
                             **result, "worker_rss_mb": service.worker_rss_mb()})
    return rows


def soak(bundle: Path, bodies: Sequence[bytes], workers: int, clients: int, seconds: float, sample_every: float,
         cores: int) -> dict:
    """Constant load for ``seconds`` (more than SOAK_WARMUP); workers' resident memory sampled throughout, compared
    with the level right after SOAK_WARMUP seconds."""
    samples = []
    with serve(bundle, workers=workers, threads=max(4, clients), tflite_threads=max(1, cores // workers)) as service:
        started = time.perf_counter()
        results = []
        while (elapsed := time.perf_counter() - started) < seconds:
            spec = LoadSpec(service.port, clients=clients, seconds=min(sample_every, seconds - elapsed))
            results.append(run_load(spec, bodies))
            samples.append({"t": round(time.perf_counter() - started, 1), "worker_rss_mb": service.worker_rss_mb(),
                            "master_rss_mb": service.master_rss_mb()})
    after_warmup = next(s for s in samples if s["t"] >= SOAK_WARMUP)
    base, end = sum(after_warmup["worker_rss_mb"]), sum(samples[-1]["worker_rss_mb"])
    return {
        "workers": workers, "clients": clients, "seconds": seconds, "warmup_seconds": SOAK_WARMUP,
        "requests": sum(r["requests"] for r in results),
        "server_errors": sum(r["server_errors"] for r in results),
        "connection_errors": sum(sum(r["connection_errors"].values()) for r in results),
        "p99_ms_worst_interval": max((r["p99_ms"] for r in results if r["p99_ms"] is not None), default=None),
        "rss_after_warmup_mb": round(base, 1), "rss_end_mb": round(end, 1),
        "rss_drift": round(end / base - 1, 4), "samples": samples,
    }
