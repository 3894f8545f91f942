"""The model bundle: a directory with a .tflite model, a vocabulary and a verified manifest."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import best_match

from .errors import AppError
from .text import InputFormat, TextSettings, TweetEncoder, name_key

SCHEMA_VERSION = 1
DEFAULT_RELATED_THRESHOLD = 0.5  # a manifest's related_threshold where it states none
MANIFEST = "manifest.json"
# The manifest's structure and allowed values (schema_version 1); checks across fields are in _validate.
# JSON Schema's "integer" takes 56.0 too, which would reach the tokenizer as a float: here an integer is one.
_Validator = validators.extend(Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)))
MANIFEST_SCHEMA = _Validator(json.loads(  # read from a zip too (bulk's executors)
    resources.files(__package__).joinpath("manifest.schema.json").read_text(encoding="utf-8")))


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"{text} is beyond a float's range")
    return value


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A validated bundle; build it with :meth:`Bundle.load`."""

    path: Path
    name: str
    version: str
    labels: tuple[str, ...]
    pair_input: bool
    quantization: str
    model_path: Path
    model_bytes: int
    vocab_path: Path
    text_settings: TextSettings
    runtimes: tuple[tuple[str, str], ...]
    manifest_json: str
    has_related: bool = False
    related_threshold: float = DEFAULT_RELATED_THRESHOLD  # a tweet is about the entity from this probability up
    label_offsets: tuple[float, ...] = ()  # one per label, added to its polarity logit; () adds nothing
    entity_aliases: tuple[tuple[str, str], ...] = ()  # (another name of an entity, the name it was trained with)

    def adjusted(self, logits: np.ndarray) -> np.ndarray:
        """Polarity logits (one column per label, in ``labels`` order) with the manifest's label offsets added: what
        the label and the scores are taken from."""
        return logits + np.asarray(self.label_offsets, dtype=logits.dtype) if any(self.label_offsets) else logits

    def encoder(self) -> TweetEncoder:
        """The bundle's text pipeline: its vocabulary, preprocessing and entity aliases (ValueError for a vocabulary
        that cannot serve)."""
        return TweetEncoder(self.vocab_path, self.text_settings, self.pair_input, self.entity_aliases)

    def manifest(self) -> dict[str, Any]:
        """A fresh copy of the whole manifest."""
        return json.loads(self.manifest_json)

    def summary(self) -> dict[str, Any]:
        """The manifest's public part: what a client may see at /v1/model."""
        manifest = self.manifest()
        keys = ("name", "version", "labels", "outputs", "base_model", "input_format", "quantization",
                "created", "metrics", "runtimes", "training", "entity_aliases", "notes")
        out = {k: manifest[k] for k in keys if k in manifest}
        out["labels"] = list(self.labels)  # as every answer names them: in lower case
        out["max_length"] = self.text_settings.max_length
        if self.has_related:
            out["related_threshold"] = self.related_threshold
        if any(self.label_offsets):
            out["label_offsets"] = {label: offset for label, offset in zip(self.labels, self.label_offsets) if offset}
        out["model_bytes"] = self.model_bytes
        return out

    @classmethod
    def load(cls, path: str | Path) -> "Bundle":
        """Read and verify a bundle directory; raise AppError with a one-line reason."""
        root = Path(path)
        if not root.is_dir():
            raise AppError(f"bundle {root}: not a directory")
        try:
            manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"), parse_constant=_not_a_number,
                                  parse_float=_finite)
        except FileNotFoundError:
            raise AppError(f"bundle {root}: no {MANIFEST}") from None
        except ValueError as exc:  # not UTF-8, not JSON, NaN or Infinity
            raise AppError(f"bundle {root}: {MANIFEST} is not valid JSON ({exc})") from None
        try:
            labels, settings = _validate(manifest)
            offsets = {k.lower(): v for k, v in manifest.get("label_offsets", {}).items()}
            _verify_files(root, manifest["files"])
        except AppError as exc:
            raise AppError(f"bundle {root}: {exc}") from None
        model_file = manifest["model_file"]
        return cls(
            path=root,
            name=manifest["name"],
            version=manifest["version"],
            labels=labels,
            pair_input=InputFormat(manifest["input_format"]).pair,
            quantization=manifest["quantization"],
            model_path=root / model_file,
            model_bytes=int(manifest["files"][model_file]["bytes"]),
            vocab_path=root / manifest["vocab_file"],
            text_settings=settings,
            runtimes=tuple(sorted((str(k), str(v)) for k, v in manifest["runtimes"].items())),
            manifest_json=json.dumps(manifest, sort_keys=True),
            has_related="related" in manifest.get("outputs", ()),
            related_threshold=float(manifest.get("related_threshold", DEFAULT_RELATED_THRESHOLD)),
            label_offsets=tuple(float(offsets.get(label, 0.0)) for label in labels),
            entity_aliases=tuple(sorted(manifest.get("entity_aliases", {}).items())),
        )


def _validate(manifest: Any) -> tuple[tuple[str, ...], TextSettings]:
    if not isinstance(manifest, dict):
        raise AppError("manifest is not a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise AppError(f"manifest schema_version {version} unsupported (this build reads {SCHEMA_VERSION})")
    error = best_match(MANIFEST_SCHEMA.iter_errors(manifest))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise AppError(f"manifest '{where}': {error.message[:200]}" if where else f"manifest: {error.message[:200]}")
    labels = tuple(x.lower() for x in manifest["labels"])
    if len(set(labels)) != len(labels):
        raise AppError(f"manifest 'labels' {manifest['labels']} differ only in case")
    if "related_threshold" in manifest and "related" not in manifest.get("outputs", ()):
        raise AppError("manifest 'related_threshold' is set, but 'outputs' has no 'related'")
    offsets = manifest.get("label_offsets", {})
    if len({label.lower() for label in offsets}) != len(offsets):
        raise AppError(f"manifest 'label_offsets' {sorted(offsets)} names a label twice")
    for label in offsets:
        if label.lower() not in labels:
            raise AppError(f"manifest 'label_offsets' names {label!r}, which is not one of 'labels' {list(labels)}")
    for key in ("model_file", "vocab_file"):
        if manifest[key] not in manifest["files"]:
            raise AppError(f"manifest '{key}' {manifest[key]!r} has no checksum in 'files'")
    settings = TextSettings.from_dict(manifest["preprocessing"])
    _check_aliases(manifest, settings)
    return labels, settings


def _check_aliases(manifest: dict, settings: TextSettings) -> None:
    """Entity aliases apply to a model that reads entity names, each alias matching one name as ``name_key`` reads it
    and mapping it to another that is no alias."""
    aliases = manifest.get("entity_aliases", {})
    if aliases and not InputFormat(manifest["input_format"]).pair:
        raise AppError(f"manifest 'entity_aliases' is set, but 'input_format' {manifest['input_format']!r} reads "
                       "no entity")
    seen: dict[str, str] = {}
    for alias, name in aliases.items():
        key = name_key(alias, settings)
        empty = next((n for n in (alias, name) if not name_key(n, settings)), None)
        if empty is not None:
            raise AppError(f"manifest 'entity_aliases' names {empty!r}, which preprocessing leaves empty")
        if key in seen:
            raise AppError(f"manifest 'entity_aliases' names {seen[key]!r} and {alias!r}, which read the same")
        if key == name_key(name, settings):
            raise AppError(f"manifest 'entity_aliases' maps {alias!r} to {name!r}, which reads the same")
        seen[key] = alias
    chained = next((name for name in aliases.values() if name_key(name, settings) in seen), None)
    if chained is not None:
        raise AppError(f"manifest 'entity_aliases' maps a name to {chained!r}, which is an alias itself")


def _verify_files(root: Path, files: Mapping[str, Any]) -> None:
    for name, entry in files.items():
        if Path(name).name != name:
            raise AppError(f"file name {name!r} must not contain a path")
        target = root / name
        if not target.is_file():
            raise AppError(f"file {name} is missing")
        size = target.stat().st_size
        if size != entry.get("bytes"):
            raise AppError(f"file {name} is {size} bytes, manifest says {entry.get('bytes')} (truncated?)")
        if sha256_file(target) != entry["sha256"]:
            raise AppError(f"file {name} fails its sha256 check (corrupt or modified)")

