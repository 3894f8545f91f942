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


def number(high: float | None = None) -> Callable[[str], float]:
    """A finite number (up to ``high``: a weight or a rate so large that the losses overflow trains nothing but NaN);
    the lower bounds, and their words, are the settings' own."""
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {raw!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:g}, got {raw}")
        return value
    return parse


def rate(raw: str) -> float:
    """A learning rate: a finite number from 0 (which leaves the weights as they are) to 1."""
    value = number(1.0)(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {raw!r}")
    return value


WEIGHT = number(1000.0)  # a loss weight, or a loss's exponent: far above any that trains


SEED = whole_number(0, 2**32 - 1)  # what PyTorch and NumPy take
