"""The study's comparison: every variant against the float model, BERT-large and the baseline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from app.bundle import DEFAULT_RELATED_THRESHOLD, MANIFEST, Bundle
from app.text import TweetEncoder

from .checkpoint import Checkpoint
from .convert import Variant
from .data import Example, with_polarity
from .errors import BuildError
from .figures import pyplot, save_png
from .splits import Part

BERT_LARGE_BYTES = 1_340_000_000  # the reference study's BERT-large model size, 1.34 GB


def comparison_rows(framework: dict, bundles: dict[str, dict], baseline: dict) -> list[dict]:
    """Table rows: the baseline, the framework (PyTorch float32) model, then each TFLite variant."""
    float_bytes = bundles[Variant.FLOAT32.value]["model_bytes"] if Variant.FLOAT32.value in bundles else None
    rows = [
        {"model": "TF-IDF + logistic regression", "accuracy": baseline["accuracy"], "macro_f1": baseline["macro_f1"]},
        {"model": "PyTorch float32 (framework)", "accuracy": framework["accuracy"], "macro_f1": framework["macro_f1"],
         "bytes": framework.get("model_bytes")},
    ]
    for variant, m in bundles.items():
        rows.append({
            "model": f"TFLite {variant}",
            "variant": variant,
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "bytes": m["model_bytes"],
            "vs_float": round(float_bytes / m["model_bytes"], 2) if float_bytes else None,
            "vs_bert_large": round(BERT_LARGE_BYTES / m["model_bytes"], 1),
            "delta_accuracy": round(m["accuracy"] - framework["accuracy"], 4),
            "median_ms": m["latency"]["median_ms"],
            "p95_ms": m["latency"]["p95_ms"],
        })
    return rows


def markdown_table(rows: list[dict]) -> str:
    def cell(value, fmt="{}"):
        return "" if value is None else fmt.format(value)

    out = [
        "| model | accuracy | macro-F1 | Δ accuracy vs float | size (bytes) | smaller than float | smaller than BERT-large "
        "| median ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['model']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {cell(r.get('delta_accuracy'), '{:+.4f}')} "
            f"| {cell(r.get('bytes'), '{:,}')} | {cell(r.get('vs_float'), '{}x')} | {cell(r.get('vs_bert_large'), '{}x')} "
            f"| {cell(r.get('median_ms'), '{:.2f}')} | {cell(r.get('p95_ms'), '{:.2f}')} |"
        )
    return "\n".join(out)


def plot_confusion(metrics: dict, title: str, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    matrix = metrics["confusion"]
    ax.imshow(matrix, cmap="Blues")
    labels = metrics["labels"]
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(row) for row in matrix)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > peak / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    save_png(fig, path, dpi=120)


def plot_tradeoffs(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    variants = [r for r in rows if "variant" in r]
    baseline = rows[0]["accuracy"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, xlabel in ((axes[0], "bytes", "model size (MB)"), (axes[1], "median_ms", "median latency per tweet (ms)")):
        for r in variants:
            x = r[key] / 1e6 if key == "bytes" else r[key]
            ax.scatter(x, r["accuracy"], s=40)
            ax.annotate(r["variant"], (x, r["accuracy"]), textcoords="offset points", xytext=(5, 5))
        ax.axhline(baseline, color="grey", linestyle="--", label="TF-IDF + LR")
        ax.axhline(rows[1]["accuracy"], color="black", linestyle=":", label="PyTorch float32")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation accuracy")
        ax.legend(loc="center right")
    fig.tight_layout()
    save_png(fig, path, dpi=120)


@dataclass(frozen=True)
class _Comparison:
    """The TF-IDF baseline (fitted on ``train_set``), a float model and bundles, to be scored on held-out tweets."""

    train_set: Sequence[Example]
    model: Any  # the PyTorch model (torch is imported only where it runs)
    encoder: TweetEncoder
    bundles: Sequence[Path]
    threads: int | None
    offsets: dict[str, float]  # the bundles' label offsets, which the float model is scored with too

    def on(self, tweets: Sequence[Example], name: str) -> tuple[dict, dict, dict[str, dict]]:
        """(baseline, float model, each bundle by its quantisation) on ``tweets``, each printed."""
        from .baseline import tfidf_baseline
        from .evaluate import evaluate_bundle, format_metrics
        from .offsets import offset_logits
        from .scoring import predict_tweets, validation_metrics

        baseline = tfidf_baseline(with_polarity(self.train_set), with_polarity(tweets))
        print(f"report, {name}: TF-IDF + logistic regression\n" + format_metrics(baseline))
        logits, related = predict_tweets(self.model, self.encoder, tweets)
        framework = validation_metrics(tweets, offset_logits(logits, self.offsets), related)
        print(f"report, {name}: PyTorch float32\n" + format_metrics(framework))
        bundles = {}
        for path in self.bundles:
            metrics = evaluate_bundle(path, tweets, self.threads)
            bundles[metrics["quantization"]] = metrics
            print(f"report, {name}: {path.name}\n" + format_metrics(metrics))
        return baseline, framework, bundles


# What a bundle's manifest keeps of its checkpoint's summary that tells runs (and a run's best/ and averaged/) apart
_SAME_RUN = ("config", "command", "history", "best_epoch", "averaged")


def write_report(checkpoint: Checkpoint, bundles_dir: Path, out: Path, *, chosen: str | None = None,
                 threads: int | None = None, data_source: str | None = None) -> str:
    """Compare the TF-IDF baseline, the checkpoint's float model and every bundle in ``bundles_dir`` on the
    checkpoint's validation split (and on its time gap's tweets, where it has them); write report.md, report.json
    and plots to ``out``; return the table."""
    from .fsutil import atomic_dir, check_output, finished_dirs, write_json, write_text

    check_output(out, "report.json", "report (report.json)")  # a folder of the user's own report.md is left alone
    train_set, gap_set, val_set = checkpoint.parts(data_source)
    if not with_polarity(val_set):
        raise BuildError(f"checkpoint {checkpoint.path} has no validation split to report on (trained on everything)")
    if (bundles_dir / MANIFEST).is_file():
        raise BuildError(f"{bundles_dir} is a bundle: give the folder holding one bundle per variant")
    paths = finished_dirs(bundles_dir, MANIFEST)
    if not paths:
        raise BuildError(f"{bundles_dir}: no bundle (a directory with a manifest.json) found")
    model = checkpoint.model()
    if threads:
        import torch

        torch.set_num_threads(threads)
    manifests = [Bundle.load(path).summary() for path in paths]
    summary = checkpoint.summary
    for path, manifest in zip(paths, manifests):
        if any(manifest.get("training", {}).get(k) != summary.get(k) for k in _SAME_RUN):
            raise BuildError(f"bundle {path} was not packaged from checkpoint {checkpoint.path} (its manifest's "
                             "training differs): report on bundles of that checkpoint")
    packaged = [m["quantization"] for m in manifests]
    if chosen is not None and chosen not in packaged:
        raise BuildError(f"--chosen {chosen}: no such bundle in {bundles_dir} (there: {', '.join(packaged)})")
    offsets = manifests[0].get("label_offsets", {})
    if any(m.get("label_offsets", {}) != offsets for m in manifests):
        raise BuildError(f"{bundles_dir}: the bundles' label offsets differ; report on bundles packaged together")
    if twice := sorted({q for q in packaged if packaged.count(q) > 1}):
        raise BuildError(f"{bundles_dir}: more than one {', '.join(twice)} bundle (the report has a row per "
                         "quantisation): report on one bundle of each")
    compare = _Comparison(train_set, model, checkpoint.encoder(), paths, threads, offsets)
    baseline, framework, bundles = compare.on(val_set, "validation")
    framework["model_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    unseen = next((m["metrics"]["unseen_entities"] for m in reversed(manifests)
                   if "unseen_entities" in m.get("metrics", {})), {})
    rows = comparison_rows(framework, bundles, baseline)
    chosen = chosen or (Variant.DYNAMIC_INT8.value if Variant.DYNAMIC_INT8.value in bundles else next(iter(bundles)))
    table = markdown_table(rows)
    sections = [f"# Variants compared on the validation split ({checkpoint.data.holdout.holdout.value} holdout, "
                f"n={framework['n']})\n\n{table}\n"]
    if offsets:
        sections.append("The float model's polarity labels and every bundle's (not TF-IDF's) are taken with the "
                        "bundles' offsets on the logits: "
                        + ", ".join(f"{label} {offset:+g}" for label, offset in offsets.items()) + ".\n")
    related_rows = [(f"{name} at {m['relatedness'].get('threshold', DEFAULT_RELATED_THRESHOLD)}", m["relatedness"])
                    for name, m in [("PyTorch float32", framework), *bundles.items()] if "relatedness" in m]
    if related_rows:
        sections.append(_figures_table("Relatedness (RELATED / UNRELATED) on the same split", related_rows))
    gap = {}
    if with_polarity(gap_set):
        gap_baseline, gap_framework, gap_bundles = compare.on(gap_set, "the time gap's tweets")
        gap = {"TF-IDF + logistic regression": gap_baseline, "PyTorch float32": gap_framework,
               **{f"TFLite {variant}": m for variant, m in gap_bundles.items()}}
        sections.append(_figures_table("The time gap's tweets (between training and validation in each entity's time "
                                       "order: never trained on, no choice made on them)", list(gap.items())))
    if unseen:
        title = f"Unseen entities ({', '.join(unseen['entities'])}), {unseen['model']}"
        sections.append(_figures_table(f"{title}: polarity", [("float32", unseen)]))
        if "relatedness" in unseen:
            at = unseen.get("relatedness_at_threshold")
            sections.append(_figures_table(f"{title}: relatedness", [
                (f"float32 at {DEFAULT_RELATED_THRESHOLD}", unseen["relatedness"]),
                *([(f"float32 at {at['threshold']} (the bundles': {at['chosen']})", at)] if at else [])]))
    sections.append(f"Latency: one tweet at a time with the edge runtime, {threads or 'default'} thread(s). "
                    "Sizes are the model file; 'smaller than BERT-large' uses the study's 1.34 GB.\n\n"
                    f"![confusion matrix of {chosen}](confusion.png)\n\n![accuracy against size and latency](tradeoffs.png)\n")
    with atomic_dir(out, "report.json") as tmp:  # the whole report or the earlier one: a run cut off can be rerun
        plot_confusion(bundles[chosen], f"{chosen}, validation", tmp / "confusion.png")
        plot_tradeoffs(rows, tmp / "tradeoffs.png")
        write_text(tmp / "report.md", "\n".join(sections))
        write_json(tmp / "report.json", {"rows": rows, "baseline": baseline, "framework": framework,
                                         "bundles": bundles, "unseen_entities": unseen, Part.GAP: gap})
    return table


def _figures_table(title: str, rows: list[tuple[str, dict]]) -> str:
    """A markdown table of n, accuracy, macro-F1 and per-class F1 for several sets of metrics."""
    classes = rows[0][1].get("labels") or list(rows[0][1]["per_class"])  # per_class may have come back key-sorted
    lines = [f"## {title}\n", "| model | n | accuracy | macro-F1 | " + " | ".join(f"F1 {c}" for c in classes) + " |",
             "|---|---|---|---|" + "---|" * len(classes)]
    for name, m in rows:
        lines.append(f"| {name} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
                     + " | ".join(f"{m['per_class'][c]['f1']:.4f}" for c in classes) + " |")
    return "\n".join(lines) + "\n"
