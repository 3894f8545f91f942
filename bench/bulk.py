"""Bulk throughput: ``python -m app classify`` against ``python -m bulk`` on Spark local[1] and local[2], on the same
tweets, one interpreter thread each, runs alternating; the machine's load average is recorded with every run."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil

from model_build.errors import BuildError

from .data import ROOT, shown, split_tweets
from .machine import machine_info
from .report import goals_lines
from .server import edge_python
from .study import write_tweets

WORK = ROOT / "build" / "bench" / "bulk"
GOALS = {"local2_vs_local1": 1.7, "per_core_vs_offline": 0.8}


class Meter:
    """Wall time, the CPU time of this process and all its descendants (Spark's JVM and Python workers, the offline
    command), and the CPU time the rest of the machine used meanwhile (cores taken by other work)."""

    def __init__(self):
        self.load = _load()
        self.wall, self.ours, self.machine = time.perf_counter(), _our_cpu(), _machine_busy()

    def stop(self, tweets: int) -> dict:
        wall = time.perf_counter() - self.wall
        ours = _our_cpu() - self.ours
        others = max(0.0, _machine_busy() - self.machine - ours)
        return {"seconds": round(wall, 2), "tweets_per_s": round(tweets / wall, 1), "cpu_s": round(ours, 1),
                "tweets_per_cpu_s": round(tweets / ours, 1), "other_work_cores": round(others / wall, 2),
                "load_before": self.load, "load_after": _load()}


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _our_cpu() -> float:
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _machine_busy() -> float:
    """CPU seconds all processes of the machine spent (user, nice, system, interrupts, steal)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")


def offline_run(bundle: Path, tweets: Path, n: int) -> dict:
    """The offline command as a user runs it (process start and bundle load included), one interpreter thread."""
    out = WORK / "offline.jsonl"
    meter = Meter()
    subprocess.run([edge_python(), "-m", "app", "classify", str(tweets), "--out", str(out), "--bundle", str(bundle),
                    "--no-progress"], cwd=ROOT, check=True, capture_output=True, env={**os.environ, "TFLITE_THREADS": "1"})
    result = meter.stop(n)
    out.unlink()
    return result


def spark_run(bundle: Path, tweets: Path, n: int, cores: int) -> dict:
    """One whole bulk job (bundle check, shipping, JSONL read, classification, Parquet write, counting) on a fresh
    local[cores] session; the session's start is timed apart."""
    from bulk.job import Options, run, session

    out = WORK / f"local{cores}.parquet"
    shutil.rmtree(out, ignore_errors=True)  # an earlier run's, cut off
    options = Options(input=str(tweets), output=str(out), bundle=bundle, master=f"local[{cores}]", threads=1,
                      conf=(("spark.ui.enabled", "false"), ("spark.ui.showConsoleProgress", "false")))
    started = time.perf_counter()
    with session(options) as spark:
        start_seconds = time.perf_counter() - started
        meter = Meter()
        counts = run(options, spark)
        result = meter.stop(n)  # before the session stops: its Python workers are still there to be counted
    shutil.rmtree(out)
    if counts.get(None) != n:
        raise BuildError(f"local[{cores}] classified {counts}, expected {n}")
    return {**result, "session_start_s": round(start_seconds, 2)}


def bulk_bench(bundle: Path, data: Path, count: int, repeats: int) -> dict:
    from bulk.job import without_py4j_tracebacks

    without_py4j_tracebacks()  # a run stopped by SIGINT or SIGTERM ends in one line, as the bulk command's
    machine = machine_info()
    train, validation = split_tweets(data, bundle)
    tweets = (validation + train)[:count]
    WORK.mkdir(parents=True, exist_ok=True)
    source = write_tweets(tweets, WORK / "tweets.jsonl")
    cores = {"offline": None, "local[1]": 1, "local[2]": 2}  # Spark's local master and its cores
    runs: dict[str, list[dict]] = {name: [] for name in cores}
    names = list(cores)
    for repeat in range(repeats):  # who goes first rotates; best of 2 or more: the process's first Spark job warms its JVM
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:
            n = cores[name]
            result = offline_run(bundle, source, len(tweets)) if n is None else spark_run(bundle, source, len(tweets), n)
            runs[name].append(result)
            print(f"bench bulk: {name} run {repeat + 1}: {result}", flush=True)
    best = {name: max(r["tweets_per_s"] for r in results) for name, results in runs.items()}
    per_cpu = {name: max(r["tweets_per_cpu_s"] for r in results) for name, results in runs.items()}
    summary = {
        "tweets_per_s": best,
        "tweets_per_cpu_s": per_cpu,
        "local2_vs_local1": round(best["local[2]"] / best["local[1]"], 2),
        "per_core_vs_offline": round(best["local[2]"] / 2 / best["offline"], 2),
        "local1_vs_offline": round(best["local[1]"] / best["offline"], 2),
        "cpu_efficiency_local2_vs_offline": round(per_cpu["local[2]"] / per_cpu["offline"], 2),
    }
    return {"plan": "bulk", "machine": machine, "bundle": shown(bundle), "tweets": len(tweets),
            "repeats": repeats, "runs": runs, "summary": summary}


def markdown(results: dict) -> str:
    s = results["summary"]
    m = results["machine"]
    lines = [f"# Bulk classification on Spark ({m['date']})", "",
             f"{results['tweets']:,} RepLab tweets (JSONL, text and entity), bundle `{results['bundle']}`, one interpreter "
             f"thread per task; {m['cpu']}, {m['cores']} cores. Best of {results['repeats']} alternating runs; the "
             "1-minute load average before and after each run is given because other work shared these cores.", "",
             "| run | seconds | tweets/s | CPU s (ours) | tweets per CPU s | cores taken by other work | load before, "
             "after | Spark session start (s) |", "|---|---|---|---|---|---|---|---|"]
    for name, runs in results["runs"].items():
        for r in runs:
            lines.append(f"| {name} | {r['seconds']} | {r['tweets_per_s']} | {r['cpu_s']} | {r['tweets_per_cpu_s']} | "
                         f"{r['other_work_cores']} | {r['load_before']}, {r['load_after']} | "
                         f"{r.get('session_start_s', '')} |")
    lines += [""] + goals_lines(s, GOALS)
    lines.append(f"\nAlso: `local1_vs_offline` {s['local1_vs_offline']}, `cpu_efficiency_local2_vs_offline` (tweets per "
                 f"CPU second) {s['cpu_efficiency_local2_vs_offline']}.")
    lines += ["", "The offline figure is the whole command (process start, bundle load, JSONL in and out); a Spark "
              "figure is one whole job on a started session (bundle check, shipping, JSON schema inference, "
              "classification, Parquet write, counting the errors). CPU s: the CPU time of the benchmark process and all "
              "its descendants (the offline command; Spark's JVM and its Python workers) during the run; cores taken "
              "by other work: the rest of the machine's CPU time over the same wall time (niced work included)."]
    return "\n".join(lines) + "\n"
