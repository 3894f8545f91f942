"""gunicorn settings from environment variables, and prometheus-client multiprocess housekeeping."""

import os
import shutil
import sys
from pathlib import Path

from app.bundle import Bundle, BundleError
from app.config import Config, ConfigError, ServerConfig

try:
    _server, _service = ServerConfig.from_env(), Config.from_env()
except ConfigError as exc:
    sys.exit(f"configuration error: {exc}")

wsgi_app = "app.wsgi:create()"
bind = _server.bind
workers = _server.workers
# gthread (a thread per active connection; idle keep-alive connections wait in a poller) with a
# receive timeout, so a client that stalls mid-request frees its thread after READ_TIMEOUT seconds.
# The interpreter is guarded by a lock inside each worker: threads are for I/O, not parallel inference.
worker_class = "app.gunicorn_worker.ReadTimeoutThreadWorker"
threads = _server.threads
timeout = _server.timeout
graceful_timeout = _server.graceful_timeout
keepalive = _server.keepalive
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
accesslog = "-"
# The access log holds method, path, status and timing: never a body, so never tweet text.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
errorlog = "-"
loglevel = _service.log_level.lower()


def _fail(message: str) -> None:
    print(f"reputation service cannot start: {message}", file=sys.stderr, flush=True)
    os._exit(1)


def on_starting(server):
    """Check the bundle and prepare an empty multiprocess metrics directory before any worker starts."""
    try:
        Bundle.load(_service.bundle)
    except BundleError as exc:
        _fail(str(exc))
    directory = _service.metrics_dir
    if directory is None:
        if workers > 1:
            _fail("PROMETHEUS_MULTIPROC_DIR must be set when WORKERS > 1, or /metrics shows one worker only")
        return
    directory = Path(directory)
    if not directory.is_dir():
        _fail(f"PROMETHEUS_MULTIPROC_DIR {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        _fail(f"PROMETHEUS_MULTIPROC_DIR {directory} is not writable")
    for entry in directory.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the multiprocess metrics."""
    if _service.metrics_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, str(_service.metrics_dir))
