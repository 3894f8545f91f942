"""What the benchmark ran on: CPU, cores, Python and the versions of every runtime compared."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from importlib import metadata

from .server import ROOT, ServiceFailed, edge_python

PACKAGES = ("ai-edge-litert", "tokenizers", "numpy", "flask", "gunicorn", "torch", "transformers", "onnxruntime")


# The vector extensions that int8 and float kernels choose between (x86 "flags", Arm "Features" in /proc/cpuinfo):
# the same model runs several times faster or slower with them, so a result names those its CPU has.
SIMD = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm")


def _cpuinfo(key: str) -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.split(":", 1)[0].strip() == key), "")


def versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Each package's version in this interpreter's environment (None where it is not installed)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine_info() -> dict:
    """The machine, and the package versions of the benchmark's environment and of the edge one, which runs the
    service, the probes and the offline command."""
    cpu = _cpuinfo("model name") or platform.processor()
    flags = set((_cpuinfo("flags") or _cpuinfo("Features")).split())
    edge = subprocess.run([edge_python(), "-c", "import json; from bench.machine import versions; "
                           "print(json.dumps(versions()))"], cwd=ROOT, capture_output=True, text=True)
    if edge.returncode:
        raise ServiceFailed(f"the edge environment's Python could not list its packages: "
                            f"{(edge.stderr.strip().splitlines() or ['no message'])[-1]}")
    return {
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "cpu": cpu, "simd": [f for f in SIMD if f in flags],
        "cores": os.cpu_count(), "machine": platform.machine(), "kernel": platform.release(),
        "python": platform.python_version(), "packages": versions(),
        "edge_packages": {k: v for k, v in json.loads(edge.stdout).items() if v},
    }
