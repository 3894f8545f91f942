"""gunicorn settings from environment variables, and prometheus-client multiprocess housekeeping."""

import fcntl
import ipaddress
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from gunicorn import systemd, util
from gunicorn.arbiter import Arbiter
from gunicorn.errors import HaltServer

from app.config import RESOLVED_ENV, service_settings
from app.errors import AppError

try:
    _server, _service = service_settings()
except AppError as exc:
    sys.exit(f"reputation service cannot start: {exc}")
if _server.workers > 1:
    # Workers forked with the service's modules (Flask, NumPy, tokenizers) already imported share their pages: with
    # more than one worker the service takes less memory in all, with one it takes more (its master holds them for
    # nothing). Measured: proportional set sizes (PSS), master and workers, after 400 requests.
    import app.server  # noqa: F401

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
# No proxy sets the WSGI path (gunicorn takes SCRIPT_NAME and PATH_INFO headers from loopback by default): the service
# is served at the root, and such a header from a local client gave gunicorn's 500, or a redirect to the client's Host.
forwarder_headers = ""
# The access log (ACCESS_LOG=1) holds method and route as the metrics name them, status and timing: never a body,
# a query string or a path as the client wrote it, so never tweet text.
accesslog = "-" if _server.access_log else None
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
logger_class = "app.gunicorn_worker.PathOnlyLogger"  # its %(r)s: method and route, as the metrics have them
errorlog = "-"
# No control socket (gunicorn 27 puts one in ~/.gunicorn): reload is SIGHUP, and the hardened unit has no home.
control_socket_disable = True
loglevel = _service.log_level.lower()


def _fail(message: str) -> None:
    print(f"reputation service cannot start: {message}", file=sys.stderr, flush=True)
    os._exit(1)


# Workers load the bundle the master resolved and verified (BUNDLE may be a symlink that is switched
# to publish a new version: the switch takes effect at the next SIGHUP, and only if the new bundle loads).


def _verify(path: Path) -> str | None:
    """``python -m app verify`` in a child process (the master never loads a model); the reason it fails, or None."""
    try:
        result = subprocess.run([sys.executable, "-m", "app", "verify", str(path)], capture_output=True, text=True,
                                timeout=120, cwd=Path(__file__).resolve().parent.parent)
    except subprocess.TimeoutExpired:
        return f"bundle {path}: loading it took over 120 s"
    if result.returncode == 0:
        return None
    last = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
    return last.removeprefix("error: ")


def _bind_error() -> str | None:
    """Why HOST:PORT cannot be listened on (a name that does not resolve, a port in use), or None. gunicorn
    would try five times a second apart, logging each failure, and never say which setting is wrong. The
    probe binds as gunicorn will: IPv6 for an IPv6 address, else IPv4 (a host name too)."""
    if systemd.listen_fds(unset_environment=False) or "GUNICORN_FD" in os.environ:  # sockets handed over
        return None
    try:
        with socket.socket(socket.AF_INET6 if util.is_ipv6(_server.host) else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn's own socket
            probe.bind((_server.host, _server.port))
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:  # the resolver is not up yet (early at boot): gunicorn retries
            return None
        return f"HOST {_server.host!r} does not resolve: {exc.strerror}"
    except OSError as exc:
        return f"cannot listen on {_server.bind} (HOST, PORT): {exc.strerror}"
    return None


# prometheus-client's multiprocess files: counter_<pid>.db, gauge_livesum_<pid>.db, histogram_<pid>.db, ...
METRIC_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")


_claimed: list[int] = []  # the metrics directory's descriptor, locked for as long as this service runs


def _empty_metrics_dir(directory: Path) -> None:
    """Claim the directory and delete the metric files of earlier runs; refuse a directory that holds anything else
    (it is not ours) or that a running service has claimed (its metrics would be deleted under it)."""
    if not directory.is_dir():
        _fail(f"PROMETHEUS_MULTIPROC_DIR {directory} " + ("is not a directory" if directory.exists() else "does not exist"))
    if not os.access(directory, os.W_OK | os.X_OK):
        _fail(f"PROMETHEUS_MULTIPROC_DIR {directory} is not writable")
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)  # shared with the workers it forks, released at exit
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _fail(f"PROMETHEUS_MULTIPROC_DIR {directory} is in use by another running service: give each service a "
              "directory of its own")
    _claimed.append(fd)
    entries = list(directory.iterdir())
    foreign = [e.name for e in entries if not (METRIC_FILE.fullmatch(e.name) and e.is_file())]
    if foreign:
        _fail(f"PROMETHEUS_MULTIPROC_DIR {directory} holds what is not a metric file ({len(foreign)}, such as "
              f"{foreign[0]!r}): give the service a directory of its own")
    for entry in entries:
        entry.unlink()


def _beyond_loopback(host: str) -> bool:
    """Whether a HOST takes connections from other machines (an address other than loopback, or a host name)."""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


def on_starting(server):
    """Check the address, verify the bundle and prepare an empty multiprocess metrics directory, before
    gunicorn listens and any worker starts."""
    bundle = Path(_service.bundle).resolve()
    error = _bind_error() or _verify(bundle)
    if error:
        _fail(error)
    os.environ[RESOLVED_ENV] = str(bundle)
    if _service.auth_token is None and _beyond_loopback(_server.host):
        server.log.warning("no AUTH_TOKEN: anyone who can reach %s:%s may classify, read /metrics and /v1/stats%s; "
                           "set AUTH_TOKEN or AUTH_TOKEN_FILE (README, Configuration)", _server.host, _server.port,
                           " and add corrections to FEEDBACK_FILE" if _service.feedback_file else "")
    directory = _service.metrics_dir
    if directory is None:
        if workers > 1:
            _fail("PROMETHEUS_MULTIPROC_DIR must be set when WORKERS > 1, or /metrics shows one worker only")
        return
    _empty_metrics_dir(Path(directory))


def pre_fork(server, worker):
    """Start the worker's timeout clock at fork. gunicorn 27 compares time.monotonic() with the heartbeat file's
    mtime, which until the first heartbeat (after the app has loaded) is the wall-clock time of its creation: a
    worker stuck while booting was never timed out (seen as a hang after fork under QEMU). Now a worker has
    TIMEOUT seconds to load the bundle, then TIMEOUT more for its first heartbeat, or it is killed and replaced."""
    boot_deadline = time.monotonic() + timeout
    os.utime(worker.tmp.fileno(), (boot_deadline, boot_deadline))


def pre_request(worker, req):
    """Nothing: gunicorn's own logs each request's method and path at DEBUG as the client wrote them, where it could
    put tweet text; the access log (ACCESS_LOG=1) names requests as the metrics do."""


def on_reload(server):
    """SIGHUP: switch to the bundle BUNDLE now points at if it verifies; else keep serving the old one. The bundle the
    new workers will load is verified first: one changed in place since it was verified, no worker could load, and
    each would stop the service with a traceback from gunicorn's master; it stops here instead, saying why."""
    served, bundle = os.environ[RESOLVED_ENV], Path(_service.bundle).resolve()
    error = _verify(bundle)
    if str(bundle) != served:
        if error is None:
            server.log.info("reload: switching to bundle %s", bundle)
            os.environ[RESOLVED_ENV] = str(bundle)
            return
        server.log.error("reload: keeping bundle %s; the new one is refused: %s", served, error)
        error = _verify(Path(served))
    if error:
        raise HaltServer(f"reload: the bundle served is refused now: {error}", Arbiter.WORKER_BOOT_ERROR)


# A dead worker's per-minute ring (app/stats.py, gauge_all_<pid>.db) counts in /v1/stats for an hour; after
# that it only costs a read per scrape, and every reload leaves one per worker: such files are deleted.
RING_FILE = re.compile(r"gauge_all_(\d+)\.db")
RING_KEPT_SECONDS = 3600 + 120  # the 60-minute window, and slack for the page cache's delayed mtime


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the multiprocess metrics, and the rings of workers dead an hour."""
    if _service.metrics_dir is None:
        return
    from prometheus_client import multiprocess

    directory = Path(_service.metrics_dir)
    multiprocess.mark_process_dead(worker.pid, str(directory))
    alive = set(server.WORKERS) | {os.getpid()}
    cutoff = time.time() - RING_KEPT_SECONDS
    for path in directory.iterdir():
        match = RING_FILE.fullmatch(path.name)
        if match and int(match.group(1)) not in alive and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
