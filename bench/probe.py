"""One bundle in a fresh edge process: load time, per-tweet latency and peak resident memory.

    python -m bench.probe BUNDLE TWEETS.jsonl --threads 1 --count 300   (prints one JSON line)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from app.arguments import whole_number
from app.bundle import Bundle
from app.classifier import Classifier
from app.jsonl import iter_jsonl


def peak_rss_mb() -> float:
    """This process's peak resident memory since exec (VmHWM; ru_maxrss would include the forking parent's)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    return round(kb / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("tweets", help="JSONL with text and entity")
    p.add_argument("--threads", type=whole_number(1, 64), default=1)
    p.add_argument("--count", type=whole_number(1), default=300)
    args = p.parse_args(argv)
    with open(args.tweets, encoding="utf-8") as fh:
        tweets = [t for _, t in zip(range(args.count), iter_jsonl(fh))]
    started = time.perf_counter()
    bundle = Bundle.load(args.bundle)
    classifier = Classifier(bundle, threads=args.threads)
    load_seconds = time.perf_counter() - started
    for t in tweets[:20]:
        classifier.classify([t["text"]], [t.get("entity")])
    seconds = []
    for t in tweets:
        t0 = time.perf_counter()
        classifier.classify([t["text"]], [t.get("entity")])
        seconds.append(time.perf_counter() - t0)
    ms = np.asarray(seconds) * 1000
    print(json.dumps({
        "bundle": str(args.bundle), "quantization": bundle.quantization, "model_bytes": bundle.model_bytes,
        "threads": args.threads, "tweets": len(tweets), "load_seconds": round(load_seconds, 3),
        "median_ms": round(float(np.median(ms)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "peak_rss_mb": peak_rss_mb(),
        "runtime": f"{classifier.runtime.name} {classifier.runtime.version}",
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
