"""Benchmark results as Markdown and PNG plots beside the JSON."""

from __future__ import annotations

from pathlib import Path

from model_build.figures import pyplot, save_png

STUDY_TWEETS_PER_S = 1.0  # the reference study: at least one tweet per second on its edge boards
# goals that are ceilings
AT_MOST = frozenset({"rss_mb_one_worker", "pss_mb_service_one_worker", "related_head_latency_ratio",
                     "vs_earlier_bundle_latency_ratio"})


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(map(str, r)) + " |" for r in rows]


def _rates(title: str, intro: str, result: dict, ratios: tuple[str, dict] | None = None) -> list[str]:
    """A section: its title, what was run, each system's tweets per second (and a ratio of each, where given)."""
    header, rows = ["system", "tweets/s"], [[k, v] for k, v in result["tweets_per_s"].items()]
    if ratios:
        header.append(ratios[0])
        rows = [[k, v, ratios[1].get(k, "")] for k, v in rows]
    return ["", title, "", intro, ""] + _table(header, rows)


def _mb(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def goals_lines(summary: dict, goals: dict) -> list[str]:
    rows = [[k, summary[k], f"{'≤' if k in AT_MOST else '≥'} {goals[k]}",
             "met" if (summary[k] <= goals[k] if k in AT_MOST else summary[k] >= goals[k]) else "MISSED"]
            for k in goals if summary.get(k) is not None]
    return _table(["figure", "measured", "goal", "verdict"], rows)


def markdown(results: dict, goals: dict) -> str:
    m = results["machine"]
    out = [f"# Benchmark `{results['plan']}`, {m['date']}", "",
           f"{m['cpu']} ({' '.join(m['simd']) or 'no vector extensions listed'}), {m['cores']} cores, {m['machine']}, "
           f"Python {m['python']}; "
           + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
           + "".join(f"; the edge environment's {k} {v}" for k, v in m.get("edge_packages", {}).items()
                     if v != m["packages"].get(k)), "",
           "Ratios come from one run with the compared systems alternating on the same tweets (medians over chunks); "
           "absolute times on a shared machine are indicative only."]
    if goals:
        out += ["", "## Goals", ""] + goals_lines(results["summary"], goals)
    if "service_vs_raw" in results:
        r = results["service_vs_raw"]
        out += _rates("## 1. Service over the raw interpreter",
                      f"{r['chunks']} alternating chunks of {r['tweets_per_chunk']} validation tweets, "
                      f"{r['threads']} interpreter thread; one gunicorn worker, one client, one tweet per request. "
                      f"Worker RSS {_mb(r['worker_rss_mb'])} MB; the whole service (master and worker) "
                      f"{r['service_pss_mb']} MB of proportional set size (PSS). Over raw: the median over chunks of "
                      "each system's rate divided by the raw interpreter's in the same chunk.", r,
                      ("over raw", r.get("over_raw", {})))
    if "dynamic_vs_fixed" in results:
        r = results["dynamic_vs_fixed"]
        out += _rates("## 2. Sized to the tweet against padding to 128",
                      f"Median tweet {r['median_tokens']:.0f} tokens (entity + tweet), bucket {r['bucket']}; "
                      f"{r['threads']} thread.", r)
    if "peers" in results:
        r = results["peers"]
        out += ["", "## 3. Peers on identical weights", "",
                f"Speed: {r['tweets']} validation tweets, one per call, {r['threads']} thread(s), same token ids, one "
                f"checkpoint converted for every runtime: {r['weights']}.", ""]
        out += _table(["system", "runtime", "tweets/s", "ours / theirs", "label agreement with ours"],
                      [[k, r["runtimes"][k], r["tweets_per_s"][k], r["first_over"].get(k, 1.0),
                        r["stand_in_agreement_with_ours"][k]] for k in r["runtimes"]])
        q = r["quality"]
        if "skipped" in q:
            out += ["", f"Accuracy: skipped: {q['skipped']}."]
        else:
            seen = (" (the bundle was trained on everything, these tweets included: this compares the runtimes, not "
                    "the model)") if r.get("quality_tweets_seen") else ""
            out += ["", "Accuracy of the bundle and of the fine-tuned checkpoint it was converted from, on the same "
                    f"tweets{seen}:", ""]
            out += _table(["system", "runtime", "accuracy", "macro-F1", "agreement with ours"],
                          [[k, v["runtime"], v["accuracy"], v["macro_f1"], v["agreement_with_ours"]]
                           for k, v in q.items()])
    if "related_head" in results:
        r = results["related_head"]
        out += _rates("## 3b. The relatedness head",
                      f"The stand-in encoder with and without the relatedness head (one encoder pass, a second output), "
                      f"one tweet per call through the classifier, {r['chunks']} alternating chunks of "
                      f"{r['tweets_per_chunk']} tweets, {r['threads']} thread: latency with / without "
                      f"{r['latency_ratio']}.", r)
    if "against" in results:
        r = results["against"]
        earlier, now = r["tweets_per_s"]
        out += _rates("## 3c. Against the earlier bundle",
                      f"{now} and {earlier} ({results['bundle']} and {r.get('bundle', '`--against`')}), one tweet per "
                      "call through the "
                      f"classifier, {r['chunks']} alternating chunks of {r['tweets_per_chunk']} tweets, {r['threads']} "
                      f"thread: latency {now} / {earlier} {r['latency_ratio']}.", r)
    if "study" in results:
        out += ["", "## 4. The study's table", "",
                "Default model (fine-tuned MiniLM-L6) and full-size MobileBERT (google/mobilebert-uncased architecture, "
                "random weights) per variant; each run is a fresh edge process classifying validation tweets one at a "
                "time, and each figure the median over a row's runs (repeats) of each run's own (its median and p95 "
                "per tweet); tweets/s is 1000 / median ms, not a measured throughput. The study's boards: at least "
                f"{STUDY_TWEETS_PER_S:g} tweet/s.", ""]
        out += _table(["model", "variant", "threads", "MB", "load s", "median ms", "p95 ms", "1000 / median ms",
                       "peak RSS MB"],
                      [[r["model"], r["quantization"], r["threads"], round(r["model_bytes"] / 1e6, 1), r["load_seconds"],
                        r["median_ms"], r["p95_ms"], r["tweets_per_s"], r["peak_rss_mb"]] for r in results["study"]])
        if "study_skipped" in results:
            out += ["", f"Skipped: {results['study_skipped']}."]
    if "load" in results:
        out += ["", "## 5. Load", "", "Closed-loop clients on loopback, one tweet per request; tweets/s and latencies "
                "of the answers with a 2xx status.", ""]
        out += _table(["workers", "clients", "s", "tweets/s", "p50 ms", "p95 ms", "p99 ms", "5xx", "conn. errors",
                       "worker RSS MB", "start to /readyz s"],
                      [[r["workers"], r["clients"], r["seconds"], r["tweets_per_s"], r["p50_ms"], r["p95_ms"], r["p99_ms"],
                        r["server_errors"], sum(r["connection_errors"].values()), _mb(r["worker_rss_mb"]),
                        r["ready_seconds"]]
                       for r in results["load"]])
    if "soak" in results:
        s = results["soak"]
        out += ["", "## Soak", "", f"{s['workers']} workers, {s['clients']} clients, {s['seconds']:.0f} s: {s['requests']} "
                f"requests, {s['server_errors']} 5xx, {s['connection_errors']} connection errors, worst p99 of a "
                f"{results['soak_interval']:.0f} s interval {s['p99_ms_worst_interval']} ms; "
                f"worker RSS {s['rss_after_warmup_mb']} MB "
                f"after {s['warmup_seconds']:.0f} s, {s['rss_end_mb']} MB at the end (drift {s['rss_drift']:+.1%})."]
    return "\n".join(out) + "\n"


def plots(results: dict, out_prefix: Path) -> list[Path]:
    """PNG plots of the study table, the load curves and the soak memory; the files written."""
    plt = pyplot()
    written = []
    if "study" in results:
        fig, ax = plt.subplots(figsize=(8, 4))
        rows = results["study"]
        names = [f"{r['model'].split()[0]}\n{r['quantization']}\n{r['threads']}t" for r in rows]
        ax.bar(range(len(rows)), [r["median_ms"] for r in rows])
        ax.set_xticks(range(len(rows)), names, fontsize=6)
        ax.set_ylabel("median ms per tweet")
        ax.set_title("Latency per tweet by model, variant and threads")
        written.append(_save(fig, out_prefix.with_name(out_prefix.name + "-study.png")))
    if "load" in results:
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
        for w in sorted({r["workers"] for r in results["load"]}):
            rows = [r for r in results["load"] if r["workers"] == w]
            a.plot([r["clients"] for r in rows], [r["tweets_per_s"] for r in rows], marker="o", label=f"{w} worker(s)")
            b.plot([r["clients"] for r in rows], [r["p99_ms"] for r in rows], marker="o", label=f"{w} worker(s)")
        a.set(xlabel="concurrent clients", ylabel="tweets/s", xscale="log")
        b.set(xlabel="concurrent clients", ylabel="p99 ms", xscale="log")
        a.legend()
        written.append(_save(fig, out_prefix.with_name(out_prefix.name + "-load.png")))
    if "soak" in results:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        samples = results["soak"]["samples"]
        ax.plot([s["t"] for s in samples], [sum(s["worker_rss_mb"]) for s in samples])
        ax.set(xlabel="seconds", ylabel="workers' RSS, MB", title="Soak: resident memory")
        written.append(_save(fig, out_prefix.with_name(out_prefix.name + "-soak.png")))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    return path
