"""Matplotlib figures for reports, drawn without a display and written whole or not at all."""

from __future__ import annotations

import io
from pathlib import Path

from .fsutil import write_bytes


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display on a build machine or in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, dpi: int) -> None:
    """Write ``fig`` to ``path`` as PNG atomically, and close it."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=dpi, format="png")
    finally:
        pyplot().close(fig)
    write_bytes(path, buffer.getvalue())
