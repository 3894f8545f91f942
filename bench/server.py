"""The edge service as users run it (gunicorn from the edge virtual environment): the one start-and-wait helper of
the benchmarks, the tests and the arm64 smoke test, and a reader of its metrics. It needs only what the edge
environment has (psutil, for the worker processes, where it is installed)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class ServiceFailed(RuntimeError):
    """The edge environment cannot run (its Python, its packages), or its service did not start or failed while
    measured: the message says why, or where the service's log is."""


def edge_python() -> str:
    """The edge-only interpreter: ``EDGE_PYTHON`` (as `make test` sets it; one that is not there is refused, not
    replaced), else ``.venv-edge``'s, else this one."""
    if given := os.environ.get("EDGE_PYTHON"):
        if not (Path(given).is_file() and os.access(given, os.X_OK)):
            why = "not a program" if Path(given).exists() else "no such file"
            raise ServiceFailed(f"EDGE_PYTHON={given}: {why}")
        return given
    candidate = ROOT / ".venv-edge" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Requests to the service on this machine never go through an HTTP proxy the environment names (http_proxy).
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_ready(url: str, timeout: float, process: subprocess.Popen | None = None, workers: int = 0,
               interval: float = 0.05) -> float:
    """Poll ``url/readyz`` until it answers 200 (and ``process`` has ``workers`` children); the seconds it took.

    Raises ServiceFailed when ``process`` exits first or ``timeout`` passes."""
    started = time.perf_counter()
    while True:
        if process is not None and process.poll() is not None:
            raise ServiceFailed(f"gunicorn exited with status {process.returncode} during start")
        try:
            with DIRECT.open(f"{url}/readyz", timeout=max(2.0, interval)) as r:
                if r.status == 200 and (not workers or len(_children(process)) >= workers):
                    return round(time.perf_counter() - started, 2)
        except OSError:
            pass
        if time.perf_counter() - started > timeout:
            raise ServiceFailed(f"{url}/readyz not ready within {timeout:.0f} s")
        time.sleep(interval)


def metric_value(text: str, sample: str, **labels: str) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels``, in Prometheus text ``text``."""
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == sample and labels.items() <= s.labels.items())


def _children(process: subprocess.Popen | None) -> list:
    import psutil

    return psutil.Process(process.pid).children() if process is not None else []


@dataclass
class Service:
    """A gunicorn master started by :func:`start` (in a session of its own, so a stop reaches every worker)."""

    process: subprocess.Popen
    port: int
    log: Path
    ready_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list:
        return _children(self.process)

    def worker_rss_mb(self) -> list[float]:
        return [round(w.memory_info().rss / 2**20, 1) for w in self.workers()]

    def pss_mb(self) -> float:
        """The whole service's memory: the proportional set sizes of its master and workers (a page they share is
        counted once, split between them)."""
        import psutil

        return round(sum(p.memory_full_info().pss for p in [psutil.Process(self.process.pid), *self.workers()]) / 2**20, 1)

    def master_rss_mb(self) -> float:
        import psutil

        return round(psutil.Process(self.process.pid).memory_info().rss / 2**20, 1)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM the whole session, SIGKILL after 30 s; gunicorn's exit status."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def start(bundle: Path, log: Path, workers: int = 1, threads: int = 4, tflite_threads: int = 1,
          **env_extra: str) -> Service:
    """Start gunicorn on a free loopback port with the service's own config; it does not wait."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != METRICS_DIR}
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "BUNDLE": str(bundle), "WORKERS": str(workers),
                "THREADS": str(threads), "TFLITE_THREADS": str(tflite_threads), "LOG_LEVEL": "WARNING"}, **env_extra)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen([edge_python(), "-m", "gunicorn", "-c", "app/gunicorn_conf.py"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Service(process, port, log)


@contextmanager
def serve(bundle: Path, workers: int = 1, threads: int = 4, tflite_threads: int = 1, timeout: float = 120,
          log: Path | None = None, **env_extra: str) -> Iterator[Service]:
    """:func:`start`, wait until ready with every worker up (the time is recorded), stop afterwards.

    A private metrics directory is made unless ``PROMETHEUS_MULTIPROC_DIR`` is given."""
    metrics_dir = None if METRICS_DIR in env_extra else tempfile.mkdtemp(prefix="reputation-metrics-")
    if metrics_dir:
        env_extra[METRICS_DIR] = metrics_dir
    service = start(bundle, log or ROOT / "build" / "bench" / "gunicorn.log", workers, threads, tflite_threads,
                    **env_extra)
    try:
        try:
            service.ready_seconds = wait_ready(service.url, timeout, service.process, workers)
        except ServiceFailed as exc:
            raise ServiceFailed(f"{exc}: see the end of {service.log}") from None
        yield service
    finally:
        service.stop()
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
