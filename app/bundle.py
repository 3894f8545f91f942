"""The model bundle: a directory with a .tflite model, a vocabulary and a verified manifest."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import AppError
from .text import InputFormat, TextSettings

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
INPUT_FORMATS = tuple(f.value for f in InputFormat)
OUTPUTS = ("polarity", "related")
QUANTIZATIONS = ("float32", "float16", "dynamic-int8", "full-int8")
_REQUIRED = {
    "schema_version": int,
    "name": str,
    "version": str,
    "labels": list,
    "base_model": str,
    "input_format": str,
    "preprocessing": dict,
    "quantization": str,
    "model_file": str,
    "vocab_file": str,
    "files": dict,
    "runtimes": dict,
}
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(AppError):
    """A bundle that cannot be served; the message is one line saying why."""


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

    def manifest(self) -> dict[str, Any]:
        """A fresh copy of the whole manifest."""
        return json.loads(self.manifest_json)

    def summary(self) -> dict[str, Any]:
        """The manifest's public part: what a client may see at /v1/model."""
        manifest = self.manifest()
        keys = ("name", "version", "labels", "outputs", "base_model", "input_format", "quantization",
                "created", "metrics", "runtimes", "training", "notes")
        out = {k: manifest[k] for k in keys if k in manifest}
        out["max_length"] = self.text_settings.max_length
        out["model_bytes"] = self.model_bytes
        return out

    @classmethod
    def load(cls, path: str | Path) -> "Bundle":
        """Read and verify a bundle directory; raise BundleError with a one-line reason."""
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"bundle {root}: not a directory")
        try:
            manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BundleError(f"bundle {root}: no {MANIFEST}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"bundle {root}: {MANIFEST} is not valid JSON ({exc})") from None
        try:
            labels, settings = _validate(manifest)
            _verify_files(root, manifest["files"])
        except BundleError as exc:
            raise BundleError(f"bundle {root}: {exc}") from None
        model_file = manifest["model_file"]
        return cls(
            path=root,
            name=manifest["name"],
            version=manifest["version"],
            labels=labels,
            pair_input=manifest["input_format"] == "entity+text",
            quantization=manifest["quantization"],
            model_path=root / model_file,
            model_bytes=int(manifest["files"][model_file]["bytes"]),
            vocab_path=root / manifest["vocab_file"],
            text_settings=settings,
            runtimes=tuple(sorted((str(k), str(v)) for k, v in manifest["runtimes"].items())),
            manifest_json=json.dumps(manifest, sort_keys=True),
            has_related="related" in manifest.get("outputs", ()),
        )


def _validate(manifest: Any) -> tuple[tuple[str, ...], TextSettings]:
    if not isinstance(manifest, dict):
        raise BundleError("manifest is not a JSON object")
    for key, kind in _REQUIRED.items():
        if key not in manifest:
            raise BundleError(f"manifest lacks '{key}'")
        if not isinstance(manifest[key], kind):
            raise BundleError(f"manifest '{key}' should be {kind.__name__}")
    if manifest["schema_version"] != SCHEMA_VERSION:
        raise BundleError(
            f"manifest schema_version {manifest['schema_version']} unsupported (this build reads {SCHEMA_VERSION})"
        )
    labels = manifest["labels"]
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
        raise BundleError("manifest 'labels' must be two or more distinct names")
    if manifest["input_format"] not in INPUT_FORMATS:
        raise BundleError(f"manifest 'input_format' must be one of {INPUT_FORMATS}")
    outputs = manifest.get("outputs", ["polarity"])
    if not isinstance(outputs, list) or outputs[:1] != ["polarity"] or len(set(outputs)) != len(outputs) or any(
            o not in OUTPUTS for o in outputs):
        raise BundleError(f"manifest 'outputs' must list 'polarity' first, then optionally 'related', got {outputs!r}")
    if manifest["quantization"] not in QUANTIZATIONS:
        raise BundleError(f"manifest 'quantization' must be one of {QUANTIZATIONS}")
    for key in ("model_file", "vocab_file"):
        if manifest[key] not in manifest["files"]:
            raise BundleError(f"manifest '{key}' {manifest[key]!r} has no checksum in 'files'")
    try:
        settings = TextSettings.from_dict(manifest["preprocessing"])
    except (TypeError, ValueError) as exc:
        raise BundleError(f"manifest 'preprocessing' invalid: {exc}") from None
    return tuple(x.lower() for x in labels), settings


def _verify_files(root: Path, files: Mapping[str, Any]) -> None:
    for name, entry in files.items():
        if Path(name).name != name:
            raise BundleError(f"file name {name!r} must not contain a path")
        if not isinstance(entry, dict) or not _SHA256.fullmatch(str(entry.get("sha256", ""))):
            raise BundleError(f"file {name}: no valid sha256 in manifest")
        target = root / name
        if not target.is_file():
            raise BundleError(f"file {name} is missing")
        size = target.stat().st_size
        if size != entry.get("bytes"):
            raise BundleError(f"file {name} is {size} bytes, manifest says {entry.get('bytes')} (truncated?)")
        if sha256_file(target) != entry["sha256"]:
            raise BundleError(f"file {name} fails its sha256 check (corrupt or modified)")

