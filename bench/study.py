"""Point 4: the study's table. Each bundle in a fresh edge process per thread count, alternating bundles
over repeats: file size, load time, median and p95 latency per tweet, peak resident memory."""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from model_build.data import Example

from .data import ROOT, request_bodies
from .server import edge_python


def write_tweets(tweets: Sequence[Example], path: Path) -> Path:
    """The tweets as JSONL for the edge processes (under build/, never committed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(body + b"\n" for body in request_bodies(tweets)))
    return path


def probe(bundle: Path, tweets_file: Path, threads: int, count: int) -> dict:
    out = subprocess.run([edge_python(), "-m", "bench.probe", str(bundle), str(tweets_file), "--threads", str(threads),
                          "--count", str(count)], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def study_table(bundles: Mapping[str, Path], tweets_file: Path, threads: Sequence[int], count: int, repeats: int) -> list[dict]:
    """One row per (bundle, threads): medians over ``repeats`` fresh processes. Names are 'model/variant'."""
    runs: dict[tuple[str, int], list[dict]] = {}
    for _ in range(repeats):
        for name, path in bundles.items():
            for t in threads:
                runs.setdefault((name, t), []).append(probe(path, tweets_file, t, count))
    rows = []
    for (name, t), results in runs.items():
        median = {k: round(statistics.median(r[k] for r in results), 3)
                  for k in ("load_seconds", "median_ms", "p95_ms", "peak_rss_mb")}
        rows.append({"model": name.rsplit("/", 1)[0], "quantization": results[0]["quantization"], "threads": t,
                     "model_bytes": results[0]["model_bytes"], "tweets": results[0]["tweets"], "repeats": len(results),
                     **median, "tweets_per_s": round(1000 / median["median_ms"], 1), "runtime": results[0]["runtime"]})
    return rows
