"""The closed sets that training settings choose from."""

from __future__ import annotations

from enum import Enum

from .errors import BuildError


class ClassWeighting(str, Enum):
    """Polarity loss weights from the training label counts."""

    NONE = "none"
    SQRT = "sqrt"  # 1 / sqrt(count)
    BALANCED = "balanced"  # 1 / count


class Device(str, Enum):
    """Where a run trains: a GPU when PyTorch sees one (auto), the CPU, or a CUDA GPU that must be there."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"

    def check(self) -> None:
        """Refuse CUDA where PyTorch sees no CUDA GPU, before a run starts rather than hours into one on the CPU."""
        import torch

        if self is Device.CUDA and not torch.cuda.is_available():
            raise BuildError("--device cuda: PyTorch sees no CUDA GPU here (auto uses one when there is one)")
