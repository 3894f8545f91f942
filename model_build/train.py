"""Fine-tuning a BERT-family encoder for reputation polarity and relatedness (PyTorch), seeded and resumable."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Sequence

import numpy as np

from app.text import InputFormat, TextSettings, TweetEncoder

from .checkpoint import SUMMARY_FILE, Checkpoint, DataSpec, save_checkpoint
from .data import LABELS, Example, with_polarity
from .fsutil import atomic_dir, write_json
from .metrics import classification_metrics, relatedness_metrics


class ClassWeighting(str, Enum):
    """Polarity loss weights from the training label counts."""

    NONE = "none"
    SQRT = "sqrt"  # 1 / sqrt(count)
    BALANCED = "balanced"  # 1 / count


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
    device: str = "auto"
    threads: int | None = None

    def to_dict(self) -> dict:
        return {k: v.value if isinstance(v, Enum) else str(v) if isinstance(v, Path) else v
                for k, v in asdict(self).items()}


def resolve_base(base: str, work_dir: Path) -> tuple[Path, bool]:
    """Vocabulary file and lower-casing of a base model given by hub name or local path."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    work_dir.mkdir(parents=True, exist_ok=True)
    (vocab_file,) = tokenizer.save_vocabulary(str(work_dir))
    return Path(vocab_file), bool(getattr(tokenizer, "do_lower_case", True))


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


def text_encoder(vocab: Path, lowercase: bool, input_format: InputFormat, max_length: int) -> TweetEncoder:
    """The text pipeline training uses: the one the edge serves (app.text), with the base model's vocabulary."""
    return TweetEncoder(vocab, TextSettings(max_length=max_length, lowercase=lowercase), input_format.pair)


def encode_examples(encoder: TweetEncoder, examples: Sequence[Example]):
    return encoder.encode([e.text for e in examples], [e.entity for e in examples] if encoder.pair else None)


def class_weights(labels: Sequence[int], scheme: ClassWeighting) -> np.ndarray:
    counts = np.maximum(np.bincount(np.asarray(labels, dtype=int), minlength=len(LABELS)).astype(float), 1)
    weights = {ClassWeighting.NONE: np.ones(len(LABELS)), ClassWeighting.SQRT: 1 / np.sqrt(counts),
               ClassWeighting.BALANCED: 1 / counts}[scheme]
    return weights * len(LABELS) / weights.sum()


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Random batches of similar lengths: shuffle, sort within windows of 50 batches, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _tensors(encoder: TweetEncoder, encodings, rows: Sequence[int], device):
    import torch

    batch = [encodings[i] for i in rows]
    arrays = encoder.pad(batch, max(len(e.ids) for e in batch))
    return {k: torch.from_numpy(v.astype(np.int64)).to(device) for k, v in arrays.items()}


def predict(model, encoder: TweetEncoder, encodings, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray | None]:
    """Polarity logits and relatedness probabilities (None without that head) for encoded tweets, in order."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    logits = np.zeros((len(encodings), model.config.num_labels), dtype=np.float32)
    related = np.zeros(len(encodings), dtype=np.float32) if model.related_head is not None else None
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            polarity, relatedness = model(**_tensors(encoder, encodings, rows, device))
            logits[rows] = polarity.float().cpu().numpy()
            if related is not None:
                related[rows] = torch.sigmoid(relatedness.float()).squeeze(-1).cpu().numpy()
    return logits, related


def validation_metrics(examples: Sequence[Example], logits: np.ndarray, related: np.ndarray | None) -> dict:
    """Polarity metrics on the examples that have a polarity label, and relatedness metrics where known."""
    rows = [i for i, e in enumerate(examples) if e.label is not None]
    metrics = classification_metrics([LABELS.index(examples[i].label) for i in rows], logits[rows].argmax(1), LABELS)
    known = [i for i, e in enumerate(examples) if e.related is not None]
    if related is not None and known:
        metrics["relatedness"] = relatedness_metrics([examples[i].related for i in known], related[known])
    return metrics


class _Run:
    """One training run's model, optimiser, data and progress, checkpointed in ``out_dir/last``."""

    def __init__(self, config: TrainConfig, train_set: Sequence[Example], val_set: Sequence[Example]):
        import torch
        from transformers import get_linear_schedule_with_warmup

        from .model import ReputationModel

        self.config, self.out = config, Path(config.out_dir)
        if config.threads:
            torch.set_num_threads(config.threads)
        auto = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(auto if config.device == "auto" else config.device)
        self.vocab, lowercase = resolve_base(config.base, self.out / "base_vocab")
        probe = text_encoder(self.vocab, lowercase, config.input_format, 512)
        self.lengths = [len(e.ids) for e in encode_examples(probe, train_set)]
        self.length_stats = length_stats(self.lengths)
        self.max_length = config.max_length or choose_max_length(self.lengths)
        print(f"token lengths ({config.input_format.value}): {self.length_stats}; max_length {self.max_length}")
        self.encoder = text_encoder(self.vocab, lowercase, config.input_format, self.max_length)
        self.train_set, self.val_set = train_set, val_set
        self.train_enc, self.val_enc = encode_examples(self.encoder, train_set), encode_examples(self.encoder, val_set)
        self.y_polarity = [LABELS.index(e.label) if e.label is not None else -100 for e in train_set]
        self.y_related = [float(e.related) if e.related is not None else math.nan for e in train_set]
        self.related = config.related_weight > 0 and any(r == 0 for r in self.y_related)  # a head needs both classes

        torch.manual_seed(config.seed)
        self.model = ReputationModel.from_base(config.base, LABELS, self.related).to(self.device)
        no_decay = ("bias", "LayerNorm.weight", "layer_norm", "NoNorm")
        named = list(self.model.named_parameters())
        self.optimizer = torch.optim.AdamW([
            {"params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": config.weight_decay},
            {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0},
        ], lr=config.learning_rate)
        total = math.ceil(len(train_set) / config.batch_size) * config.epochs
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(total * config.warmup_fraction), total)
        polarity = [y for y in self.y_polarity if y >= 0]
        weights = class_weights(polarity, config.class_weighting)
        self.polarity_loss = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32,
                                                                           device=self.device), ignore_index=-100)
        self.state = {"epoch": 0, "step": 0, "best_macro_f1": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}

    def resume(self) -> None:
        import torch

        last = self.out / "last"
        if not (last / "state.json").exists():
            return
        self.state = json.loads((last / "state.json").read_text())
        self.model.load_state_dict(torch.load(last / "model.pt", map_location=self.device))
        saved = torch.load(last / "optimizer.pt", map_location=self.device)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        print(f"resuming from epoch {self.state['epoch'] + 1}, step {self.state['step']}")

    def save_last(self) -> None:
        import torch

        with atomic_dir(self.out / "last") as tmp:
            torch.save(self.model.state_dict(), tmp / "model.pt")
            torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
                       tmp / "optimizer.pt")
            write_json(tmp / "state.json", self.state)

    def loss(self, rows: Sequence[int]):
        import torch

        polarity, related = self.model(**_tensors(self.encoder, self.train_enc, rows, self.device))
        y = torch.tensor([self.y_polarity[i] for i in rows], device=self.device)
        loss = self.polarity_loss(polarity.float(), y) if (y >= 0).any() else polarity.sum() * 0
        if related is not None:
            r = torch.tensor([self.y_related[i] for i in rows], device=self.device)
            known = ~torch.isnan(r)
            if known.any():
                bce = torch.nn.functional.binary_cross_entropy_with_logits(related.float().squeeze(-1)[known], r[known])
                loss = loss + self.config.related_weight * bce
        return loss

    def train_epoch(self) -> None:
        import torch
        from tqdm import tqdm

        config, epoch = self.config, self.state["epoch"]
        batches = length_grouped_batches(self.lengths, config.batch_size, random.Random(config.seed * 1000 + epoch))
        torch.manual_seed(config.seed * 1000 + epoch + self.state["step"])
        self.model.train()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", initial=self.state["step"], unit="batch")
        for rows in batches[self.state["step"]:]:
            loss = self.loss(rows)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.state["step"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if config.checkpoint_every and self.state["step"] % config.checkpoint_every == 0:
                self.save_last()
        bar.close()

    def end_epoch(self, summary: dict) -> None:
        """Validate (when there is a validation split), keep the best epoch in ``best/``, checkpoint."""
        epoch = self.state["epoch"] + 1
        metrics = logits = None
        if with_polarity(self.val_set):
            logits, related = predict(self.model, self.encoder, self.val_enc)
            metrics = validation_metrics(self.val_set, logits, related)
            entry = {"epoch": epoch, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
            if "relatedness" in metrics:
                entry["related_accuracy"] = metrics["relatedness"]["accuracy"]
            self.state["history"].append(entry)
            print(f"epoch {epoch}: validation " + " ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "epoch"))
        better = metrics is None or metrics["macro_f1"] > self.state["best_macro_f1"]
        if better:
            self.state.update(best_macro_f1=metrics["macro_f1"] if metrics else -1.0, best_epoch=epoch, bad_epochs=0)
            summary.update(history=self.state["history"], best_epoch=epoch, validation=metrics)
            save_checkpoint(self.out / "best", self.model, self.vocab, self.encoder.settings, summary, metrics, logits)
        else:
            self.state["bad_epochs"] += 1
        self.state.update(epoch=epoch, step=0)
        self.save_last()


def train(config: TrainConfig, data: DataSpec, train_set: Sequence[Example], val_set: Sequence[Example],
          command: str, load_report: dict | None = None) -> Checkpoint:
    """Fine-tune, keeping the best epoch by validation macro-F1 (the last one without validation) in ``best/``."""
    run = _Run(config, train_set, val_set)
    run.resume()
    summary = {
        "config": config.to_dict(),
        "device": str(run.device),
        "data": data.to_dict(),
        "load": load_report or {},
        "train_examples": len(train_set),
        "validation_examples": len(with_polarity(val_set)),
        "train_label_counts": dict(zip(LABELS, np.bincount([y for y in run.y_polarity if y >= 0],
                                                           minlength=len(LABELS)).tolist())),
        "train_related_counts": {"related": sum(r == 1 for r in run.y_related),
                                 "unrelated": sum(r == 0 for r in run.y_related)},
        "related_head": run.related,
        "token_lengths": run.length_stats,
        "max_length": run.max_length,
        "command": command,
    }
    started = time.time()
    while run.state["epoch"] < config.epochs and run.state["bad_epochs"] < config.patience:
        run.train_epoch()
        summary["seconds"] = round(time.time() - started, 1)
        run.end_epoch(summary)
    best = run.out / "best"
    write_json(best / SUMMARY_FILE, {**Checkpoint.load(best).summary, "history": run.state["history"]})
    return Checkpoint.load(best)
