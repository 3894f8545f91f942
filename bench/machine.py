"""What the benchmark ran on: CPU, cores, Python and the versions of every runtime compared."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata

PACKAGES = ("ai-edge-litert", "tokenizers", "numpy", "flask", "gunicorn", "torch", "transformers", "onnxruntime")


def machine_info() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                if line.startswith("model name")), platform.processor())
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "kernel": platform.release(),
        "python": platform.python_version(), "packages": versions,
    }
