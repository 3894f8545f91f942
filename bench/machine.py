"""What the benchmark ran on: CPU, cores, Python and the versions of every runtime compared."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata

PACKAGES = ("ai-edge-litert", "tokenizers", "numpy", "flask", "gunicorn", "torch", "transformers", "onnxruntime")


# The vector extensions that int8 and float kernels choose between (x86 "flags", Arm "Features" in /proc/cpuinfo):
# the same model runs several times faster or slower with them, so a result names those its CPU has.
SIMD = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm")


def _cpuinfo(key: str) -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.split(":", 1)[0].strip() == key), "")


def machine_info() -> dict:
    cpu = _cpuinfo("model name") or platform.processor()
    flags = set((_cpuinfo("flags") or _cpuinfo("Features")).split())
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "cpu": cpu, "simd": [f for f in SIMD if f in flags],
        "cores": os.cpu_count(), "machine": platform.machine(), "kernel": platform.release(),
        "python": platform.python_version(), "packages": versions,
    }
