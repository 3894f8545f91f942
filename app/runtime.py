"""The TFLite interpreter: LiteRT (ai-edge-litert) where installed, else tflite-runtime."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata

# Preference order: LiteRT runs dynamic-length models several times faster and reads newer op versions.
_CANDIDATES = (
    ("ai-edge-litert", "ai_edge_litert.interpreter"),
    ("tflite-runtime", "tflite_runtime.interpreter"),
)


@dataclass(frozen=True)
class Runtime:
    name: str
    version: str
    interpreter_class: type


def load_runtime(prefer: str | None = None) -> Runtime:
    """Import the first available runtime (``prefer`` names one to try first)."""
    candidates = sorted(_CANDIDATES, key=lambda c: c[0] != prefer)
    errors = []
    for dist, module in candidates:
        try:
            interpreter = importlib.import_module(module).Interpreter
        except ImportError as exc:
            errors.append(f"{dist}: {exc}")
            continue
        return Runtime(dist, metadata.version(dist), interpreter)
    raise RuntimeError("no TFLite runtime installed (" + "; ".join(errors) + ")")
