"""Command line of the build side: train, package (convert and quantise), evaluate, report, init-random."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .data import DataError, load, split_by_time

DEFAULT_BASE = "google/mobilebert-uncased"


def _command_line() -> str:
    return shlex.join(["python", "-m", "model_build", *sys.argv[1:]])


def _load_data(args):
    examples, report = load(args.data, args.split, args.language)
    for line in report.lines():
        print(f"data: {line}")
    if not examples:
        raise DataError(f"{args.data}: no usable examples")
    return examples, report


def _checkpoint_split(args, summary: dict):
    """The training run's own split of ``--data``: same language, fraction, seed and limit."""
    data = summary["data"]
    args.split, args.language = data["split"], data["language"]
    examples, _ = _load_data(args)
    return split_by_time(examples[: data["limit"]], data["val_fraction"], data["seed"])


def _data_args(p: argparse.ArgumentParser, split: str = "training") -> None:
    p.add_argument("--data", required=True, help="RepLab 2013 root directory, or a CSV / JSONL file")
    p.add_argument("--split", default=split, help="RepLab split directory name (default: %(default)s)")
    p.add_argument("--language", default="EN", help="keep tweets of this language; 'all' keeps every one")


def _train_args(p: argparse.ArgumentParser) -> None:
    _data_args(p)
    p.add_argument("--base", default=DEFAULT_BASE, help="hub name or local path of a BERT-family encoder")
    p.add_argument("--input-format", choices=("entity+text", "text"), default="entity+text")
    p.add_argument("--max-length", type=int, help="token length (default: measured, 99.5th percentile)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--class-weighting", choices=("none", "sqrt", "balanced"), default="sqrt")
    p.add_argument("--patience", type=int, default=2, help="epochs without a better validation macro-F1")
    p.add_argument("--val-fraction", type=float, default=0.15, help="latest share of each entity's tweets")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--limit", type=int, help="use only the first N examples (smoke tests)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, help="PyTorch CPU threads")


def _data_summary(args, report) -> dict:
    return {"source": str(args.data), "split": args.split, "language": args.language,
            "val_fraction": args.val_fraction, "seed": args.seed, "limit": args.limit, "load": report.to_dict()}


def cmd_train(args) -> int:
    from .train import TrainConfig, train

    examples, report = _load_data(args)
    examples = examples[: args.limit]
    train_set, val_set = split_by_time(examples, args.val_fraction, args.seed)
    print(f"split: {len(train_set)} training, {len(val_set)} validation (latest {args.val_fraction:.0%} per entity)")
    config = TrainConfig(
        base=args.base, out_dir=Path(args.out), input_format=args.input_format, max_length=args.max_length,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        class_weighting=args.class_weighting, patience=args.patience, seed=args.seed,
        device=args.device, threads=args.threads,
    )
    summary = train(config, train_set, val_set, _command_line(), _data_summary(args, report))
    v = summary["validation"]
    print(f"best epoch {summary['best_epoch']}: accuracy {v['accuracy']:.4f} macro-F1 {v['macro_f1']:.4f}")
    return 0


def _read_summary(checkpoint: Path) -> dict:
    path = Path(checkpoint) / "train_summary.json"
    if not path.is_file():
        raise DataError(f"{checkpoint}: no train_summary.json (is this a 'train' run's best/ directory?)")
    return json.loads(path.read_text())


def cmd_package(args) -> int:
    from app.text import TextSettings, TweetEncoder

    from .convert import VARIANTS, convert, representative_inputs
    from .evaluate import evaluate_bundle, format_metrics
    from .package import write_bundle

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise DataError(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    checkpoint = Path(args.checkpoint)
    summary = _read_summary(checkpoint)
    train_set, val_set = _checkpoint_split(args, summary)
    settings = TextSettings.from_dict(json.loads((checkpoint / "text_settings.json").read_text()))
    input_format = summary["config"]["input_format"]
    encoder = TweetEncoder(checkpoint / "vocab.txt", settings, pair=input_format == "entity+text")
    calibration = representative_inputs(
        encoder.encode([e.text for e in train_set], [e.entity for e in train_set]), encoder, args.calibration
    )
    converted = convert(checkpoint, variants, calibration)
    framework = json.loads((checkpoint / "validation.json").read_text())
    training = {k: summary[k] for k in ("train_examples", "validation_examples", "train_label_counts",
                                        "token_lengths", "history", "best_epoch", "data", "command", "seconds")}
    training["config"] = summary["config"]
    for variant, (flatbuffer, note) in converted.items():
        out = Path(args.out) if len(variants) == 1 else Path(args.out) / variant
        bundle = write_bundle(
            out, flatbuffer=flatbuffer, vocab_file=checkpoint / "vocab.txt",
            labels=list(json.loads((checkpoint / "config.json").read_text())["id2label"].values()),
            text_settings=settings.to_dict(), input_format=input_format, quantization=variant,
            name=args.name, version=args.version, base_model=summary["config"]["base"],
            extra={"conversion": note, "training": training, "command": _command_line(),
                   "metrics": {"framework_validation": framework}, **({"notes": args.notes} if args.notes else {})},
            evaluate=lambda tmp: evaluate_bundle(tmp, val_set, args.threads) | {"bundle": str(out)},
        )
        print(f"package: wrote {bundle.path} ({variant})")
        print(format_metrics(json.loads((bundle.path / "manifest.json").read_text())["metrics"]["validation"]))
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_bundle, format_metrics
    from .fsutil import write_json

    if args.holdout:
        manifest = json.loads((Path(args.bundle) / "manifest.json").read_text())
        _, examples = _checkpoint_split(args, manifest["training"])
    else:
        examples, _ = _load_data(args)
    metrics = evaluate_bundle(args.bundle, examples, args.threads)
    print(format_metrics(metrics))
    if args.json:
        write_json(Path(args.json), metrics)
    return 0


def cmd_report(args) -> int:
    from app.text import TextSettings, TweetEncoder

    from .baseline import tfidf_baseline
    from .evaluate import evaluate_bundle, format_metrics
    from .fsutil import write_json, write_text
    from .metrics import classification_metrics
    from .report import comparison_rows, markdown_table, plot_confusion, plot_tradeoffs
    from .train import encode_examples, predict_logits

    checkpoint, out = Path(args.checkpoint), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = _read_summary(checkpoint)
    train_set, val_set = _checkpoint_split(args, summary)
    baseline = tfidf_baseline(train_set, val_set)
    print("report: TF-IDF + logistic regression\n" + format_metrics(baseline))

    import torch
    from transformers import AutoModelForSequenceClassification

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = TextSettings.from_dict(json.loads((checkpoint / "text_settings.json").read_text()))
    encoder = TweetEncoder(checkpoint / "vocab.txt", settings, pair=summary["config"]["input_format"] == "entity+text")
    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint))
    predicted = predict_logits(model, encoder, encode_examples(encoder, val_set)).argmax(1)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    framework = classification_metrics([labels.index(e.label) for e in val_set], predicted, labels)
    framework["model_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    print("report: PyTorch float32\n" + format_metrics(framework))

    bundles = {}
    for path in sorted(p for p in Path(args.bundles).iterdir() if (p / "manifest.json").is_file()):
        metrics = evaluate_bundle(path, val_set, args.threads)
        bundles[metrics["quantization"]] = metrics
        print(f"report: {path.name}\n" + format_metrics(metrics))
    rows = comparison_rows(framework, bundles, baseline)
    chosen = args.chosen if args.chosen in bundles else next(iter(bundles))
    plot_confusion(bundles[chosen], f"{chosen}, validation", out / "confusion.png")
    plot_tradeoffs(rows, out / "tradeoffs.png")
    table = markdown_table(rows)
    n = framework["n"]
    write_text(out / "report.md",
        f"# Variants compared on the time-ordered validation split (n={n})\n\n{table}\n\n"
        f"Latency: one tweet at a time with the edge runtime, {args.threads or 'default'} thread(s). "
        f"Sizes are the model file; 'smaller than BERT-large' uses the study's 1.34 GB.\n\n"
        f"![confusion matrix of {chosen}](confusion.png)\n\n![accuracy against size and latency](tradeoffs.png)\n",
    )
    write_json(out / "report.json", {"rows": rows, "baseline": baseline, "framework": framework, "bundles": bundles})
    print(table)
    return 0


def cmd_init_random(args) -> int:
    from .random_init import save_random_model

    out = save_random_model(args.arch, args.size, Path(args.vocab), Path(args.out), args.seed)
    print(f"init-random: wrote a random-weight {args.size} {args.arch} classifier to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_build", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="fine-tune an encoder; best epoch saved in OUT/best")
    _train_args(p)
    p.add_argument("--out", required=True, help="run directory (resumes from OUT/last if present)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("package", help="convert a checkpoint to TFLite and write bundles, evaluated on validation")
    _data_args(p)
    p.add_argument("--checkpoint", required=True, help="a 'train' run's best/ directory")
    p.add_argument("--variants", default="dynamic-int8", help="comma-separated: float32,float16,dynamic-int8,full-int8")
    p.add_argument("--out", required=True, help="the bundle directory (one variant) or a parent of one per variant")
    p.add_argument("--name", default="replab-polarity")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--notes", help="why this variant, or anything a user of the bundle should know")
    p.add_argument("--calibration", type=int, default=100, help="tweets for full-int8 calibration")
    p.add_argument("--threads", type=int, help="interpreter threads for the latency measurement")
    p.set_defaults(func=cmd_package)

    p = sub.add_parser("evaluate", help="score a bundle on labelled tweets with the edge runtime")
    _data_args(p)
    p.add_argument("--bundle", required=True)
    p.add_argument("--holdout", action="store_true", help="use the bundle's own validation split of --data")
    p.add_argument("--json", help="also write the metrics to this file")
    p.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="compare baseline, framework model and every bundle variant")
    _data_args(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--bundles", required=True, help="directory holding one bundle per variant")
    p.add_argument("--out", required=True, help="directory for report.md, report.json and PNG plots")
    p.add_argument("--chosen", default="dynamic-int8", help="variant whose confusion matrix is plotted")
    p.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("init-random", help="save a randomly initialised encoder in Hugging Face layout")
    p.add_argument("--arch", choices=("bert", "mobilebert"), default="mobilebert")
    p.add_argument("--size", choices=("tiny", "full"), default="full")
    p.add_argument("--vocab", required=True, help="a WordPiece vocab.txt (e.g. an uncased BERT vocabulary)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_init_random)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "language", None) == "all":
        args.language = None
    try:
        return args.func(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
