"""The TFLite interpreter: LiteRT (ai-edge-litert) where installed, else tflite-runtime."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata

from .errors import AppError

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


def load_runtime() -> Runtime:
    """Import the first available runtime, in preference order; an AppError when none is installed."""
    errors = []
    for dist, module in _CANDIDATES:
        try:
            interpreter = importlib.import_module(module).Interpreter
        except ImportError as exc:
            errors.append(f"{dist}: {exc}")
            continue
        return Runtime(dist, metadata.version(dist), interpreter)
    raise AppError("no TFLite runtime installed (" + "; ".join(errors) + ")")
