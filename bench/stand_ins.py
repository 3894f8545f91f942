"""Models with known weights for the speed comparisons, built from what a fresh clone has (the base encoder in
../shared, or a random full-size MobileBERT) with the default bundle's architecture, text pipeline and heads.

Latency, size and memory do not depend on the weight values, so one checkpoint per model, converted to every
runtime (TFLite variants here, ONNX in peers.py) gives the peers identical weights. Built into build/bench/ once
and reused while they load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from app.bundle import Bundle
from app.errors import AppError
from model_build.checkpoint import Checkpoint, DataSpec, save_checkpoint
from model_build.convert import VARIANTS, convert, representative_inputs
from model_build.data import Example
from model_build.errors import BuildError
from model_build.package import write_bundle
from model_build.scoring import encode_examples

from .data import ROOT

STAND_INS = ROOT / "build" / "bench" / "stand-ins"


def stand_in_checkpoint(base: str | Path, like: Bundle, data: DataSpec, out: Path,
                        related: bool | None = None) -> Checkpoint:
    """``base``'s encoder with ``like``'s labels, text settings and relatedness head (or not, as ``related``
    says); heads seeded with 0."""
    try:
        return Checkpoint.load(out)
    except BuildError:
        pass
    import torch

    from model_build.model import ReputationModel

    torch.manual_seed(0)
    model = ReputationModel.from_base(str(base), like.labels, like.has_related if related is None else related)
    summary = {"config": {"base": str(base), "input_format": like.manifest()["input_format"], "seed": 0},
               "data": data.to_dict(), "notes": "stand-in: base weights, untrained heads; for speed only"}
    return save_checkpoint(out, model, like.vocab_path, like.text_settings, summary)


def random_mobilebert_checkpoint(like: Bundle, data: DataSpec, out: Path) -> Checkpoint:
    """Full-size MobileBERT (google/mobilebert-uncased's architecture) with random weights, as a stand-in."""
    from model_build.base import Architecture
    from model_build.random_init import Size, save_random_model

    encoder = out.with_name(out.name + "-encoder")
    if not (encoder / "config.json").is_file():
        save_random_model(Architecture.MOBILEBERT, Size.FULL, like.vocab_path, encoder)
    return stand_in_checkpoint(encoder, like, data, out)


def stand_in_bundles(checkpoint: Checkpoint, variants: Sequence[str], out: Path, calibration: Sequence[Example],
                     name: str) -> dict[str, Path]:
    """``checkpoint`` converted to each variant, as bundles in ``out/<variant>``; cached ones are reused."""
    paths = {v: out / v for v in variants}
    missing = [v for v, p in paths.items() if not _loads(p)]
    if missing:
        encoder = checkpoint.encoder()
        inputs = representative_inputs(encode_examples(encoder, calibration), encoder, 100)
        for variant, (flatbuffer, note) in convert(checkpoint, missing, inputs).items():
            write_bundle(paths[variant], flatbuffer=flatbuffer, checkpoint=checkpoint, quantization=variant,
                         name=name, version="0.0.0",
                         extra={"conversion": note, "notes": "stand-in weights: for size, latency and memory only"})
            print(f"bench: wrote {paths[variant]}", flush=True)
    return paths


def _loads(path: Path) -> bool:
    try:
        Bundle.load(path)
    except AppError:
        return False
    return True


def speed_stand_in(like: Bundle, data: DataSpec, calibration: Sequence[Example],
                   related: bool | None = None) -> tuple[Checkpoint, Path]:
    """``like``'s own base encoder (a hub name, or a path from the repository root) with ``like``'s architecture
    (with or without the relatedness head, as ``related`` says): its checkpoint and its bundle in ``like``'s
    quantisation."""
    base = like.manifest()["base_model"]
    local = ROOT / base
    if not local.is_dir() and not Path(base).is_absolute() and base.startswith("."):
        raise BuildError(f"the base model {base} of {like.path} is not at {local} (../shared absent?)")
    related = like.has_related if related is None else related
    out = STAND_INS / f"{like.name}{'-related' if related else ''}"
    checkpoint = stand_in_checkpoint(local if local.is_dir() else base, like, data, out / "checkpoint", related=related)
    bundles = stand_in_bundles(checkpoint, [like.quantization], out, calibration, f"{like.name}-stand-in")
    return checkpoint, bundles[like.quantization]


def study_stand_ins(like: Bundle, data: DataSpec, calibration: Sequence[Example]) -> dict[str, Path]:
    """Random full-size MobileBERT in the four variants, for the study's table."""
    checkpoint = random_mobilebert_checkpoint(like, data, STAND_INS / "mobilebert" / "checkpoint")
    return stand_in_bundles(checkpoint, VARIANTS, STAND_INS / "mobilebert", calibration, "mobilebert-random-full")
