"""Command line of the build side: train, pretrain, soup, ensemble, package (convert and quantise), evaluate, report, curve,
init-random.
It parses and dispatches; the work is in the modules it names."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from app.arguments import SEED, WEIGHT, number, rate, whole_number
from app.errors import AppError, os_error_line
from app.jsonl import JSONL_SUFFIXES
from app.text import InputFormat

from .base import Architecture
from .checkpoint import Checkpoint, DataSpec
from .convert import VARIANTS, Variant
from .errors import BuildError
from .random_init import Size
from .settings import ClassWeighting, Device, Pooling, StanceHead
from .splits import Holdout, Part, SplitSpec

DEFAULT_BASE = "google/mobilebert-uncased"
HELD_OUT_FRACTION = 0.15  # train's and pretrain's --val-fraction and --gap-fraction
FIGURES_BYTES = 1 << 24  # the most a file --json replaces may hold: figures, never a data set
THREADS = whole_number(1, 256)  # far more and PyTorch cannot map its thread pools: a crash, not a run


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="RepLab 2013 root directory, or a CSV / JSONL file (text,label[,entity][,related])")
    p.add_argument("--split", help="RepLab split directory name (default: training)")
    p.add_argument("--language", help="keep tweets of this language (default: EN); 'all' keeps every one")


def _split(args) -> str:
    _replab_only(args, args.split, "--split")
    return args.split or "training"


def _language(args) -> str | None:
    _replab_only(args, args.language, "--language")
    return None if args.language == "all" else args.language or "EN"


def _replab_only(args, value: str | None, option: str) -> None:
    if value is not None and Path(str(args.data)).is_file():
        raise BuildError(f"{option} applies to RepLab's folder, not to a CSV or JSONL file ({args.data})")


def _auxiliary(folder: str | None, weight: float | None, name: str, kind=None, **more):
    """``--NAME DIR`` with ``--NAME-weight`` (and ``more`` of its settings, None where not given): the auxiliary
    tweets of a train run, a ``kind`` (default AuxiliaryTweets), or None."""
    from .train import AuxiliaryTweets

    given = {k: v for k, v in {"weight": weight, **more}.items() if v is not None}
    if given and not folder:
        flags = ", ".join(f"--{name}-{k}" for k in given)
        raise BuildError(f"{flags} appl{'ies' if len(given) == 1 else 'y'} to the {name} tweets: give --{name}")
    return (kind or AuxiliaryTweets)(folder, **given) if folder else None


def _stance(args):
    """``--stance DIR`` with its weight and head, or None."""
    from .train import StanceTask

    return _auxiliary(args.stance, args.stance_weight, "stance", StanceTask,
                      head=StanceHead(args.stance_head) if args.stance_head else None)


def cmd_train(args) -> int:
    from .distill import Distillation
    from .probe import LinearProbe
    from .train import TrainConfig, train_on

    init = Checkpoint.load(args.init) if args.init else None
    if init is not None and (args.base or args.max_length):
        raise BuildError("--init starts from that checkpoint's encoder and length: --base and --max-length do not apply")
    sentiment, stance = _auxiliary(args.sentiment, args.sentiment_weight, "sentiment"), _stance(args)
    if args.probe_c is not None and not args.probe_first:
        raise BuildError("--probe-c applies to the linear probe: give --probe-first")
    if not args.teacher and (args.distill_weight is not None or args.temperature is not None):
        raise BuildError("--distill-weight and --temperature apply to distillation: give --teacher checkpoints")
    given = {"weight": args.distill_weight, "temperature": args.temperature}
    distillation = Distillation(tuple(args.teacher), **{k: v for k, v in given.items() if v is not None}) \
        if args.teacher else None
    if args.extra_weight is not None and not args.extra:
        raise BuildError("--extra-weight applies to the --extra tweets: give --extra")
    if len({Path(f).resolve() for f in args.extra}) < len(args.extra):
        raise BuildError("an --extra file is given twice: its tweets would count double; give each file once")
    holdout = SplitSpec(Holdout(args.holdout), args.val_fraction, args.gap_fraction, args.seed)
    data = DataSpec(str(args.data), _split(args), _language(args), args.limit, not args.polarity_only, holdout,
                    tuple(args.extra), 1.0 if args.extra_weight is None else args.extra_weight, args.sample,
                    args.also_language, args.full_names, args.recency)
    input_format = InputFormat(args.input_format) if args.input_format else \
        init.input_format if init is not None else InputFormat.PAIR
    config = TrainConfig(
        base=init.base_model if init is not None else args.base or DEFAULT_BASE, out_dir=Path(args.out),
        input_format=input_format, max_length=args.max_length, init=str(init.path) if init is not None else None,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        class_weighting=ClassWeighting(args.class_weighting), related_weight=args.related_weight,
        patience=args.patience, seed=args.seed, device=Device(args.device), threads=args.threads, distillation=distillation,
        checkpoint_every=args.checkpoint_every, average_last=args.average_last, label_smoothing=args.label_smoothing,
        focal_gamma=args.focal_gamma, layer_decay=args.layer_decay, rdrop=args.rdrop, keep_mentions=args.keep_mentions or None,
        pooling=Pooling(args.pooling) if args.pooling else None,
        probe=LinearProbe(**({} if args.probe_c is None else {"c": args.probe_c})) if args.probe_first else None,
        sentiment=sentiment, stance=stance,
    )
    checkpoint = train_on(config, data, args.command_line)
    summary = checkpoint.summary
    v = summary.get(Part.VALIDATION)
    scores = f": accuracy {v['accuracy']:.4f} macro-F1 {v['macro_f1']:.4f}" if v else " (no validation split)"
    print(f"best epoch {summary['best_epoch']}{scores}")
    return 0


def cmd_pretrain(args) -> int:
    from .pretrain import PretrainConfig, pretrain, pretraining_texts

    fractions = {"--val-fraction": args.val_fraction, "--gap-fraction": args.gap_fraction}
    given = [flag for flag, value in {"--split": args.split, **fractions}.items() if value is not None]
    if given and not args.data:
        raise BuildError(f"{' and '.join(given)} choose{'s' * (len(given) == 1)} among RepLab's tweets: give --data")
    data = DataSpec(str(args.data), _split(args), "EN", unrelated=True, holdout=SplitSpec(
        Holdout.TIME, *(HELD_OUT_FRACTION if v is None else v for v in fractions.values()), args.seed)) \
        if args.data else None
    config = PretrainConfig(
        base=args.base or DEFAULT_BASE, out_dir=Path(args.out), max_steps=args.max_steps, head_warmup=args.head_warmup,
        batch_size=args.batch_size, learning_rate=args.learning_rate, mask_fraction=args.mask_fraction,
        max_length=args.max_length, held_out=args.held_out, seed=args.seed, device=Device(args.device), threads=args.threads)
    texts, sources = pretraining_texts(data, args.texts)
    print(f"pretrain: {len(texts)} texts ({sources})")
    model, trained = pretrain(config, texts, sources, args.command_line)
    print(f"pretrain: {'wrote' if trained else 'already there:'} {model} (a base for train --base)")
    return 0


def cmd_package(args) -> int:
    from .evaluate import format_metrics
    from .offsets import parse_offset
    from .package import package_checkpoint

    unseen = Checkpoint.load(args.unseen_entities) if args.unseen_entities else None
    holdout_run = Checkpoint.load(args.holdout_run) if args.holdout_run else None
    bundles = package_checkpoint(
        Checkpoint.load(args.checkpoint), [v.strip() for v in args.variants.split(",") if v.strip()], Path(args.out),
        name=args.name, version=args.version, command=args.command_line, notes=args.notes, calibration=args.calibration,
        threads=args.threads, data_source=args.data, unseen=unseen, holdout_run=holdout_run,
        related_threshold=args.related_threshold,
        offset=parse_offset(args.negative_offset) if args.negative_offset is not None else None)
    for bundle in bundles:
        print(f"package: wrote {bundle.path} ({bundle.quantization})" + (
            f", about the entity from a relatedness of {bundle.related_threshold}" if bundle.has_related else "")
            + "".join(f", {offset:+g} on the {label} logit" for label, offset in zip(bundle.labels, bundle.label_offsets)
                      if offset))
        metrics = bundle.manifest()["metrics"]
        if metrics[Part.VALIDATION]:
            print(format_metrics(metrics[Part.VALIDATION]))
        if Part.GAP in metrics:
            print("the time gap's tweets: " + format_metrics(metrics[Part.GAP]))
        if not (metrics[Part.VALIDATION] or Part.GAP in metrics):
            print("package: no held-out tweets (trained on everything)")
    return 0


def _json_file(value: str | None, data: str | None) -> Path | None:
    """Where ``--json`` writes (checked before the work): a file of its own, not a folder, a link or a device, nor a
    file in a bundle, checkpoint or run folder (a manifest overwritten is a bundle lost), nor the ``--data`` file or
    any other file that holds something else than one JSON document (tweets overwritten are lost), under a folder."""
    from app.bundle import MANIFEST

    from .checkpoint import SUMMARY_FILE
    from .runs import RUN_FILE

    if value is None:
        return None
    path = Path(value)
    if not value or path.is_dir():
        raise BuildError(f"--json {value!r} is a folder: give a file name")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BuildError(f"--json {path} is a link or a device, not a file: give a file name")
    model = all((path.parent / name).is_file() for name in ("config.json", "model.safetensors"))  # a base, a checkpoint
    if model or any((path.parent / name).is_file() for name in (MANIFEST, SUMMARY_FILE, RUN_FILE, "report.json",
                                                                "curve.json")):
        raise BuildError(f"--json {path}: {path.parent} is a bundle, model, run, report or curve folder: give a file "
                         "outside it")
    if not next(p for p in path.absolute().parents if p.exists()).is_dir():
        raise BuildError(f"--json {path}: a file stands where its folder would be: give a file name in a folder")
    if path.is_file() and path.stat().st_size:  # an empty file is a name made ready
        if data and Path(data).is_file() and path.samefile(data):
            raise BuildError(f"--json {path} is the --data file: give another file name")
        try:
            if path.stat().st_size > FIGURES_BYTES:
                raise ValueError("too large")
            held = json.loads(path.read_text(encoding="utf-8"))
            if path.suffix.lower() in JSONL_SUFFIXES or (isinstance(held, dict) and "text" in held):
                raise ValueError("a tweet")  # a JSONL file of one labelled tweet (a feedback file's first) is one document
        except (UnicodeDecodeError, ValueError):
            raise BuildError(f"--json {path} holds something else than JSON figures: give another file name") from None
    return path


def cmd_evaluate(args) -> int:
    from app.bundle import Bundle

    from .evaluate import evaluate_bundle, format_metrics, holdout_examples, named_in_full
    from .fsutil import write_json

    json_file = _json_file(args.json, args.data)
    measured = {"data": str(Path(args.data).resolve()), "full_names": args.full_names}  # what the figures are of
    if args.holdout or args.gap:
        if args.split or args.language:
            raise BuildError("--holdout and --gap score the bundle's own held-out tweets: --split and --language do "
                             "not apply")
        examples, spec = holdout_examples(Bundle.load(args.bundle), args.data, gap=args.gap)
        measured["part"] = Part.GAP if args.gap else Part.VALIDATION
    else:
        spec = DataSpec(str(args.data), _split(args), _language(args), unrelated=True)
        examples, report = spec.load()
        for line in report.lines():  # what was left out of the figures, and why
            print(f"data: {line}")
        measured["part"] = "all"
    if not Path(args.data).is_file():  # RepLab's folder
        measured.update(split=spec.split, language=spec.language or "all")
    if args.full_names:
        examples = named_in_full(examples, args.data)
    metrics = evaluate_bundle(args.bundle, examples, args.threads)
    print(format_metrics(metrics))
    if json_file:
        write_json(json_file, {**metrics, "measured_on": measured})
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    print(write_report(Checkpoint.load(args.checkpoint), Path(args.bundles), Path(args.out), chosen=args.chosen,
                       threads=args.threads, data_source=args.data))
    return 0


def cmd_curve(args) -> int:
    from .curve import CurveSpec, run_curve, write_curve
    from .fsutil import check_output

    try:
        spec = CurveSpec(tuple(int(v) for v in args.sizes.split(",")), args.pool,
                         tuple(float(v) for v in args.weights.split(",")), args.sample, args.epochs, args.learning_rate,
                         args.seed)
    except ValueError:
        raise BuildError(f"--sizes and --weights take comma-separated numbers, got {args.sizes!r} and {args.weights!r}") from None
    check_output(Path(args.out), "curve.json", "curve (curve.json)")  # before the runs, not after them
    out, work = Path(args.out).resolve(), Path(args.work).resolve()
    if work == out or out in work.parents:  # the report replaces --out whole: the runs would go with it
        raise BuildError(f"--work {args.work} is inside --out {args.out}, which the report replaces whole: give a "
                         "--work outside it")
    result = run_curve(Checkpoint.load(args.checkpoint), spec, Path(args.work), args.command_line, args.threads, args.data)
    print(write_curve(result, Path(args.out)))
    return 0


def cmd_soup(args) -> int:
    from .soup import make_soup

    make_soup(args.checkpoint, Path(args.out), args.command_line)
    return 0


def cmd_ensemble(args) -> int:
    from .ensemble import format_ensemble, score_ensemble
    from .fsutil import write_json
    from .offsets import parse_offset

    json_file = _json_file(args.json, args.data)
    result = score_ensemble(args.checkpoint, parse_offset(args.negative_offset), args.data)
    print(format_ensemble(result))
    if json_file:
        write_json(json_file, result)
    return 0


def cmd_init_random(args) -> int:
    from .random_init import save_random_model

    if not Path(args.vocab).is_file():
        raise BuildError(f"--vocab {args.vocab}: no such file (a WordPiece vocab.txt)")
    out = save_random_model(Architecture(args.arch), Size(args.size), Path(args.vocab), Path(args.out), args.seed)
    print(f"init-random: wrote a random-weight {args.size} {args.arch} classifier to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_build", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="fine-tune an encoder; best epoch saved in OUT/best")
    _data_args(p)
    p.add_argument("--extra", action="append", default=[], metavar="FILE",
                   help="a CSV / JSONL of your own labelled tweets (text,label,entity[,related]) added to --data; "
                        "repeatable")
    p.add_argument("--extra-weight", type=WEIGHT, help="loss weight of the --extra examples (default 1)")
    p.add_argument("--also-language", metavar="LANG",
                   help="RepLab tweets of this language (ES) train too, none later than its entity's latest training "
                        "tweet of --language; validation stays in --language")
    p.add_argument("--full-names", type=number(), default=0.0, metavar="SHARE",
                   help="a seeded SHARE of the training tweets paired with their entity's full name (RepLab's "
                        "entity_name: Bayerische Motoren Werke AG) instead of its query (BMW); validation keeps the query")
    p.add_argument("--recency", type=number(), metavar="WEIGHT",
                   help="weight each entity's training tweets by their order in time, linearly from WEIGHT (its "
                        "oldest) to 1 (its newest): the tweets to label come later (default: all alike)")
    p.add_argument("--sample", type=int, metavar="N",
                   help="train on a seeded random N of --data's examples (a replay of them beside --extra)")
    p.add_argument("--base", help=f"hub name or local path of a BERT-family encoder (default: {DEFAULT_BASE})")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start from this fine-tuned checkpoint (a 'train' run's best/) instead of a base encoder")
    p.add_argument("--input-format", choices=[f.value for f in InputFormat],
                   help=f"default: the --init checkpoint's, else {InputFormat.PAIR.value}")
    p.add_argument("--max-length", type=int, help="token length (default: measured, 99.5th percentile)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=rate, default=5e-5)
    p.add_argument("--class-weighting", choices=[w.value for w in ClassWeighting], default=ClassWeighting.SQRT.value)
    p.add_argument("--polarity-only", action="store_true",
                   help="train on tweets with a polarity label only (no unrelated tweets, no relatedness head)")
    p.add_argument("--label-smoothing", type=number(), metavar="EPS",
                   help="spread EPS of each gold polarity label over all labels (Szegedy et al. 2016)")
    p.add_argument("--focal-gamma", type=WEIGHT, metavar="GAMMA",
                   help="scale each tweet's polarity loss by (1 - p_gold) ** GAMMA: the focal loss (Lin et al. 2017)")
    p.add_argument("--layer-decay", type=number(), metavar="F",
                   help="layer-wise learning-rate decay: each encoder layer learns at F times the rate of the one "
                        "above, the embeddings below the lowest too, the heads at --learning-rate (ELECTRA-style; "
                        "default: one rate)")
    p.add_argument("--rdrop", type=WEIGHT, metavar="ALPHA",
                   help="R-Drop (Liang et al. 2021): pass each batch twice, with different dropout, and add ALPHA x "
                        "the mean of the two KL divergences (each way) between the two passes' polarity "
                        "distributions (twice the compute per step)")
    p.add_argument("--keep-mentions", action="store_true",
                   help="read the tweets' @handles as written (@BMW_UK), where by default every one is @user "
                        "(TweetEval's convention); stored in the bundle, so serving does the same")
    p.add_argument("--pooling", choices=[v.value for v in Pooling],
                   help="what the heads read: cls, the [CLS] token through BERT's pooler (default); mean, the mean "
                        "of the tokens' last hidden states (the pooling sentence-embedding bases were trained with); "
                        "or mean-cls, the mean for polarity (and sentiment) and [CLS] for relatedness")
    p.add_argument("--probe-first", action="store_true",
                   help="fit the heads first as logistic regressions on the base's frozen features, then fine-tune "
                        "everything from there (LP-FT, Kumar et al. 2022)")
    p.add_argument("--probe-c", type=number(), metavar="C",
                   help="the probe's inverse L2 strength, scikit-learn's C on its summed loss (default 1)")
    p.add_argument("--sentiment", metavar="DIR",
                   help="TweetEval's sentiment folder: its tweets train a sentiment head beside polarity, an auxiliary "
                        "task (the head is not served)")
    p.add_argument("--sentiment-weight", type=WEIGHT, help="weight of the sentiment loss (default 0.5)")
    p.add_argument("--stance", metavar="DIR",
                   help="TweetEval's stance folder: its tweets train polarity towards their target, paired with it as "
                        "the entity (favour positive, against negative, none neutral); training only")
    p.add_argument("--stance-weight", type=WEIGHT, help="loss weight of the stance tweets (default 0.5)")
    p.add_argument("--stance-head", choices=[h.value for h in StanceHead],
                   help="the head the stance tweets train: polarity (default), or the sentiment task's, with the same "
                        "labels (needs --sentiment)")
    p.add_argument("--related-weight", type=WEIGHT, default=1.0,
                   help="weight of the relatedness loss (0: no head; with --init, its checkpoint's head is kept untrained)")
    p.add_argument("--teacher", action="append", default=[], metavar="CHECKPOINT",
                   help="distil from this fine-tuned checkpoint (repeatable: their probabilities are averaged); "
                        "its soft targets cover every training tweet, those without a polarity label too")
    p.add_argument("--distill-weight", type=WEIGHT, help="share of each loss taken by the soft targets (default 0.5)")
    p.add_argument("--temperature", type=WEIGHT, help="softening of the teachers' polarity (default 2)")
    p.add_argument("--average-last", type=int, metavar="N",
                   help="keep the last N Trainer checkpoints (one every --checkpoint-every steps and at each epoch's "
                        "end) and also write OUT/averaged: their mean weights, validated")
    p.add_argument("--checkpoint-every", type=int, default=300, metavar="STEPS",
                   help="a Trainer checkpoint every STEPS steps, where a cut-off run resumes (default 300)")
    p.add_argument("--patience", type=int, default=2, help="epochs without a better validation macro-F1")
    p.add_argument("--holdout", choices=[h.value for h in Holdout], default=Holdout.TIME.value,
                   help="validate on each entity's latest tweets (time) or on fixed unseen entities (entities)")
    p.add_argument("--val-fraction", type=number(), default=HELD_OUT_FRACTION,
                   help="latest share of each entity's tweets (0: none)")
    p.add_argument("--gap-fraction", type=number(), default=HELD_OUT_FRACTION,
                   help="share of each entity's tweets between training and validation left out (a time gap; "
                        "not applied to tweets without timestamps)")
    p.add_argument("--seed", type=SEED, default=13)
    p.add_argument("--limit", type=whole_number(1), help="use only the first N examples (smoke tests)")
    p.add_argument("--device", choices=[d.value for d in Device], default=Device.AUTO.value,
                   help="auto: a GPU when PyTorch sees one; cuda: refuse to start without one")
    p.add_argument("--threads", type=THREADS, help="PyTorch CPU threads")
    p.add_argument("--out", required=True,
                   help="run directory (resumes from its newest checkpoint in OUT/trainer if the settings match)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain", help="domain-adaptive masked-LM training of a base encoder on tweet texts; "
                                        "OUT/model is a base for train --base")
    p.add_argument("--base", help=f"hub name or local path of a BERT-family encoder (default: {DEFAULT_BASE})")
    p.add_argument("--data", help="RepLab 2013 root: its texts of every language, related or not, less the "
                                  "validation tweets (and gap) that train's time holdout keeps out")
    p.add_argument("--split", help="RepLab split directory name (default: training)")
    p.add_argument("--val-fraction", type=number(), help="as train's (and its default): 0 with --gap-fraction 0 keeps all")
    p.add_argument("--gap-fraction", type=number(), help="as train's (and its default)")
    p.add_argument("--texts", action="append", default=[], metavar="PATH",
                   help="a file of tweets, one per line, or a folder of *_text.txt files (TweetEval); repeatable")
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--head-warmup", type=int, metavar="STEPS",
                   help="the first STEPS of --max-steps train the masked-LM head alone (its transform and output "
                        "bias), the encoder and the word embeddings the head's output shares frozen")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=rate, default=1e-4)
    p.add_argument("--max-length", type=int, default=64, help="tokens per tweet")
    p.add_argument("--mask-fraction", type=number(), default=0.15, help="share of tokens masked (BERT's 80/10/10)")
    p.add_argument("--held-out", type=int, default=1000,
                   help="texts kept out of training, whose masked-token loss is measured before and after")
    p.add_argument("--seed", type=SEED, default=13)
    p.add_argument("--device", choices=[d.value for d in Device], default=Device.AUTO.value,
                   help="auto: a GPU when PyTorch sees one; cuda: refuse to start without one")
    p.add_argument("--threads", type=THREADS, help="PyTorch CPU threads")
    p.add_argument("--out", required=True, help="run directory (resumes from OUT/trainer if the settings match)")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("package", help="convert a checkpoint to TFLite and write bundles, evaluated on validation and "
                                       "the time gap")
    p.add_argument("--checkpoint", required=True, help="a 'train' run's best/ directory")
    p.add_argument("--data", help="where the checkpoint's training data is now (default: where it was)")
    p.add_argument("--variants", default=Variant.DYNAMIC_INT8.value,
                   help=f"comma-separated: {','.join(VARIANTS)}")
    p.add_argument("--out", required=True, help="the bundle directory (one variant) or a parent of one per variant")
    p.add_argument("--name", default="replab-polarity")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--notes", help="why this variant, or anything a user of the bundle should know")
    p.add_argument("--unseen-entities", help="the same recipe's checkpoint trained with --holdout entities: their "
                                             "figures, and the relatedness threshold of highest macro-F1 there")
    p.add_argument("--related-threshold", type=number(), help="the relatedness probability from which a tweet is about "
                                                           "the entity (default: chosen on --unseen-entities, else 0.5)")
    p.add_argument("--negative-offset", metavar="chosen|X",
                   help="added to the negative logit before the label is taken: 'chosen', the one of highest macro-F1 "
                        "on the measured run's validation split (-1.5 to 0.5, step 0.1), or a number (default: none)")
    p.add_argument("--holdout-run", help="for a checkpoint trained on everything: the same recipe's checkpoint "
                                         "trained with the time holdout, whose bundle's validation figures it gets")
    p.add_argument("--calibration", type=whole_number(1), default=100, help="tweets for full-int8 calibration")
    p.add_argument("--threads", type=THREADS, help="interpreter threads for the latency measurement")
    p.set_defaults(func=cmd_package)

    p = sub.add_parser("evaluate", help="score a bundle on labelled tweets with the edge runtime")
    _data_args(p)
    p.add_argument("--bundle", required=True)
    held = p.add_mutually_exclusive_group()
    held.add_argument("--holdout", action="store_true", help="use the bundle's own validation split of --data")
    held.add_argument("--gap", action="store_true",
                      help="use the bundle's own time gap of --data (the tweets between its training and validation)")
    p.add_argument("--full-names", action="store_true",
                   help="pair each RepLab tweet with its entity's full name (Bayerische Motoren Werke AG) instead of "
                        "its query (BMW): how much the way a brand is named moves the labels (a bundle reads the names "
                        "in its entity_aliases as their queries)")
    p.add_argument("--json", help="also write the metrics to this file")
    p.add_argument("--threads", type=THREADS)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="compare baseline, framework model and every bundle variant")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", help="where the checkpoint's training data is now (default: where it was)")
    p.add_argument("--bundles", required=True, help="directory holding one bundle per variant")
    p.add_argument("--out", required=True, help="directory for report.md, report.json and PNG plots")
    p.add_argument("--chosen", choices=VARIANTS,
                   help="variant whose confusion matrix is plotted (default: dynamic-int8 where packaged, else the first)")
    p.add_argument("--threads", type=THREADS)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("curve", help="learning curve of adapting a checkpoint to entities it never saw")
    p.add_argument("--checkpoint", required=True, help="a 'train' run's best/ trained with --holdout entities")
    p.add_argument("--data", help="where the checkpoint's training data is now (default: where it was)")
    p.add_argument("--sizes", default="0,50,100,200,400", help="own labelled tweets added per entity")
    p.add_argument("--pool", type=int, default=400,
                   help="each entity's earliest tweets the added ones come from; its later ones are scored")
    p.add_argument("--weights", default="1", help="comma-separated loss weights of the added tweets")
    p.add_argument("--sample", type=int, default=3000, help="RepLab tweets replayed beside them (before the split)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--learning-rate", type=rate, default=3e-5)
    p.add_argument("--seed", type=SEED, default=13)
    p.add_argument("--threads", type=THREADS)
    p.add_argument("--work", required=True, help="folder for the runs and the added tweets' files (tweet texts)")
    p.add_argument("--out", required=True, help="folder for curve.json, curve.md and curve.png")
    p.set_defaults(func=cmd_curve)

    p = sub.add_parser("soup", help="average the weights of runs of one recipe (seeds) into one model; OUT/best")
    p.add_argument("--checkpoint", action="append", required=True,
                   help="a 'train' run's best/; give it once per run, at least twice")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_soup)

    p = sub.add_parser("ensemble", help="score checkpoints' averaged probabilities on the first one's validation and "
                                        "gap tweets: what a distilled student could carry at most")
    p.add_argument("--checkpoint", action="append", required=True,
                   help="a 'train' run's best/; give it once per member, at least twice; the first one's held-out "
                        "tweets are scored, and no member may have trained on them")
    p.add_argument("--negative-offset", metavar="chosen|X", default="0",
                   help="added to the negative logit, the ensemble's and each member's: 'chosen' on the ensemble's "
                        "validation figures, or a number (default 0)")
    p.add_argument("--data", help="where the first checkpoint's training data is now (default: where it was)")
    p.add_argument("--json", help="also write the figures to this file")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("init-random", help="save a randomly initialised encoder in Hugging Face layout")
    p.add_argument("--arch", choices=[a.value for a in Architecture], default=Architecture.MOBILEBERT.value)
    p.add_argument("--size", choices=[s.value for s in Size], default=Size.FULL.value)
    p.add_argument("--vocab", required=True, help="a WordPiece vocab.txt (e.g. an uncased BERT vocabulary)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=cmd_init_random)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch, and turn a BuildError (or the edge side's AppError, from a bundle it loads, or an unreadable
    file) into one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "model_build", *argv])  # recorded in checkpoints and bundles
    if args.func is not cmd_package:  # transformers imports TensorFlow wherever it is installed (5 s); only package converts
        os.environ.setdefault("USE_TF", "0")
    try:
        return args.func(args)
    except (BuildError, AppError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: run the same line again to go on (train and pretrain resume from their last checkpoint)",
              file=sys.stderr)
        return 130
    return 2
