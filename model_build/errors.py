"""The build side's one error class: its message is the one line a command prints before exiting with 2."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class BuildError(Exception):
    """A build-side failure the user can act on (bad input, missing file, unusable checkpoint)."""


@contextmanager
def readable(what: str) -> Iterator[None]:
    """Inside: reading ``what`` with a library (weights, a vocabulary, a Trainer checkpoint); a file cut off, of
    garbage or of another shape than its config says is a BuildError of one line, not the library's traceback."""
    from pickle import UnpicklingError

    from safetensors import SafetensorError

    try:
        yield
    except (OSError, ValueError, RuntimeError, SafetensorError, UnpicklingError) as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]
        raise BuildError(f"{what}: cannot be read ({type(exc).__name__}: {first})") from None
