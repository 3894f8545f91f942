"""Fine-tuning a BERT-family encoder for reputation polarity and relatedness (PyTorch), seeded and resumable."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from app.bundle import sha256_file
from app.text import MAX_LENGTH, MIN_LENGTH, InputFormat, TextSettings, TweetEncoder

from .base import base_architecture, base_tokenizer, resolve_base
from .checkpoint import SUMMARY_FILE, Checkpoint, DataSpec, save_checkpoint, split_digest
from .data import LABELS, Example, load_sentiment, load_stance, with_polarity
from .distill import TARGETS_FILE, Distillation, check_unseen, teacher_targets
from .errors import BuildError, readable
from .fsutil import write_json
from .pretrain import check_base_unseen
from .probe import PROBE_FILE, LinearProbe, fit_heads
from .runs import (
    RunKind,
    as_json,
    claim_run,
    elapsed_callback,
    epoch_order_callback,
    finish_run,
    last_checkpoint,
    run_settings,
    started_settings,
)
from .scoring import encode_examples, pooled_features, predict, predict_tweets, text_encoder, validation_metrics
from .settings import ClassWeighting, Device, Pooling, StanceHead
from .splits import UNSEEN_ENTITIES, Holdout, Part

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class AuxiliaryTweets:
    """Labelled tweets from outside the training data (a TweetEval folder) and the weight of their loss."""

    folder: str
    weight: float = 0.5

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise BuildError(f"the weight of the tweets in {self.folder} must be positive, got {self.weight}")


@dataclass(frozen=True)
class StanceTask(AuxiliaryTweets):
    """TweetEval's stance tweets (:func:`load_stance`), paired with their target, and the head they train."""

    head: StanceHead = StanceHead.POLARITY

    def examples(self) -> list[Example]:
        """The stance tweets at their weight, their label on the head they train."""
        into_sentiment = self.head is StanceHead.SENTIMENT
        return [replace(e, weight=self.weight, **({"label": None, "sentiment": e.label} if into_sentiment else {}))
                for e in load_stance(self.folder)]


@dataclass(frozen=True)
class TrainConfig:
    base: str
    out_dir: Path
    input_format: InputFormat = InputFormat.PAIR
    max_length: int | None = None
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    class_weighting: ClassWeighting = ClassWeighting.SQRT
    related_weight: float = 1.0
    patience: int = 2
    seed: int = 13
    checkpoint_every: int = 300
    device: Device = Device.AUTO
    threads: int | None = None
    init: str | None = None  # a fine-tuned checkpoint to start from (its weights, vocabulary and text settings)
    distillation: Distillation | None = None
    average_last: int | None = None  # also write averaged/: the mean weights of the last N Trainer checkpoints
    label_smoothing: float | None = None  # of the polarity cross-entropy with the gold labels
    focal_gamma: float | None = None  # focal loss (Lin et al. 2017): gold cross-entropy x (1 - p_gold) ** gamma
    sentiment: AuxiliaryTweets | None = None  # an auxiliary task on its own head
    stance: StanceTask | None = None  # TweetEval's stance tweets, polarity towards their target
    pooling: Pooling | None = None  # what the heads read from --base (None: cls; --init keeps its checkpoint's)
    probe: LinearProbe | None = None  # the heads fitted on the base's frozen features before fine-tuning (LP-FT)
    layer_decay: float | None = None  # each layer's learning rate this times the one above's (ReputationModel.layer_rates)
    rdrop: float | None = None  # weight of R-Drop's consistency loss between two dropout passes (consistency_loss)
    keep_mentions: bool | None = None  # True: the @handles as written, not all one token (--init keeps its checkpoint's)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise BuildError(f"training needs at least 1 epoch, a batch of at least 1 and a patience of at least 1 "
                             f"epoch, got {self.epochs}, {self.batch_size} and {self.patience}")
        if self.max_length is not None and not MIN_LENGTH <= self.max_length <= MAX_LENGTH:
            raise BuildError(f"--max-length {self.max_length}: give {MIN_LENGTH} to {MAX_LENGTH} tokens")
        if self.checkpoint_every < 1:
            raise BuildError(f"a checkpoint every {self.checkpoint_every} steps: give at least 1")
        if self.average_last is not None and self.average_last < 2:
            raise BuildError(f"averaging needs at least 2 checkpoints, got {self.average_last}")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise BuildError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise BuildError(f"the layer-wise learning-rate decay must be in (0, 1], got {self.layer_decay}")
        if self.rdrop is not None and not self.rdrop > 0:
            raise BuildError(f"the R-Drop weight must be positive, got {self.rdrop}")
        if not self.related_weight >= 0:
            raise BuildError(f"the relatedness loss's weight must be 0 or more, got {self.related_weight}")
        if self.focal_gamma is not None and not self.focal_gamma > 0:
            raise BuildError(f"the focal loss's gamma must be positive, got {self.focal_gamma}")
        if self.stance is not None and self.stance.head is StanceHead.SENTIMENT and self.sentiment is None:
            raise BuildError("--stance-head sentiment trains the sentiment task's head: give --sentiment")
        if self.sentiment is not None and self.init is not None:
            raise BuildError("the sentiment task's head is new: start from --base, not --init")
        if self.pooling is not None and self.init is not None:
            raise BuildError("--init keeps its checkpoint's pooling: --pooling goes with --base")
        if self.keep_mentions and self.init is not None:
            raise BuildError("--init keeps its checkpoint's text settings: --keep-mentions goes with --base")
        if self.probe is not None and self.init is not None:
            raise BuildError("--probe-first fits new heads on a base's features: start from --base, not --init")
        if self.stance is not None and self.distillation is not None:
            raise BuildError("the teachers' targets would stand in for the stance tweets' own labels: --stance and "
                             "--teacher do not go together")
        if self.stance is not None and not self.input_format.pair:
            raise BuildError("the stance tweets are polarity towards their target: --stance needs --input-format "
                             "entity+text")
        if self.sentiment is not None and self.distillation is not None:
            raise BuildError("the teachers' targets are RepLab polarity: the sentiment task's tweets take none, so "
                             "--sentiment and --teacher do not go together")

    def to_dict(self) -> dict:
        return as_json(self)


def length_stats(lengths: Sequence[int]) -> dict:
    arr = np.asarray(lengths)
    return {
        "mean": round(float(arr.mean()), 1),
        **{f"p{q}": int(np.percentile(arr, q)) for q in (50, 90, 95, 99, 99.5)},
        "max": int(arr.max()),
    }


def choose_max_length(lengths: Sequence[int]) -> int:
    """The 99.5th percentile of token lengths rounded up to a multiple of 8 (at least 16, at most 128)."""
    p = float(np.percentile(np.asarray(lengths), 99.5))
    return int(min(128, max(16, math.ceil(p / 8) * 8)))


def class_weights(labels: Sequence[int], scheme: ClassWeighting) -> np.ndarray:
    counts = np.maximum(np.bincount(np.asarray(labels, dtype=int), minlength=len(LABELS)).astype(float), 1)
    weights = {ClassWeighting.NONE: np.ones(len(LABELS)), ClassWeighting.SQRT: 1 / np.sqrt(counts),
               ClassWeighting.BALANCED: 1 / counts}[scheme]
    return weights * len(LABELS) / weights.sum()


def mean_weights(states: Sequence[dict]) -> dict:
    """The element-wise mean of state dicts with the same keys (as float tensors)."""
    return {k: sum(s[k].float() for s in states) / len(states) for k in states[0]}


def score_gap(best: Path, gap: Sequence[Example]) -> Checkpoint:
    """A run's best checkpoint, scored once on its time gap's tweets (``gap`` in its summary): later than its
    training tweets, earlier than its validation tweets, never trained on and never used for a choice, a second
    check of the validation figures that every choice followed."""
    checkpoint = Checkpoint.load(best)
    if Part.GAP in checkpoint.summary or not with_polarity(gap):
        return checkpoint
    encoder = checkpoint.encoder()
    logits, related = predict_tweets(checkpoint.model(), encoder, gap)
    metrics = validation_metrics(gap, logits, related)
    write_json(best / SUMMARY_FILE, {**checkpoint.summary, Part.GAP: metrics})
    print(f"gap tweets ({metrics['n']} with polarity, never trained on): accuracy {metrics['accuracy']:.4f} "
          f"macro-F1 {metrics['macro_f1']:.4f}" + (
              f", relatedness {metrics['relatedness']['accuracy']:.4f}" if "relatedness" in metrics else ""))
    return Checkpoint.load(best)


class _Examples:
    """Training rows for the Trainer: token ids, the polarity label (-100 without one), relatedness (NaN unknown),
    the example's loss weight, the sentiment label (-100 without one) and, when distilling, the teachers' soft
    polarity and relatedness targets."""

    def __init__(self, encodings, polarity: Sequence[int], related: Sequence[float], weights: Sequence[float],
                 sentiment: Sequence[int], soft: np.ndarray | None = None, soft_related: np.ndarray | None = None):
        self.rows = [{"input_ids": e.ids, "encoding": e, "labels": y, "related": r, "weight": w,  # ids: length groups
                      "sentiment": z} for e, y, r, w, z in zip(encodings, polarity, related, weights, sentiment)]
        if soft is not None:
            for row, p, q in zip(self.rows, soft.tolist(), soft_related.tolist()):
                row.update(soft=p, soft_related=q)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def _collate(encoder: TweetEncoder):
    """Pad a batch to its longest tweet with the served pipeline's own padding."""
    import torch

    def collate(rows: list[dict]) -> dict:
        encodings = [r["encoding"] for r in rows]
        arrays = encoder.pad(encodings, max(len(e.ids) for e in encodings))
        batch = {k: torch.from_numpy(v.astype(np.int64)) for k, v in arrays.items()}
        batch["labels"] = torch.tensor([r["labels"] for r in rows])
        batch["related"] = torch.tensor([r["related"] for r in rows], dtype=torch.float32)
        batch["weight"] = torch.tensor([r["weight"] for r in rows], dtype=torch.float32)
        batch["sentiment"] = torch.tensor([r["sentiment"] for r in rows])
        for key in ("soft", "soft_related"):
            if key in rows[0]:
                batch[key] = torch.tensor([r[key] for r in rows], dtype=torch.float32)
        return batch

    return collate


@dataclass(frozen=True)
class Targets:
    """A batch's targets: polarity labels (-100: none), relatedness (NaN: unknown), loss weights, the
    teachers' soft polarity ``[batch, labels]`` and relatedness probabilities (NaN: none) when distilling, and
    sentiment labels (-100: none) for the auxiliary task."""

    polarity: torch.Tensor
    related: torch.Tensor
    weight: torch.Tensor
    soft: torch.Tensor | None = None
    soft_related: torch.Tensor | None = None
    sentiment: torch.Tensor | None = None

    def map(self, change) -> Targets:
        """These targets with ``change`` applied to each tensor they have."""
        return Targets(*(None if t is None else change(t) for t in (getattr(self, f.name) for f in fields(self))))


def reputation_loss(polarity, related, targets: Targets, class_weights, related_weight: float,
                    distillation: Distillation | None, label_smoothing: float = 0.0, focal_gamma: float = 0.0,
                    sentiment=None, sentiment_weight: float = 0.0):
    """Class-weighted polarity cross-entropy (with ``label_smoothing``; each example's scaled by
    ``(1 - p_gold) ** focal_gamma``, the focal loss of Lin et al. 2017, when that is not 0) plus ``related_weight`` x binary
    cross-entropy where relatedness is known, each a mean weighted by the examples' own weights. When distilling,
    each is ``1 - weight`` x that plus ``weight`` x the same loss against the teachers' soft targets (polarity
    softened at ``temperature`` and scaled by its square, as Hinton et al. 2015), which every example carries,
    those without a polarity label too. With ``sentiment`` logits, plus ``sentiment_weight`` x their cross-entropy
    where a sentiment label is known (the auxiliary task)."""
    import torch

    f = torch.nn.functional
    y, w = targets.polarity, targets.weight
    polarity = polarity.float()
    share = distillation.weight if distillation is not None else 0.0
    labelled = y >= 0
    loss = polarity.sum() * 0
    if labelled.any() and share < 1:
        per = f.cross_entropy(polarity[labelled], y[labelled], reduction="none", label_smoothing=label_smoothing)
        if focal_gamma:
            gold = f.softmax(polarity[labelled], dim=-1).gather(1, y[labelled, None]).squeeze(1)
            per = per * (1 - gold).clamp_min(1e-6) ** focal_gamma  # finite gradients where gold rounds to 1
        scale = class_weights[y[labelled]] * w[labelled]
        loss = loss + (1 - share) * (per * scale).sum() / scale.sum()
    if targets.soft is not None and share > 0:
        t = distillation.temperature
        per = -(targets.soft * f.log_softmax(polarity / t, dim=-1)).sum(-1) * t * t
        loss = loss + share * (per * w).sum() / w.sum()
    if related is not None:
        logit = related.float().squeeze(-1)
        for target, part in ((targets.related, 1 - share), (targets.soft_related, share)):
            known = ~torch.isnan(target) if target is not None and part > 0 else None
            if known is not None and known.any():
                per = f.binary_cross_entropy_with_logits(logit[known], target[known], reduction="none")
                loss = loss + related_weight * part * (per * w[known]).sum() / w[known].sum()
    known = targets.sentiment >= 0 if sentiment is not None and targets.sentiment is not None else None
    if known is not None and known.any():
        per = f.cross_entropy(sentiment.float()[known], targets.sentiment[known], reduction="none")
        loss = loss + sentiment_weight * (per * w[known]).sum() / w[known].sum()
    return loss


def consistency_loss(first, second, targets: Targets):
    """R-Drop's regulariser (Liang et al. 2021): the mean of the two KL divergences between the polarity distributions
    of two dropout passes over the same batch, each way, averaged (with the examples' weights) over the tweets with a
    polarity label."""
    import torch

    labelled = targets.polarity >= 0
    if not labelled.any():
        return first.sum() * 0
    p, q = (torch.nn.functional.log_softmax(x.float()[labelled], dim=-1) for x in (first, second))
    per = ((p.exp() - q.exp()) * (p - q)).sum(-1) / 2  # (KL(p||q) + KL(q||p)) / 2
    w = targets.weight[labelled]
    return (per * w).sum() / w.sum()


def _trainer_class():
    """transformers' Trainer with the multi-task loss and our validation (kept import-free until training)."""
    import torch
    from transformers import Trainer

    class ReputationTrainer(Trainer):
        """:func:`reputation_loss`; evaluation is polarity macro-F1 (and relatedness) on the validation split."""

        def __init__(self, *args, polarity_weights: np.ndarray, related_weight: float, validate,
                     distillation: Distillation | None, label_smoothing: float, focal_gamma: float,
                     sentiment_weight: float, layer_decay: float | None, rdrop: float | None, **kwargs):
            super().__init__(*args, **kwargs)
            self.layer_decay = layer_decay
            self.rdrop = rdrop
            self.class_weights = torch.tensor(polarity_weights, dtype=torch.float32, device=self.args.device)
            self.related_weight = related_weight
            self.validate = validate
            self.distillation = distillation
            self.label_smoothing = label_smoothing
            self.focal_gamma = focal_gamma
            self.sentiment_weight = sentiment_weight

        def create_optimizer(self):
            """Trainer's optimizer; under layer-wise decay, one parameter group per learning rate and weight decay."""
            if self.layer_decay is None or self.optimizer is not None:
                return super().create_optimizer()
            decayed = set(self.get_decay_parameter_names(self.model))
            groups: dict[tuple[float, bool], list] = {}
            for name, rate in self.model.layer_rates(self.layer_decay).items():
                parameter = self.model.get_parameter(name)
                if parameter.requires_grad:
                    groups.setdefault((rate, name in decayed), []).append(parameter)
            optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
            self.optimizer = optimizer_cls(
                [{"params": params, "lr": self.args.learning_rate * rate,
                  "weight_decay": self.args.weight_decay if decays else 0.0}
                 for (rate, decays), params in groups.items()], **kwargs)
            return self.optimizer

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            """:func:`reputation_loss`; under R-Drop (in training), on the batch twice in one pass (each copy its own
            dropout masks, so the mean of the two copies' losses) plus ``rdrop`` x :func:`consistency_loss`."""
            targets = Targets(inputs.pop("labels"), inputs.pop("related"), inputs.pop("weight"),
                              inputs.pop("soft", None), inputs.pop("soft_related", None), inputs.pop("sentiment"))
            doubled = bool(self.rdrop) and model.training
            if doubled:
                inputs = {k: torch.cat([v, v]) for k, v in inputs.items()}
            polarity, related, sentiment = model.outputs(**inputs)
            loss = reputation_loss(polarity, related, targets.map(lambda t: torch.cat([t, t])) if doubled else targets,
                                   self.class_weights, self.related_weight, self.distillation, self.label_smoothing,
                                   self.focal_gamma, sentiment, self.sentiment_weight)
            if doubled:
                loss = loss + self.rdrop * consistency_loss(*polarity.chunk(2), targets)
            return (loss, polarity) if return_outputs else loss

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval") -> dict:
            metrics = {f"{metric_key_prefix}_{k}": v for k, v in self.validate(self.model).items()}
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    return ReputationTrainer


def _best_epoch_callback(run: "_Run"):
    """Keeps the best epoch (validation macro-F1; the last one without validation) in ``best/``, records the
    history, and stops after ``patience`` epochs without a better one. Its state travels in Trainer checkpoints."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    class BestEpoch(TrainerCallback, ExportableState):
        def __init__(self, best_macro_f1: float = -1.0, bad_epochs: int = 0, history: list | None = None,
                     validated_epoch: int | None = None):
            self.best_macro_f1, self.bad_epochs, self.history = best_macro_f1, bad_epochs, list(history or [])
            # also when the Trainer restores this state from a checkpoint (one saved before validated_epoch: None)
            run.history, run.validated_epoch = self.history, validated_epoch
            self.validated_epoch = validated_epoch

        def state(self) -> dict:
            return {"args": {"best_macro_f1": self.best_macro_f1, "bad_epochs": self.bad_epochs,
                             "history": self.history, "validated_epoch": self.validated_epoch}, "attributes": {}}

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            epoch = self.validated_epoch = run.validated_epoch = round(state.epoch or 0)
            metrics = run.last_metrics
            if metrics is not None:
                entry = {"epoch": epoch, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
                if "relatedness" in metrics:
                    entry["related_accuracy"] = metrics["relatedness"]["accuracy"]
                self.history = run.history = [h for h in self.history if h["epoch"] != epoch] + [entry]
                print(f"epoch {epoch}: validation " + " ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "epoch"))
            if metrics is None or metrics["macro_f1"] > self.best_macro_f1:
                self.best_macro_f1, self.bad_epochs = (metrics["macro_f1"] if metrics else -1.0), 0
                run.save_best(epoch, self.history)
            else:
                self.bad_epochs += 1
                if self.bad_epochs >= run.config.patience:  # never cleared: the last step's stop stays in checkpoints
                    control.should_training_stop = True
            control.should_save = True  # a checkpoint after every validation, so a resume knows its outcome
            return control

    return BestEpoch


def _stopped_history(checkpoint: str | None) -> list | None:
    """The validation history saved in a Trainer checkpoint at which training stopped (its last epoch, or early
    stopping) once that epoch was validated, else None. Resumed from such a checkpoint, transformers clears the stop
    and starts another epoch."""
    if checkpoint is None:
        return None
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    callbacks = state.get("stateful_callbacks", {})
    best = callbacks.get("BestEpoch", {}).get("args", {})
    if not callbacks.get("TrainerControl", {}).get("args", {}).get("should_training_stop") or \
            best.get("validated_epoch") != round(state.get("epoch") or 0):
        return None
    return list(best.get("history", []))


class _Run:
    """One training run: data encoded with the served text pipeline, the model, and transformers' Trainer
    (AdamW, linear warm-up schedule, gradient clipping, length-grouped batches, checkpoints in ``out/trainer``)."""

    def __init__(self, config: TrainConfig, train_set: Sequence[Example], val_set: Sequence[Example], summary: dict,
                 own: int | None = None):
        """``train_set``'s first ``own`` tweets (None: all) are the training data's; the auxiliary tasks' after them
        set neither the token length nor the polarity class weights."""
        import torch

        from .model import ReputationModel

        self.config, self.out, self.summary = config, Path(config.out_dir), summary
        if config.threads:
            torch.set_num_threads(config.threads)
        init = Checkpoint.load(config.init) if config.init else None
        if init is not None and init.input_format is not config.input_format:
            raise BuildError(f"checkpoint {init.path} reads {init.input_format.value} input, not {config.input_format.value}")
        if init is not None:
            self.vocab, text = init.vocab_path, init.text_settings
        else:
            self.vocab, lowercase = resolve_base(base_tokenizer(config.base), self.out / "base_vocab")
            text = TextSettings(lowercase=lowercase, **({"mention_token": None} if config.keep_mentions else {}))
        probe = text_encoder(self.vocab, replace(text, max_length=MAX_LENGTH), config.input_format)
        lengths = [len(e.ids) for e in encode_examples(probe, train_set[:own])]
        self.length_stats = length_stats(lengths)
        self.max_length = init.text_settings.max_length if init is not None else \
            config.max_length or choose_max_length(lengths)
        print(f"token lengths ({config.input_format.value}): {self.length_stats}; max_length {self.max_length}")
        self.encoder = text_encoder(self.vocab, replace(text, max_length=self.max_length), config.input_format)
        self.val_set, self.val_enc = val_set, encode_examples(self.encoder, val_set)
        self.y_polarity = [LABELS.index(e.label) if e.label is not None else -100 for e in train_set]
        self.y_related = [float(e.related) if e.related is not None else math.nan for e in train_set]
        self.related = config.related_weight > 0 and any(r == 0 for r in self.y_related)  # a head needs both classes
        y_sentiment = [LABELS.index(e.sentiment) if e.sentiment is not None else -100 for e in train_set]
        soft = soft_related = None
        if config.distillation is not None:
            soft, soft_related = self.teach(config.distillation, train_set, val_set)
        self.train_rows = _Examples(encode_examples(self.encoder, train_set), self.y_polarity, self.y_related,
                                    [e.weight for e in train_set], y_sentiment, soft, soft_related)
        torch.manual_seed(config.seed)
        if init is None:
            with readable(f"base {config.base}"):
                self.model = ReputationModel.from_base(config.base, LABELS, self.related, bool(config.sentiment),
                                                       config.pooling or Pooling.CLS)
        else:
            if init.labels != LABELS:
                raise BuildError(f"checkpoint {init.path} has labels {list(init.labels)}, not {list(LABELS)}")
            self.model = init.model().train()
            self.model.sentiment_head = None  # an auxiliary task's head has nothing to learn here
            self.related = init.related  # its relatedness head is kept (and trained where relatedness is known)
        self.own_polarity = [y for y in self.y_polarity[:own] if y >= 0]  # the training data's polarity labels
        self.polarity_weights = class_weights(self.own_polarity, config.class_weighting)
        self.last_metrics: dict | None = None
        self.last_logits: np.ndarray | None = None
        self.history: list[dict] = []
        self.validated_epoch: int | None = None  # the last epoch validated (the best one kept), as BestEpoch says

    def probe(self, probe: LinearProbe) -> dict:
        """LP-FT's first step: every head fitted on the model's pooled features of the training tweets, its encoder
        untouched; the probe's accuracy on them by head, and its validation figures."""
        started = time.time()
        rows = self.train_rows.rows
        features = pooled_features(self.model, self.encoder, [r["encoding"] for r in rows])
        fitted = fit_heads(self.model, features, rows, self.polarity_weights, probe)
        validation = self.validate(self.model)
        print(f"linear probe: training accuracy {fitted}, validation {validation}")
        return {"training_accuracy": fitted, Part.VALIDATION: validation, "seconds": round(time.time() - started, 1)}

    def teach(self, distillation: Distillation, train_set: Sequence[Example], val_set: Sequence[Example]):
        """The teachers' soft targets on the training tweets; their ensemble's validation metrics in the summary."""
        targets = teacher_targets(distillation, [*train_set, *val_set], self.out / TARGETS_FILE)
        n = len(train_set)
        if with_polarity(val_set):
            held = targets.rows(slice(n, None))
            metrics = validation_metrics(val_set, np.log(held.soft(1.0)),
                                         None if np.isnan(held.related).all() else held.related)
            self.summary["teachers"] = {"checkpoints": list(distillation.teachers), Part.VALIDATION: metrics}
            print(f"teachers' ensemble on validation: accuracy {metrics['accuracy']:.4f} "
                  f"macro-F1 {metrics['macro_f1']:.4f}")
        train = targets.rows(slice(0, n))
        return train.soft(distillation.temperature), train.related

    def validate(self, model) -> dict:
        """Validation metrics of ``model`` (empty without a validation split); kept for the best checkpoint."""
        self.last_metrics = self.last_logits = None
        if not with_polarity(self.val_set):
            return {}
        logits, related = predict(model, self.encoder, self.val_enc)
        self.last_metrics, self.last_logits = validation_metrics(self.val_set, logits, related), logits
        flat = {"accuracy": self.last_metrics["accuracy"], "macro_f1": self.last_metrics["macro_f1"]}
        if "relatedness" in self.last_metrics:
            flat["related_accuracy"] = self.last_metrics["relatedness"]["accuracy"]
        return flat

    def save_best(self, epoch: int, history: list) -> None:
        self.summary.update({"history": history, "best_epoch": epoch, Part.VALIDATION: self.last_metrics})
        save_checkpoint(self.out / "best", self.model, self.vocab, self.encoder.settings, self.summary,
                        self.last_metrics, self.last_logits)

    def save_average(self, checkpoints: Sequence[Path]) -> Checkpoint:
        """The mean of the Trainer checkpoints' weights, validated, saved in ``averaged/`` as a checkpoint."""
        from safetensors.torch import load_file

        states = [load_file(str(c / "model.safetensors")) for c in checkpoints]
        self.model.load_state_dict(mean_weights(states))
        self.validate(self.model)
        summary = {**self.summary, "history": self.history,
                   "averaged": [int(c.name.rsplit("-", 1)[1]) for c in checkpoints], Part.VALIDATION: self.last_metrics}
        print(f"averaged steps {summary['averaged']}: validation " + (
            f"accuracy {self.last_metrics['accuracy']:.4f} macro-F1 {self.last_metrics['macro_f1']:.4f}"
            if self.last_metrics else "none"))
        return save_checkpoint(self.out / "averaged", self.model, self.vocab, self.encoder.settings, summary,
                               self.last_metrics, self.last_logits)

    def trainer(self):
        from transformers import TrainingArguments

        config = self.config
        args = TrainingArguments(
            output_dir=str(self.out / "trainer"), num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
            warmup_ratio=config.warmup_fraction, weight_decay=config.weight_decay, max_grad_norm=1.0,
            lr_scheduler_type="linear", group_by_length=True, seed=config.seed, data_seed=config.seed,
            eval_strategy="epoch", save_strategy="steps", save_steps=config.checkpoint_every,
            save_total_limit=config.average_last or 1,
            restore_callback_states_from_checkpoint=True, logging_steps=50, report_to=[], remove_unused_columns=False,
            dataloader_num_workers=0, dataloader_pin_memory=False,
            use_cpu=config.device is Device.CPU, disable_tqdm=False)
        return _trainer_class()(
            model=self.model, args=args, train_dataset=self.train_rows, eval_dataset=self.val_enc,  # read by validate
            data_collator=_collate(self.encoder),
            callbacks=[_best_epoch_callback(self)(), epoch_order_callback()],
            polarity_weights=self.polarity_weights,
            related_weight=config.related_weight, validate=self.validate, distillation=config.distillation,
            label_smoothing=config.label_smoothing or 0.0, focal_gamma=config.focal_gamma or 0.0,
            sentiment_weight=config.sentiment.weight if config.sentiment else 0.0, layer_decay=config.layer_decay,
            rdrop=config.rdrop)


def _record_content(settings: dict, out: Path, key: str, what: str, paths: Sequence[str]) -> None:
    """Add the sha256 of each of ``paths`` to a run's ``settings`` under ``key``, unless the run in ``out`` was
    started before runs recorded it (then say so)."""
    if not paths:
        return
    started = started_settings(out)
    if started is None or key in started:
        settings[key] = {path: sha256_file(Path(path)) for path in paths}
    else:
        print(f"note: {out} was started before runs recorded their {what} content: not checked")


def train(config: TrainConfig, data: DataSpec, train_set: Sequence[Example], val_set: Sequence[Example],
          command: str, load_report: dict | None = None, gap_set: Sequence[Example] = (),
          digest: str | None = None) -> Checkpoint:
    """Fine-tune, keeping the best epoch by validation macro-F1 (the last one without validation) in ``best/``,
    then score it on the gap's tweets (:func:`score_gap`); resumes from the newest Trainer checkpoint in
    ``out/trainer`` when the settings are the same. No teacher, pretrained base or ``init`` checkpoint may have seen a
    held-out tweet: each is checked before the run is claimed, so that a refused line leaves ``out`` free. ``digest``
    (:func:`split_digest` of the data's own split) goes into the summary for later commands to check theirs against."""
    sentiment = load_sentiment(config.sentiment.folder) if config.sentiment else []  # read before the run is claimed
    stance = config.stance.examples() if config.stance else []
    config.device.check()
    if config.init is None:  # readable, of a kind built here and with its tokenizer, before the run is claimed
        base_architecture(config.base, "training")
        base_tokenizer(config.base)
    held_out = [*val_set, *gap_set]
    check_base_unseen(config.base, held_out)
    for teacher in config.distillation.teachers if config.distillation else ():
        check_unseen(Checkpoint.load(teacher), held_out)
    if config.init is not None:
        check_unseen(Checkpoint.load(config.init), held_out, "--init checkpoint")
    settings = run_settings(config)
    settings["data"] = data.to_dict()
    # the files' content: a file that grew since (a feedback file still collecting) is another run
    _record_content(settings, Path(config.out_dir), "data_sha256", "--data file's",
                    [data.source] if Path(data.source).is_file() else [])
    _record_content(settings, Path(config.out_dir), "extra_sha256", "--extra files'", data.extra)
    if claim_run(Path(config.out_dir), settings, RunKind.TRAIN):
        best = Checkpoint.load(Path(config.out_dir) / "best")
        print(f"training finished earlier in {config.out_dir} (best epoch {best.summary.get('best_epoch')}): "
              "nothing to resume")
        return score_gap(best.path, gap_set)  # a run finished before its gap was scored
    summary = {
        "config": config.to_dict(),
        "data": data.to_dict(),
        "load": load_report or {},
        "train_examples": len(train_set),
        **({"split_digest": digest} if digest else {}),  # data's split, that later commands check theirs against
        "validation_examples": len(with_polarity(val_set)),
        "command": command,
    }
    if sentiment:
        summary["sentiment_examples"] = len(sentiment)
    if stance:
        summary["stance_examples"] = len(stance)
    run = _Run(config, [*train_set, *sentiment, *stance], val_set, summary, len(train_set))
    summary.update({
        "train_label_counts": dict(zip(LABELS, np.bincount(run.own_polarity,
                                                           minlength=len(LABELS)).tolist())),
        "train_related_counts": {"related": sum(r == 1 for r in run.y_related),
                                 "unrelated": sum(r == 0 for r in run.y_related)},
        "polarity_class_weights": dict(zip(LABELS, np.round(run.polarity_weights, 4).tolist())),
        "related_head": run.related,
        "pooling": Pooling.of(run.model.config).value,  # what the model reads, --init's too
        "token_lengths": run.length_stats,
        "max_length": run.max_length,
    })
    trainer = run.trainer()  # the model on the device it trains on, the probe's too
    summary["device"] = str(trainer.args.device)
    resume = last_checkpoint(run.out / "trainer")
    if config.probe is not None:  # fitted again whenever the run starts over; a resumed one reads its figures
        probe_file = run.out / PROBE_FILE
        if resume is None or not probe_file.is_file():
            write_json(probe_file, run.probe(config.probe))
        summary["probe"] = json.loads(probe_file.read_text())
    elapsed = elapsed_callback(resume)
    stopped = _stopped_history(resume)
    if stopped is None:
        trainer.add_callback(elapsed)
        trainer.train(resume_from_checkpoint=resume)
        if run.validated_epoch != round(trainer.state.epoch or 0):  # cut off in the last epoch's validation: resumed
            trainer.evaluate()  # at its last step, the Trainer trains and validates nothing more
    else:
        run.history = stopped
        print(f"{Path(resume).name}: training stopped there: nothing more to train")
    summary["seconds"] = elapsed.seconds()
    if config.average_last:
        steps = sorted((run.out / "trainer").glob("checkpoint-*"), key=lambda c: int(c.name.rsplit("-", 1)[1]))
        run.save_average(steps[-config.average_last:])
    best = run.out / "best"
    write_json(best / SUMMARY_FILE, {**Checkpoint.load(best).summary, "history": run.history,  # a stopped run's time
                                     **({"seconds": summary["seconds"]} if stopped is None else {})})  # stays its own
    finish_run(run.out, settings, RunKind.TRAIN)
    return score_gap(best, gap_set)  # after the run is marked finished: one cut off scores on the next call


def train_on(config: TrainConfig, data: DataSpec, command: str) -> Checkpoint:
    """:func:`train` on ``data``: loaded (what was dropped, and why, printed), checked against ``config``'s input
    format (notes printed) and split as it says (the split printed, and its digest kept in the summary)."""
    examples, report = data.load()
    for line in report.lines():
        print(f"data: {line}")
    for note in data.check(examples, report, config.input_format):
        print(f"note: {note}")
    train_set, gap_set, val_set = data.partition(examples)
    holdout = data.holdout
    untimed = holdout.holdout is Holdout.TIME and not any(e.timestamp is not None for e in examples)
    gap = "none: the tweets have no time" if untimed and holdout.gap_fraction else f"{holdout.gap_fraction:.0%}"
    how = (f"{len(UNSEEN_ENTITIES)} entities held out whole, no gap" if holdout.holdout is Holdout.ENTITIES
           else f"{holdout.holdout.value} holdout, validation {holdout.val_fraction:.0%}, gap {gap}")
    print(f"split: {len(train_set)} training, {len(gap_set)} in the gap, {len(val_set)} validation ({how})")
    timed: dict[str | None, set[bool]] = {}
    for e in examples:
        timed.setdefault(e.entity_id or e.entity, set()).add(e.timestamp is not None)
    if holdout.holdout is Holdout.TIME and not untimed and (mixed := sum(len(t) > 1 for t in timed.values())):
        print(f"note: {mixed} entities have tweets with and without a time: each is split at random, with no gap")
    return train(config, data, train_set, val_set, command, report.to_dict(), gap_set,
                 split_digest((train_set, gap_set, val_set)))
