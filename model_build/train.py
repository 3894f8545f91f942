"""Fine-tuning a BERT-family encoder for reputation polarity (PyTorch), seeded and resumable."""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from app.text import TextSettings, TweetEncoder

from .data import LABELS, Example
from .fsutil import atomic_dir, write_json
from .metrics import classification_metrics

CLASS_WEIGHTINGS = ("none", "sqrt", "balanced")


@dataclass(frozen=True)
class TrainConfig:
    base: str
    out_dir: Path
    input_format: str = "entity+text"
    max_length: int | None = None
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    class_weighting: str = "sqrt"
    patience: int = 2
    seed: int = 13
    checkpoint_every: int = 300
    device: str = "auto"
    threads: int | None = None


def resolve_base(base: str, work_dir: Path) -> tuple[Path, bool]:
    """Vocabulary file and lower-casing of a base model given by hub name or local path."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    work_dir.mkdir(parents=True, exist_ok=True)
    (vocab_file,) = tokenizer.save_vocabulary(str(work_dir))
    lowercase = bool(getattr(tokenizer, "do_lower_case", True))
    return Path(vocab_file), lowercase


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


def encoder_for(vocab: Path, lowercase: bool, input_format: str, max_length: int) -> TweetEncoder:
    settings = TextSettings(max_length=max_length, lowercase=lowercase)
    return TweetEncoder(vocab, settings, pair=input_format == "entity+text")


def encode_examples(encoder: TweetEncoder, examples: Sequence[Example]):
    return encoder.encode([e.text for e in examples], [e.entity for e in examples] if encoder.pair else None)


def class_weights(labels: Sequence[int], scheme: str) -> np.ndarray:
    counts = np.bincount(np.asarray(labels), minlength=len(LABELS)).astype(float)
    if scheme == "none":
        weights = np.ones(len(LABELS))
    elif scheme == "sqrt":
        weights = 1 / np.sqrt(np.maximum(counts, 1))
    elif scheme == "balanced":
        weights = 1 / np.maximum(counts, 1)
    else:
        raise ValueError(f"class weighting must be one of {CLASS_WEIGHTINGS}")
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


def predict_logits(model, encoder: TweetEncoder, encodings, batch_size: int = 128) -> np.ndarray:
    """Logits of a PyTorch sequence classifier for pre-encoded tweets, in input order."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    out = np.zeros((len(encodings), model.config.num_labels), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            logits = model(**_tensors(encoder, encodings, rows, device)).logits
            out[rows] = logits.float().cpu().numpy()
    return out


def train(config: TrainConfig, train_set: Sequence[Example], val_set: Sequence[Example], command: str,
          data: dict | None = None) -> dict:
    """Fine-tune, keeping the best epoch by validation macro-F1 in ``out_dir/best``; resumes from ``out_dir/last``."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup

    out = Path(config.out_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    )
    vocab, lowercase = resolve_base(config.base, out / "base_vocab")
    probe = encoder_for(vocab, lowercase, config.input_format, 512)
    lengths = [len(e.ids) for e in encode_examples(probe, train_set)]
    stats = length_stats(lengths)
    max_length = config.max_length or choose_max_length(lengths)
    print(f"token lengths ({config.input_format}): {stats}; max_length {max_length}")
    encoder = encoder_for(vocab, lowercase, config.input_format, max_length)
    train_enc, val_enc = encode_examples(encoder, train_set), encode_examples(encoder, val_set)
    y_train = [LABELS.index(e.label) for e in train_set]
    y_val = [LABELS.index(e.label) for e in val_set]

    torch.manual_seed(config.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        config.base,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
    ).to(device)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "NoNorm")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_fraction), total)
    weights = torch.tensor(class_weights(y_train, config.class_weighting), dtype=torch.float32, device=device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    labels_t = torch.tensor(y_train, device=device)

    state = {"epoch": 0, "step": 0, "best_macro_f1": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}
    last = out / "last"
    if (last / "state.json").exists():
        state = json.loads((last / "state.json").read_text())
        model.load_state_dict(torch.load(last / "model.pt", map_location=device))
        opt = torch.load(last / "optimizer.pt", map_location=device)
        optimizer.load_state_dict(opt["optimizer"])
        scheduler.load_state_dict(opt["scheduler"])
        print(f"resuming from epoch {state['epoch'] + 1}, step {state['step']}")

    def checkpoint() -> None:
        with atomic_dir(last) as tmp:
            torch.save(model.state_dict(), tmp / "model.pt")
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
            write_json(tmp / "state.json", state)

    started = time.time()
    while state["epoch"] < config.epochs and state["bad_epochs"] < config.patience:
        epoch = state["epoch"]
        batches = length_grouped_batches(lengths, config.batch_size, random.Random(config.seed * 1000 + epoch))
        torch.manual_seed(config.seed * 1000 + epoch + state["step"])
        model.train()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", initial=state["step"], unit="batch")
        for rows in batches[state["step"]:]:
            inputs = _tensors(encoder, train_enc, rows, device)
            loss = loss_fn(model(**inputs).logits.float(), labels_t[rows])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if config.checkpoint_every and state["step"] % config.checkpoint_every == 0:
                checkpoint()
        bar.close()
        val_logits = predict_logits(model, encoder, val_enc)
        val_pred = val_logits.argmax(1)
        metrics = classification_metrics(y_val, val_pred, LABELS)
        state["history"].append({"epoch": epoch + 1, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]})
        print(f"epoch {epoch + 1}: validation accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f}")
        if metrics["macro_f1"] > state["best_macro_f1"]:
            state.update(best_macro_f1=metrics["macro_f1"], best_epoch=epoch + 1, bad_epochs=0)
            with atomic_dir(out / "best") as tmp:
                model.save_pretrained(tmp)
                (tmp / "vocab.txt").write_bytes(vocab.read_bytes())
                write_json(tmp / "text_settings.json", encoder.settings.to_dict())
                write_json(tmp / "validation.json", metrics)
                np.save(tmp / "validation_logits.npy", val_logits)
        else:
            state["bad_epochs"] += 1
        state.update(epoch=epoch + 1, step=0)
        checkpoint()

    summary = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "device": str(device),
        "data": data or {},
        "train_examples": len(train_set),
        "validation_examples": len(val_set),
        "train_label_counts": dict(zip(LABELS, np.bincount(y_train, minlength=len(LABELS)).tolist())),
        "token_lengths": stats,
        "max_length": max_length,
        "history": state["history"],
        "best_epoch": state["best_epoch"],
        "validation": json.loads((out / "best" / "validation.json").read_text()),
        "seconds": round(time.time() - started, 1),
        "command": command,
    }
    write_json(out / "best" / "train_summary.json", summary)
    return summary
