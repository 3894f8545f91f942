"""Side-by-side timing: the compared systems take turns on the same chunks of tweets (A B A B ...)."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping, Sequence


def alternate(systems: Mapping[str, Callable[[Sequence[int]], None]], chunks: Sequence[Sequence[int]]) -> dict:
    """Run every system on every chunk, rotating who goes first; tweets per second of each system per chunk,
    their medians, and the median over chunks of the first system's rate divided by each other's (``over``)."""
    names = list(systems)
    rates: dict[str, list[float]] = {n: [] for n in names}
    for k, chunk in enumerate(chunks):
        for name in names[k % len(names):] + names[: k % len(names)]:
            started = time.perf_counter()
            systems[name](chunk)
            rates[name].append(len(chunk) / (time.perf_counter() - started))
    return {
        "chunks": len(chunks), "tweets_per_chunk": len(chunks[0]) if chunks else 0,
        "tweets_per_s": {n: round(statistics.median(r), 2) for n, r in rates.items()},
        "first_over": over(rates, names[0]),
        "chunk_tweets_per_s": {n: [round(x, 2) for x in r] for n, r in rates.items()},
    }


def over(rates: Mapping[str, Sequence[float]], name: str) -> dict[str, float]:
    """The median over chunks of ``name``'s rate divided by each other system's in the same chunk."""
    return {n: round(statistics.median(a / b for a, b in zip(rates[name], r)), 3) for n, r in rates.items() if n != name}


def chunked(count: int, size: int, chunks: int | None = None) -> list[list[int]]:
    """``chunks`` chunks of ``size`` tweets walking round tweets 0..count-1 (default: each tweet once)."""
    order = [i % count for i in range(size * chunks)] if chunks else list(range(count))
    return [order[s:s + size] for s in range(0, len(order), size)]
