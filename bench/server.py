"""The edge service as users run it (gunicorn from the edge virtual environment), for benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psutil

from .data import ROOT


def edge_python() -> str:
    """The edge-only interpreter when it is installed (as `make test` builds it), else this one."""
    candidate = os.environ.get("EDGE_PYTHON") or str(ROOT / ".venv-edge" / "bin" / "python")
    return candidate if Path(candidate).exists() else "python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    process: subprocess.Popen
    port: int
    ready_seconds: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def worker_rss_mb(self) -> list[float]:
        return [round(w.memory_info().rss / 2**20, 1) for w in self.workers()]

    def master_rss_mb(self) -> float:
        return round(psutil.Process(self.process.pid).memory_info().rss / 2**20, 1)


@contextmanager
def serve(bundle: Path, workers: int = 1, threads: int = 4, tflite_threads: int = 1, timeout: float = 120,
          **env_extra: str) -> Iterator[Service]:
    """Start gunicorn on loopback, wait for /readyz (the time it took is recorded), stop it afterwards."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    log_dir = ROOT / "build" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "BUNDLE": str(bundle), "WORKERS": str(workers),
           "THREADS": str(threads), "TFLITE_THREADS": str(tflite_threads), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
           "LOG_LEVEL": "WARNING", **env_extra}
    with open(log_dir / "gunicorn.log", "ab") as log:
        started = time.perf_counter()
        proc = subprocess.Popen([edge_python(), "-m", "gunicorn", "-c", "app/gunicorn_conf.py"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}; see {log_dir / 'gunicorn.log'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200 and len(psutil.Process(proc.pid).children()) >= workers:
                        break
            except OSError:
                pass
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"gunicorn not ready within {timeout} s")
            time.sleep(0.05)
        yield Service(proc, port, round(time.perf_counter() - started, 2))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(metrics_dir, ignore_errors=True)
