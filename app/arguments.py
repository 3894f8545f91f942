"""argparse types the commands of app, bulk and model_build share: a bad value is argparse's one line."""

from __future__ import annotations

import argparse
import math
from typing import Callable


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer from ``low`` (to ``high``)."""
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value
    return parse


def rate(raw: str) -> float:
    """A learning rate: a finite number, 0 or more (0 leaves the weights as they are)."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of 0 or more, got {raw!r}")
    return value


SEED = whole_number(0, 2**32 - 1)  # what PyTorch and NumPy take
