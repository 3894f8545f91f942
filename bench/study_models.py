"""Full-size MobileBERT (google/mobilebert-uncased's architecture, random weights) in the four variants.

Latency, size and memory do not depend on the weight values, so these stand in for the study's model.
Built once into build/bench/mobilebert/<variant> and reused while they load.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from app.bundle import Bundle, BundleError
from app.text import TextSettings, TweetEncoder
from model_build.data import LABELS
from model_build.convert import VARIANTS, convert, representative_inputs
from model_build.package import write_bundle
from model_build.random_init import save_random_model

from .data import DEFAULT_BUNDLE, ROOT, split_tweets

STUDY_DIR = ROOT / "build" / "bench" / "mobilebert"


def _cached(path: Path) -> bool:
    try:
        Bundle.load(path)
    except BundleError:
        return False
    return True


def build_study_bundles(out: Path = STUDY_DIR, calibration: int = 100) -> dict[str, Path]:
    """Random full-size MobileBERT bundles with the default bundle's vocabulary and preprocessing."""
    paths = {v: Path(out) / v for v in VARIANTS}
    missing = [v for v, p in paths.items() if not _cached(p)]
    if not missing:
        return paths
    manifest = json.loads((DEFAULT_BUNDLE / "manifest.json").read_text())
    settings = TextSettings.from_dict(manifest["preprocessing"])
    vocab = DEFAULT_BUNDLE / manifest["vocab_file"]
    encoder = TweetEncoder(vocab, settings, pair=True)
    train, _ = split_tweets()
    encodings = encoder.encode([e.text for e in train], [e.entity for e in train])
    with tempfile.TemporaryDirectory(prefix="mobilebert-") as tmp:
        checkpoint = save_random_model("mobilebert", "full", vocab, Path(tmp) / "checkpoint")
        converted = convert(checkpoint, missing, representative_inputs(encodings, encoder, calibration))
    for variant, (flatbuffer, note) in converted.items():
        write_bundle(
            paths[variant], flatbuffer=flatbuffer, vocab_file=vocab, labels=list(LABELS),
            text_settings=settings.to_dict(), input_format="entity+text", quantization=variant,
            name="mobilebert-random-full", version="0.0.0", base_model="random google/mobilebert-uncased architecture",
            extra={"conversion": note, "notes": "random weights: for size, latency and memory only"},
        )
        print(f"study: wrote {paths[variant]}")
    return paths


if __name__ == "__main__":
    build_study_bundles()
