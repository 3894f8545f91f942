"""Smoke test of a running service from the host: /readyz, one single and one batch classification whose
labels must equal this (x86) machine's own run of the same bundle, every worker classifying (one that hangs after
fork under QEMU must be replaced and its successor serve), and /metrics counting them.

    python deploy/arm64_smoke.py --url http://127.0.0.1:18080 --token TOKEN --bundle bundles/default
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.bundle import Bundle  # noqa: E402
from app.classifier import Classifier  # noqa: E402
from bench.server import DIRECT, metric_value, wait_ready  # noqa: E402

# Written for this check (not RepLab tweets): clear and mixed reputation signals.
READY_TIMEOUT = 900  # seconds: a worker under QEMU takes minutes to load the bundle, one stuck after fork more
TWEETS = [
    {"text": "Absolutely love my new car, best purchase I have made in years!", "entity": "BMW"},
    {"text": "Terrible service at the branch today, waited two hours and nobody helped", "entity": "Santander"},
    {"text": "The band announced three more concert dates in Europe for next spring", "entity": "Coldplay"},
    {"text": "Recall: faulty airbags in 200,000 vehicles, owners asked to contact dealers", "entity": "Toyota"},
]


def call(url: str, token: str | None, body: dict | None = None, timeout: float = 600) -> tuple[int, bytes]:
    """A request with the bearer token (none where None); its status and body."""
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with DIRECT.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--bundle", default="bundles/default")
    p.add_argument("--workers", type=int, default=2, help="the service's WORKERS: each must classify a tweet")
    args = p.parse_args()
    failures = []

    try:
        waited = wait_ready(args.url, READY_TIMEOUT, interval=2)
    except RuntimeError as exc:
        raise SystemExit(f"smoke: {exc}") from None
    print(f"smoke: /readyz 200 after {waited:.0f} s of waiting")
    reference = [p.label for p in Classifier(Bundle.load(args.bundle), threads=1).classify(
        [t["text"] for t in TWEETS], [t["entity"] for t in TWEETS])]

    status, body = call(f"{args.url}/classify", args.token, TWEETS[0])
    single = json.loads(body) if status == 200 else {}
    print(f"smoke: single -> {status} {single.get('label')} (x86: {reference[0]})")
    if status != 200 or single.get("label") != reference[0]:
        failures.append(f"single: {status} {body[:200]!r}")

    status, body = call(f"{args.url}/classify", args.token, {"tweets": TWEETS})
    batch = [r.get("label") for r in json.loads(body).get("results", [])] if status == 200 else []
    print(f"smoke: batch -> {status} {batch} (x86: {reference})")
    if status != 200 or batch != reference:
        failures.append(f"batch: {status} {body[:200]!r}")

    status, _ = call(f"{args.url}/classify", None, TWEETS[0])
    print(f"smoke: without the token -> {status}")
    if status != 401:
        failures.append(f"no token: {status}, expected 401")

    # One tweet a connection until every worker has classified some, by the service's own count: a worker stuck
    # after fork takes none, and is replaced by gunicorn after about 2 x TIMEOUT (gunicorn_conf.py).
    started, sent, serving = time.monotonic(), 0, set()
    while len(serving) < args.workers and time.monotonic() - started < READY_TIMEOUT:
        call(f"{args.url}/classify", args.token, TWEETS[sent % len(TWEETS)])
        sent += 1
        status, body = call(f"{args.url}/v1/stats", args.token)
        serving = {w["pid"] for w in json.loads(body)["workers"] if w["tweets_last_60m"] > 0} if status == 200 else set()
    print(f"smoke: {len(serving)} of {args.workers} workers classified tweets, after {sent} more requests and "
          f"{time.monotonic() - started:.0f} s")
    if len(serving) < args.workers:
        failures.append(f"workers: {len(serving)} of {args.workers} classified tweets within {READY_TIMEOUT} s")

    status, body = call(f"{args.url}/metrics", args.token)
    text = body.decode()
    tweets_counted = metric_value(text, "reputation_predictions_total")
    expected = 1 + len(TWEETS) + sent  # the single, the batch and one a connection (not the one without the token)
    print(f"smoke: /metrics -> {status}, reputation_predictions_total {tweets_counted:g}")
    if status != 200 or tweets_counted != expected:
        failures.append(f"metrics: {status}, {tweets_counted} tweets counted, expected {expected}")

    for f in failures:
        print(f"smoke: FAILED {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
