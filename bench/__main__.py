"""Benchmarks, run on demand (never in the test suite):

    python -m bench quick         points 1-3 and worker memory, a few minutes -> bench/results/quick.{json,md}
    python -m bench smoke         the quick plan on a few tweets (make bench-smoke: -> build/bench/smoke/)
    python -m bench full          everything, including the study's table and load  -> bench/results/full.*
    python -m bench reliability   2x and 10x clients per worker for 60 s, 10-minute soak -> bench/results/reliability.*
    python -m bench bulk          the offline command against Spark local[1] and local[2] -> bench/results/bulk.*

A rerun replaces the plan's files in --out. SIGINT or SIGTERM stops every server started, and writes no result
unless it came while the results were written, which then finish.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from app.arguments import number, whole_number
from app.bundle import MANIFEST, Bundle
from app.errors import AppError
from model_build.checkpoint import Checkpoint
from model_build.errors import BuildError
from model_build.fsutil import check_folder, finished_dirs, write_json, write_text

from .data import (
    DEFAULT_BUNDLE,
    DEFAULT_DATA,
    ROOT,
    bundle_checkpoint,
    check_data,
    data_spec,
    request_bodies,
    shown,
    split_tweets,
    trained_on_everything,
)
from .load import SOAK_WARMUP, load_points, soak
from .machine import machine_info
from .measure import dynamic_vs_fixed, latency_ratio, peers, service_vs_raw
from .report import markdown, plots
from .server import ServiceFailed, edge_python
from .stand_ins import speed_stand_in, study_stand_ins

GOALS = {"service_vs_raw": 0.85, "dynamic_vs_fixed128": 2, "vs_pytorch_fp32": 3, "vs_onnxruntime_int8": 1,
         "rss_mb_one_worker": 150, "pss_mb_service_one_worker": 150, "related_head_latency_ratio": 1.10,
         "vs_earlier_bundle_latency_ratio": 1.3}
VARIANTS_DIR = ROOT / "build" / "bundles"
WRITTEN: list[Path] = []  # the results written, each a prefix of its files


@dataclass(frozen=True)
class Plan:
    name: str
    chunk: int = 200           # tweets per alternating chunk (points 1 and 2)
    chunks: int = 7
    peer_tweets: int | None = 1200  # None: the whole validation split
    peer_chunk: int = 100
    study: bool = False
    study_tweets: int = 300
    study_repeats: int = 2
    load: bool = False
    load_seconds: float = 30


PLANS = {
    "quick": Plan("quick"),
    "smoke": Plan("smoke", chunk=20, chunks=3, peer_tweets=60, peer_chunk=20),
    "full": Plan("full", chunks=11, peer_tweets=None, peer_chunk=200, study=True, load=True),
}


def _finish(results: dict, out: Path, text: str, figures: bool = True) -> None:
    """The plan's files (JSON, Markdown ``text``, and its plots with ``figures``), all of them: SIGINT and SIGTERM
    wait until they are written."""
    prefix = out / results["plan"]
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        write_json(prefix.with_suffix(".json"), results)
        if figures:
            plots(results, prefix)
        write_text(prefix.with_suffix(".md"), text)
        WRITTEN.append(prefix)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    print(text)


def run_plan(plan: Plan, args) -> dict:
    train, validation = split_tweets(args.data, args.bundle)
    threads = args.threads
    results: dict = {"plan": plan.name, "machine": machine_info(), "bundle": shown(args.bundle)}
    step = time.perf_counter()

    def done(what: str) -> None:
        nonlocal step
        print(f"bench: {what} in {time.perf_counter() - step:.0f} s", flush=True)
        step = time.perf_counter()

    results["service_vs_raw"] = service_vs_raw(args.bundle, validation, plan.chunk, plan.chunks, threads)
    done("service vs raw interpreter")
    results["dynamic_vs_fixed"] = dynamic_vs_fixed(args.bundle, validation, plan.chunk, plan.chunks, threads)
    done("sized vs padded to 128")
    like, spec = Bundle.load(args.bundle), data_spec(args.bundle)
    stand_in = speed_stand_in(like, spec, train)
    done("stand-in models (built once, then cached in build/bench)")
    fine_tuned = args.fine_tuned or fine_tuned_checkpoint(bundle_checkpoint(args.bundle))
    results["peers"] = peers(like, stand_in, fine_tuned, validation[: plan.peer_tweets],
                             plan.peer_chunk, threads) | {"quality_tweets_seen": trained_on_everything(args.bundle)}
    done("peers")
    plain, related = (speed_stand_in(like, spec, train, related=r)[1] for r in (False, True))
    results["related_head"] = latency_ratio(("polarity only", plain), ("with the relatedness head", related),
                                            validation, plan.chunk, plan.chunks, threads)
    done("relatedness head on and off")
    if args.against:
        earlier, now = (f"{b.name} {b.version}" for b in (Bundle.load(args.against), like))
        if earlier == now:  # a rebuilt bundle of the same version: the two are told apart by --against
            earlier += " (--against)"
        results["against"] = latency_ratio((earlier, args.against), (now, args.bundle), validation, plan.chunk,
                                           plan.chunks, threads) | {"bundle": shown(args.against)}
        done("against the earlier bundle")
    if plan.study:
        from .study import study_table, write_tweets

        variants = finished_dirs(VARIANTS_DIR, MANIFEST) if VARIANTS_DIR.is_dir() else []
        bundles = {f"MiniLM-L6 fine-tuned/{p.name}": p for p in variants} or {
            f"MiniLM-L6 fine-tuned/{Bundle.load(args.bundle).quantization}": args.bundle}
        if not variants:
            results["study_skipped"] = (f"the default model's other variants: none in {VARIANTS_DIR.relative_to(ROOT)}/ "
                                        "(make default-bundle writes them), so only the bundle itself is measured")
            print(f"bench: study table skips {results['study_skipped']}", flush=True)
        bundles |= {f"MobileBERT random/{v}": p for v, p in study_stand_ins(like, spec, train).items()}
        tweets_file = write_tweets(validation[: plan.study_tweets], ROOT / "build" / "bench" / "tweets.jsonl")
        results["study"] = study_table(bundles, tweets_file, (1, 2), plan.study_tweets, plan.study_repeats)
        done("study table")
    if plan.load:
        results["load"] = load_points(args.bundle, request_bodies(validation), (1, 2), (1, 4, 16), plan.load_seconds,
                                      os.cpu_count() or 1)
        done("load")
    results["summary"] = {
        "service_vs_raw": results["service_vs_raw"]["service_vs_raw"],
        "dynamic_vs_fixed128": results["dynamic_vs_fixed"]["dynamic_vs_fixed128"],
        "vs_pytorch_fp32": results["peers"]["vs_pytorch_fp32"],
        "vs_onnxruntime_int8": results["peers"]["vs_onnxruntime_int8"],
        "rss_mb_one_worker": max(results["service_vs_raw"]["worker_rss_mb"]),
        "pss_mb_service_one_worker": results["service_vs_raw"]["service_pss_mb"],
        "related_head_latency_ratio": results["related_head"]["latency_ratio"],
        "vs_earlier_bundle_latency_ratio": results.get("against", {}).get("latency_ratio"),
    }
    return results


def fine_tuned_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint the bundle was converted from, for the accuracy comparison; None (and why) when absent."""
    try:
        return Checkpoint.load(path)
    except BuildError as exc:
        print(f"bench: accuracy comparison skipped: {exc}", flush=True)
        return None


def run_reliability(args) -> dict:
    _, validation = split_tweets(args.data, args.bundle)
    bodies = request_bodies(validation)
    cores = os.cpu_count() or 1
    workers = 2
    results = {"plan": "reliability", "machine": machine_info(), "bundle": shown(args.bundle), "soak_interval": 30.0}
    results["load"] = load_points(args.bundle, bodies, (workers,), (2 * workers, 10 * workers), 60, cores)
    results["soak"] = soak(args.bundle, bodies, workers, 2 * workers, args.soak_seconds, results["soak_interval"], cores)
    results["summary"] = {
        "server_errors": sum(r["server_errors"] for r in results["load"]) + results["soak"]["server_errors"],
        "connection_errors": sum(sum(r["connection_errors"].values()) for r in results["load"])
        + results["soak"]["connection_errors"],
        "rss_drift": results["soak"]["rss_drift"],
    }
    return results


# Options only some plans read: given to another, they are refused rather than ignored.
PLAN_OPTIONS = {"checkpoint": set(PLANS), "against": set(PLANS), "threads": set(PLANS),
                "soak_seconds": {"reliability"}, "tweets": {"bulk"}, "repeats": {"bulk"}}
DEFAULTS = {"threads": 1, "soak_seconds": 600, "tweets": 20_000, "repeats": 2}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", choices=[*PLANS, "reliability", "bulk"])
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="the bundle measured (default: bundles/default)")
    p.add_argument("--checkpoint", type=Path,
                   help="quick, smoke, full: the fine-tuned checkpoint the bundle was converted from (default: its "
                        "manifest's training run, OUT_DIR/best, compared where it is there); the peers' accuracy is "
                        "compared on it (their speed is measured on stand-in weights either way)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="RepLab 2013 root (default: ../shared's)")
    p.add_argument("--against", type=Path,
                   help="quick, smoke, full: an earlier bundle: this one's latency over its, side by side")
    p.add_argument("--threads", type=whole_number(1, 64), help="quick, smoke, full: interpreter threads for points 1-3 "
                                                               f"(default {DEFAULTS['threads']})")
    p.add_argument("--soak-seconds", type=_soak_seconds,
                   help=f"reliability: the soak's length, more than its {SOAK_WARMUP:g} s warm-up (default "
                        f"{DEFAULTS['soak_seconds']})")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="the results' folder (default: "
                                                                                 "bench/results)")
    p.add_argument("--tweets", type=whole_number(1), help=f"bulk: tweets per run (default {DEFAULTS['tweets']})")
    p.add_argument("--repeats", type=whole_number(2),
                   help=f"bulk: alternating runs of each, the best kept (default {DEFAULTS['repeats']})")
    args = p.parse_args(argv)
    for option, plans in PLAN_OPTIONS.items():
        if getattr(args, option) is None:
            setattr(args, option, DEFAULTS.get(option))
        elif args.plan not in plans:
            p.error(f"--{option.replace('_', '-')} is for the {' and '.join(sorted(plans))} plan(s), not {args.plan}")
    stopped = []

    def stop(signum, frame) -> None:  # SIGTERM as Ctrl-C: the servers' context managers stop them on the way out
        stopped.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        _check(args)
        return _run(args)
    except (AppError, BuildError, ServiceFailed) as exc:  # a bundle, checkpoint, data or service that cannot serve
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        written = f"{WRITTEN[-1]}.* were written" if WRITTEN else "no result was written"
        print(f"bench: stopped: its servers were stopped and {written}", file=sys.stderr)
        return 128 + (stopped[0] if stopped else signal.SIGINT)


def _check(args: argparse.Namespace) -> None:
    """What the options name, before any measuring: a bad one would otherwise fail only when reached, minutes in."""
    edge_python()
    Bundle.load(args.bundle)
    if args.against:
        Bundle.load(args.against)
    args.fine_tuned = Checkpoint.load(args.checkpoint) if args.checkpoint else None  # a path given must be there
    check_data(args.data)
    check_folder(args.out)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"--out {args.out}: {exc.strerror}") from None
    if not os.access(args.out, os.W_OK | os.X_OK):
        raise BuildError(f"--out {args.out}: not writable")


def _soak_seconds(raw: str) -> float:
    value = number()(raw)
    if value <= SOAK_WARMUP:
        raise argparse.ArgumentTypeError(f"must be more than the soak's {SOAK_WARMUP:g} s warm-up, got {raw}")
    return value


def _run(args: argparse.Namespace) -> int:
    if args.plan == "bulk":
        from bulk.job import BulkError

        from .bulk import bulk_bench
        from .bulk import markdown as bulk_markdown

        try:
            results = bulk_bench(args.bundle, args.data, args.tweets, args.repeats)
        except BulkError as exc:  # Spark's (the bulk side's error): one line, as the others
            raise BuildError(str(exc)) from None
        _finish(results, args.out, bulk_markdown(results), figures=False)
        return 0
    started = time.perf_counter()
    results = run_reliability(args) if args.plan == "reliability" else run_plan(PLANS[args.plan], args)
    results["seconds"] = round(time.perf_counter() - started, 1)
    _finish(results, args.out, markdown(results, {} if args.plan == "reliability" else GOALS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
