"""The study's comparison: every variant against the float model, BERT-large and the baseline."""

from __future__ import annotations

from pathlib import Path

BERT_LARGE_BYTES = 1_340_000_000  # the reference study's BERT-large model size, 1.34 GB


def comparison_rows(framework: dict, bundles: dict[str, dict], baseline: dict) -> list[dict]:
    """Table rows: the baseline, the framework (PyTorch float32) model, then each TFLite variant."""
    float_bytes = bundles["float32"]["model_bytes"] if "float32" in bundles else None
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
        "| model | accuracy | macro-F1 | Δ accuracy vs float | size (bytes) | smaller than float | smaller than BERT-large | median ms | p95 ms |",
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tradeoffs(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.savefig(path, dpi=120)
    plt.close(fig)
