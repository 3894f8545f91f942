"""Domain-adaptive pretraining (Gururangan et al. 2020): masked-language-model training of a base encoder on tweet
texts, through the served text pipeline, saved as a base that ``train --base`` takes. Seeded and resumable."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from app.jsonl import READ_AS_JSONL
from app.text import MAX_LENGTH, MIN_LENGTH, InputFormat, TextSettings, text_lines

from .base import base_architecture, base_tokenizer, resolve_base
from .checkpoint import DataSpec, split_digest
from .data import Example, example_key
from .errors import BuildError, readable
from .fsutil import atomic_dir, write_json
from .runs import RunKind, as_json, claim_run, elapsed_callback, finish_run, last_checkpoint, run_settings
from .settings import Device

PRETRAIN_SUMMARY_FILE = "pretrain_summary.json"  # in OUT/model beside the encoder
TEXT_FILE_GLOB = "*_text.txt"  # a folder given to --texts: these files under it, one tweet per line (TweetEval)


@dataclass(frozen=True)
class PretrainConfig:
    base: str
    out_dir: Path
    max_steps: int = 1000
    head_warmup: int | None = None  # the first steps of max_steps: the masked-LM head alone, the encoder frozen
    batch_size: int = 64
    learning_rate: float = 1e-4
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    mask_fraction: float = 0.15
    max_length: int = 64
    held_out: int = 1000  # texts kept out of training to measure masked-token loss before and after
    seed: int = 13
    checkpoint_every: int = 200
    device: Device = Device.AUTO
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1 or not 0 < self.mask_fraction < 1 \
                or not MIN_LENGTH <= self.max_length <= MAX_LENGTH or self.held_out < 1 \
                or not (self.head_warmup is None or 0 < self.head_warmup < self.max_steps):
            raise BuildError("pretraining needs at least 1 step, a head warm-up of at least 1 step and fewer than the steps, "
                             f"a batch of at least 1, a mask fraction in (0, 1), a length of {MIN_LENGTH} to {MAX_LENGTH} tokens "
                             "and at least 1 held-out text")

    def to_dict(self) -> dict:
        return as_json(self)


def file_texts(path: str | Path) -> list[str]:
    """Non-empty lines of a text file, or of every ``*_text.txt`` under a folder (in path order)."""
    path = Path(path)
    if path.suffix.lower() in (".csv", ".tsv", *READ_AS_JSONL):
        raise BuildError(f"{path}: --texts takes plain text, one tweet per line (a table's other columns would be "
                         "pretrained on too)")
    files = sorted(path.rglob(TEXT_FILE_GLOB)) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise BuildError(f"{path}: no text file (a file with one tweet per line, or a folder of {TEXT_FILE_GLOB})")
    return [line.strip() for f in files for line in text_lines(f, "replace") if line.strip()]


def replab_examples(data: DataSpec) -> list[Example]:
    """RepLab tweets of every language, related or not, but none of the validation tweets (nor the gap before them)
    that ``data``'s split holds out of its language: fine-tuning later validates on them unseen."""
    every, _ = DataSpec(data.source, data.split, None, unrelated=True).load()
    examples, _ = data.load()
    train, _ = data.holdout.apply(examples)
    held = {example_key(e) for e in examples} - {example_key(e) for e in train}
    return [e for e in every if example_key(e) not in held]


def pretraining_texts(data: DataSpec | None, paths: Sequence[str]) -> tuple[list[str], dict]:
    """The texts to pretrain on (``data``'s RepLab tweets as :func:`replab_examples`, then each file's) and where
    they came from, with counts."""
    texts, sources = [], {"replab": None, "files": {}}
    if data is not None:
        examples = replab_examples(data)
        texts += [e.text for e in examples]
        sources["replab"] = {**data.to_dict(), "texts": len(texts), "split_digest": split_digest([examples])}
    for path in paths:
        more = file_texts(path)
        texts += more
        sources["files"][str(path)] = len(more)
    if not texts:
        raise BuildError("give tweet texts to pretrain on: --data (RepLab) and/or --texts")
    return texts, sources


def check_base_unseen(base: str, held_out: Sequence[Example]) -> None:
    """Refuse a base pretrained here on any of the held-out tweets (its figures would flatter it): RepLab's, by key,
    and the ``--texts`` files', by text (where a file is gone, a note says it could not be checked)."""
    summary = Path(base) / PRETRAIN_SUMMARY_FILE
    if not held_out or not summary.is_file():
        return
    try:
        sources = json.loads(summary.read_text())["texts"]
        spec, files = sources["replab"], dict(sources["files"])
        pretrained_on = DataSpec.from_dict(spec) if spec is not None else None
    except (ValueError, KeyError, TypeError):
        raise BuildError(f"{summary}: not a pretraining summary this build wrote") from None
    examples = replab_examples(pretrained_on) if pretrained_on is not None else []
    if pretrained_on is not None and spec.get("split_digest", split_digest([examples])) != split_digest([examples]):
        raise BuildError(f"base {base}: {pretrained_on.source} holds other tweets than when it was pretrained on them "
                         "(changed since?), so it cannot be checked against the held-out tweets: give that data as it "
                         "was, or pretrain again")
    seen = {example_key(e) for e in examples}
    seen_texts: set[str] = set()
    for path in files:
        try:
            seen_texts.update(file_texts(path))
        except BuildError:
            print(f"note: base {base} was pretrained on {path}, which is gone: not checked against the held-out tweets")
    leaked = sum(example_key(e) in seen or e.text.strip() in seen_texts for e in held_out)
    if leaked:
        raise BuildError(f"base {base} was pretrained on {leaked} of the held-out tweets (validation and gap): "
                         "pretrain it with this run's split (--val-fraction, --gap-fraction) or validate on another")


def _mlm_loss(model, batch):
    """Cross-entropy and correct count over the masked tokens only (the vocabulary projection of the others is
    skipped: most of a step's cost otherwise)."""
    import torch

    labels = batch["labels"]
    encoder = getattr(model, model.base_model_prefix)
    hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    masked = labels != -100
    logits = model.cls(hidden[masked])
    loss = torch.nn.functional.cross_entropy(logits.float(), labels[masked])
    return loss, int((logits.argmax(-1) == labels[masked]).sum()), int(masked.sum())


def _held_out_score(model, batches) -> dict:
    import torch

    model.eval()
    total = correct = count = 0.0
    with torch.inference_mode():
        for batch in batches:
            if not (batch["labels"] != -100).any():
                continue
            loss, right, n = _mlm_loss(model, {k: v.to(model.device) for k, v in batch.items()})
            total, correct, count = total + float(loss) * n, correct + right, count + n
    model.train()
    if not count:
        raise BuildError("no held-out token was masked: hold out more texts (--held-out)")
    return {"masked_loss": round(total / count, 4), "masked_accuracy": round(correct / count, 4), "tokens": int(count)}


def _head_warmup(encoder, steps: int):
    """A Trainer callback that freezes ``encoder`` for the first ``steps`` steps (decided at every step, so a
    resumed run freezes exactly as an uncut one): a new masked-LM head learns from the base's representations
    before its first, random gradients reach them. The decoder shares the encoder's word embeddings: frozen too, so
    only the head's transform and output bias learn. The learning rate's warm-up (a share of all steps) falls in
    these steps when they are more."""
    from transformers import TrainerCallback

    class HeadWarmup(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            encoder.requires_grad_(state.global_step >= steps)

    return HeadWarmup()


def pretrain(config: PretrainConfig, texts: Sequence[str], sources: dict, command: str) -> tuple[Path, bool]:
    """Masked-language-model training of ``config.base`` on ``texts`` for ``max_steps`` (a new masked-LM head
    where the base has none, recorded); the encoder (its pooler kept from the base) and tokenizer go to
    ``OUT/model``, with the held-out masked-token loss before and after. Returns that path and whether it was
    trained now (False: finished earlier)."""
    import torch
    from transformers import (
        AutoModel,
        AutoModelForMaskedLM,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    from .scoring import text_encoder

    out = Path(config.out_dir)
    if len(texts) <= config.held_out:
        raise BuildError(f"{len(texts)} texts: more than the {config.held_out} held out are needed")
    config.device.check()
    base_architecture(config.base, "pretraining")
    tokenizer = base_tokenizer(config.base)  # before the run is claimed, as the architecture
    settings = {**run_settings(config), "texts": sources}
    if claim_run(out, settings, RunKind.PRETRAIN):
        print(f"pretraining finished earlier in {out}: nothing to resume")
        return out / "model", False
    if config.threads:
        torch.set_num_threads(config.threads)
    vocab, lowercase = resolve_base(tokenizer, out / "base_vocab")
    encoder = text_encoder(vocab, TextSettings(max_length=config.max_length, lowercase=lowercase), InputFormat.TEXT)
    order = list(range(len(texts)))
    random.Random(config.seed).shuffle(order)
    rows = [{"input_ids": e.ids} for e in encoder.encode([texts[i] for i in order])]
    held, train_rows = rows[: config.held_out], rows[config.held_out:]
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=config.mask_fraction)
    held_collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=config.mask_fraction, seed=config.seed)
    held_batches = [held_collate(held[i:i + 128]) for i in range(0, len(held), 128)]  # the same masks before and after

    class MaskedLMTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return _mlm_loss(model, inputs)[0]

    torch.manual_seed(config.seed)
    with readable(f"base {config.base}"):
        model, info = AutoModelForMaskedLM.from_pretrained(config.base, output_loading_info=True)
    head = "new" if any(k.startswith("cls.") for k in info["missing_keys"]) else "the base's"
    before = _held_out_score(model, held_batches)
    print(f"masked-LM head: {head}; held-out masked tokens before: loss {before['masked_loss']} "
          f"accuracy {before['masked_accuracy']}")
    args = TrainingArguments(
        output_dir=str(out / "trainer"), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, warmup_ratio=config.warmup_fraction, weight_decay=config.weight_decay,
        max_grad_norm=1.0, lr_scheduler_type="linear", group_by_length=True, seed=config.seed,
        data_seed=config.seed, save_strategy="steps", save_steps=config.checkpoint_every, save_total_limit=1,
        logging_steps=50, report_to=[], remove_unused_columns=False, dataloader_num_workers=0,
        dataloader_pin_memory=False, use_cpu=config.device is Device.CPU, disable_tqdm=False)
    head_first = [_head_warmup(getattr(model, model.base_model_prefix), config.head_warmup)] if config.head_warmup else []
    trainer = MaskedLMTrainer(model=model, args=args, train_dataset=train_rows, data_collator=collate,
                              callbacks=head_first)
    resume = last_checkpoint(out / "trainer")
    elapsed = elapsed_callback(resume)
    trainer.add_callback(elapsed)
    trainer.train(resume_from_checkpoint=resume)
    after = _held_out_score(model, held_batches)
    print(f"held-out masked tokens after: loss {after['masked_loss']} accuracy {after['masked_accuracy']}")
    base_encoder = AutoModel.from_pretrained(config.base)  # with its pooler, which masked-LM training lacks
    missing, unexpected = base_encoder.load_state_dict(getattr(model, model.base_model_prefix).state_dict(), strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise BuildError(f"the trained encoder does not fit {config.base}'s ({missing + unexpected})")
    summary = {"config": config.to_dict(), "texts": sources, "train_texts": len(train_rows), "mlm_head": head,
               "held_out": {"before": before, "after": after}, "seconds": elapsed.seconds(),
               "loss": [h for h in trainer.state.log_history if "loss" in h], "command": command}
    with atomic_dir(out / "model", PRETRAIN_SUMMARY_FILE) as tmp:
        base_encoder.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / PRETRAIN_SUMMARY_FILE, summary)
    finish_run(out, settings, RunKind.PRETRAIN)
    return out / "model", True
