"""Writing a bundle: model, vocabulary and manifest, verified by the edge loader, renamed into place."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Callable

from app.bundle import MANIFEST, SCHEMA_VERSION, Bundle, sha256_file
from app.classifier import Classifier

from .fsutil import atomic_dir, write_json

MODEL_FILE = "model.tflite"
VOCAB_FILE = "vocab.txt"
_VERSION = re.compile(r"\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?")


def write_bundle(
    out_dir: Path,
    *,
    flatbuffer: bytes,
    vocab_file: Path,
    labels: list[str],
    text_settings: dict,
    input_format: str,
    quantization: str,
    name: str,
    version: str,
    base_model: str,
    extra: dict[str, Any],
    evaluate: Callable[[Path], dict] | None = None,
) -> Bundle:
    """Write a bundle atomically; it replaces ``out_dir`` only once the edge loader has run it."""
    if not _VERSION.fullmatch(version):
        raise ValueError(f"version {version!r} is not semantic (MAJOR.MINOR.PATCH)")
    with atomic_dir(out_dir) as tmp:
        (tmp / MODEL_FILE).write_bytes(flatbuffer)
        (tmp / VOCAB_FILE).write_bytes(Path(vocab_file).read_bytes())
        for f in (MODEL_FILE, VOCAB_FILE):
            (tmp / f).chmod(0o644)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "version": version,
            "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "labels": list(labels),
            "base_model": base_model,
            "input_format": input_format,
            "preprocessing": text_settings,
            "quantization": quantization,
            "model_file": MODEL_FILE,
            "vocab_file": VOCAB_FILE,
            "files": {f: {"sha256": sha256_file(tmp / f), "bytes": (tmp / f).stat().st_size} for f in (MODEL_FILE, VOCAB_FILE)},
            "runtimes": {},
            **extra,
        }
        write_json(tmp / MANIFEST, manifest)
        classifier = Classifier(Bundle.load(tmp))
        manifest["runtimes"] = {classifier.runtime.name: classifier.runtime.version}
        del classifier
        if evaluate:
            manifest.setdefault("metrics", {})["validation"] = evaluate(tmp)
        write_json(tmp / MANIFEST, manifest)
        Bundle.load(tmp)
    return Bundle.load(out_dir)
