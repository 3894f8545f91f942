"""Points 1-3 of the benchmark: overhead over the raw interpreter, sizing to the input, and the peers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from app.bundle import Bundle
from app.classifier import Classifier
from model_build.checkpoint import Checkpoint
from model_build.data import Example, with_polarity
from model_build.metrics import classification_metrics

from .alternate import alternate, chunked, over
from .data import request_bodies
from .loadgen import LoadSpec, run_load
from .peers import OnnxRuntimeInt8, Ours, PyTorchFloat32
from .server import ServiceFailed, serve

RAW = "raw interpreter"


def service_vs_raw(bundle_path: Path, tweets: Sequence[Example], chunk: int, chunks: int, threads: int) -> dict:
    """The interpreter alone at each tweet's exact token length (inputs prepared beforehand) against the whole
    service: HTTP on loopback, gunicorn with one worker, one client, one tweet per request. The classifier
    in process (tokenisation, length buckets, scores; no HTTP) and the service given 16 tweets per request run
    beside them to show where the time goes."""
    classifier = Classifier(Bundle.load(bundle_path), threads=threads)
    encodings = classifier.encoder.encode([t.text for t in tweets], [t.entity for t in tweets])
    inputs = [classifier.encoder.pad([e], len(e.ids)) for e in encodings]
    bodies = request_bodies(tweets)

    def raw(chunk):
        for i in chunk:
            classifier.invoke(inputs[i])

    def in_process(chunk):
        for i in chunk:
            classifier.classify([tweets[i].text], [tweets[i].entity])

    with serve(bundle_path, workers=1, tflite_threads=threads) as service:
        def send(requests: list[bytes]) -> None:
            """Each request once, one at a time; every answer must be a 200."""
            result = run_load(LoadSpec(service.port, max_requests=len(requests), seconds=3600), requests)
            if result["requests"] != len(requests) or set(result["status"]) != {"200"}:
                raise ServiceFailed(f"the service failed during the benchmark ({result['status']}, errors "
                                    f"{result['connection_errors']}): see the end of {service.log}")

        def served(chunk):
            send([bodies[i] for i in chunk])

        def served_batches(chunk, size=16):
            send([json.dumps({"tweets": [{"text": tweets[i].text, "entity": tweets[i].entity}
                                         for i in chunk[s:s + size]]}).encode()
                  for s in range(0, len(chunk), size)])

        result = alternate({"service": served, RAW: raw, "classifier in process": in_process,
                            "service, 16 tweets per request": served_batches}, chunked(len(tweets), chunk, chunks))
        result |= {"worker_rss_mb": service.worker_rss_mb(), "service_pss_mb": service.pss_mb(),
                   "ready_seconds": service.ready_seconds}
    rates = result["chunk_tweets_per_s"]
    over_raw = {n: over(rates, n)[RAW] for n in rates if n != RAW}  # each system's rate over the raw interpreter's
    return result | {"threads": threads, "over_raw": over_raw, "service_vs_raw": over_raw["service"]}


def dynamic_vs_fixed(bundle_path: Path, tweets: Sequence[Example], chunk: int, chunks: int, threads: int) -> dict:
    """The classifier at each tweet's length rounded to its bucket against every tweet padded to 128."""
    classifier = Classifier(Bundle.load(bundle_path), threads=threads)
    encodings = classifier.encoder.encode([t.text for t in tweets], [t.entity for t in tweets])
    result = alternate({
        "sized to the tweet": lambda c: [classifier.logits([encodings[i]]) for i in c],
        "padded to 128": lambda c: [classifier.logits([encodings[i]], pad_to=128) for i in c],
    }, chunked(len(tweets), chunk, chunks))
    lengths = [len(e.ids) for e in encodings]
    return result | {"dynamic_vs_fixed128": result["first_over"]["padded to 128"], "threads": threads,
                     "median_tokens": float(np.median(lengths)), "bucket": classifier.bucket}


def latency_ratio(base: tuple[str, Path], other: tuple[str, Path], tweets: Sequence[Example], chunk: int, chunks: int,
                  threads: int) -> dict:
    """Two bundles side by side, one tweet per call through the classifier (tokenisation, interpreter, scores), in
    alternating chunks: ``latency_ratio`` is the other's latency over the base's."""
    (base_name, base_path), (other_name, other_path) = base, other
    first, second = (Classifier(Bundle.load(p), threads=threads) for p in (base_path, other_path))
    result = alternate({
        base_name: lambda c: [first.classify([tweets[i].text], [tweets[i].entity]) for i in c],
        other_name: lambda c: [second.classify([tweets[i].text], [tweets[i].entity]) for i in c],
    }, chunked(len(tweets), chunk, chunks))  # latency other / base = rate base / rate other
    return result | {"threads": threads, "latency_ratio": result["first_over"][other_name]}


def agreement_with(labels: Sequence[int], ours: Sequence[int]) -> float:
    """The share of tweets given the same label as ours."""
    return round(float(np.mean(np.equal(labels, ours))), 4)


def _predict_all(system, tweets: Sequence[Example]) -> list[int]:
    return [system.predict(t.text, t.entity) for t in tweets]


def peers(like: Bundle, stand_in: tuple[Checkpoint, Path], fine_tuned: Checkpoint | None, tweets: Sequence[Example],
          chunk: int, threads: int) -> dict:
    """Speed: ours, PyTorch float32 and ONNX Runtime int8 on one stand-in checkpoint (``like``'s architecture and
    base weights, converted for each runtime), one tweet per call, in alternating chunks. Accuracy: the three on
    ``like`` and the fine-tuned checkpoint it was converted from, when that is here; said to be skipped if not."""
    checkpoint, bundle_path = stand_in
    converted = Bundle.load(bundle_path)
    systems = [Ours(converted, threads), PyTorchFloat32(converted, checkpoint, threads),
               OnnxRuntimeInt8(converted, checkpoint, threads)]
    predictions = {s.name: [0] * len(tweets) for s in systems}

    def run(system):
        def go(chunk):
            for i in chunk:
                predictions[system.name][i] = system.predict(tweets[i].text, tweets[i].entity)
        return go

    for s in systems:  # warm-up
        s.predict(tweets[0].text, tweets[0].entity)
    timing = alternate({s.name: run(s) for s in systems}, chunked(len(tweets), chunk))
    agreement = {s.name: agreement_with(predictions[s.name], predictions[systems[0].name]) for s in systems}
    return timing | {
        "threads": threads, "tweets": len(tweets),
        "weights": f"the {Path(checkpoint.base_model).name} encoder with seeded heads (bench/stand_ins.py)",
        "runtimes": {s.name: s.runtime for s in systems}, "stand_in_agreement_with_ours": agreement,
        "quality": quality(like, fine_tuned, tweets, threads),
        "vs_pytorch_fp32": timing["first_over"][systems[1].name],
        "vs_onnxruntime_int8": timing["first_over"][systems[2].name],
    }


def quality(like: Bundle, fine_tuned: Checkpoint | None, tweets: Sequence[Example], threads: int) -> dict:
    """Accuracy and macro-F1 of the bundle and of its fine-tuned checkpoint in the two peers, on ``tweets``."""
    if fine_tuned is None:
        return {"skipped": "no fine-tuned checkpoint of the bundle here (--checkpoint): accuracy not compared"}
    systems = [Ours(like, threads), PyTorchFloat32(like, fine_tuned, threads), OnnxRuntimeInt8(like, fine_tuned, threads)]
    tweets = with_polarity(tweets)  # the unrelated ones have no polarity label
    labels = list(like.labels)
    gold = [labels.index(t.label) for t in tweets]
    predicted = {s.name: _predict_all(s, tweets) for s in systems}
    ours = predicted[systems[0].name]
    out = {}
    for s in systems:
        m = classification_metrics(gold, predicted[s.name], labels)
        out[s.name] = {"accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4),
                       "agreement_with_ours": agreement_with(predicted[s.name], ours),
                       "runtime": s.runtime}
    return out
