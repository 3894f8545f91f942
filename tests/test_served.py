"""A real gunicorn process (the edge-only virtual environment under `make test`): API, multiprocess
metrics across workers, worker crashes, slow clients, and refusals at start."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.headers import SECURITY_HEADERS
from bench.server import Service, free_port, metric_value, wait_ready
from bench.server import start as bench_start
from tests.conftest import EDGE_PYTHON, ROOT, TINY_BUNDLE, with_manifest


def start(env_extra: dict, tmp_path: Path) -> Service:
    """gunicorn on the tiny bundle with one interpreter thread, logging to a file of ``tmp_path``; not yet ready."""
    env = {"TFLITE_THREADS": "1", "PROMETHEUS_MULTIPROC_DIR": "", **env_extra}
    return bench_start(Path(env.pop("BUNDLE", TINY_BUNDLE)), tmp_path / "gunicorn.log", **env)  # strings win


@contextmanager
def running(env_extra: dict, tmp_path: Path) -> Iterator[Service]:
    service = start(env_extra, tmp_path)
    try:
        wait_ready(service.url, 60, service.process, int(env_extra.get("WORKERS", 1)))
        yield service
    finally:
        service.stop()


def _two_workers(tmp: Path) -> dict:
    (tmp / "metrics").mkdir()
    (tmp / "metrics" / "counter_99999.db").write_bytes(b"stale")  # a metric file of an earlier run
    return {"WORKERS": "2", "THREADS": "4", "READ_TIMEOUT": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")}


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    """Two workers shared by the tests that only send requests (none of them changes the processes)."""
    tmp = tmp_path_factory.mktemp("served")
    with running(_two_workers(tmp), tmp) as svc:
        yield svc


def test_multiprocess_dir_was_wiped(service):
    assert not (service.log.parent / "metrics" / "counter_99999.db").exists()


def test_classify_over_http(service):
    url = service.url
    r = requests.post(url + "/classify", json={"text": "Acme recalls phones", "entity": "Acme"}, timeout=10)
    assert r.status_code == 200 and r.json()["label"] in ("positive", "neutral", "negative")
    r = requests.post(url + "/classify", json={"tweets": [{"text": "a"}, {"text": "b"}]}, timeout=10)
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    r = requests.post(url + "/classify", data=b"{oops", headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_metrics_count_every_worker(service):
    url = service.url
    before = metric_value(requests.get(url + "/metrics", timeout=10).text, "reputation_batch_size_count")
    with requests.Session() as a, requests.Session() as b:  # two connections: gunicorn spreads them
        for i in range(20):
            (a if i % 2 else b).post(url + "/classify", json={"text": f"tweet {i}"}, timeout=10)
    text = requests.get(url + "/metrics", timeout=10).text
    assert metric_value(text, "reputation_batch_size_count") == before + 20
    assert 'reputation_model_info{name="tiny-test"' in text


def test_make_serve_with_two_workers_and_no_metrics_dir(tmp_path):
    """The README's ``HOST=... WORKERS=2 make serve``: make gives the service a metrics directory of its own
    under build/, so both workers show in /metrics, each memory series labelled with its pid."""
    import psutil

    venv, port = Path(EDGE_PYTHON).parent.parent, free_port()
    if not (venv / "bin" / "gunicorn").is_file():
        pytest.skip(f"no gunicorn in {venv}: run through make test, which sets EDGE_PYTHON to the edge environment's")
    metrics_dir = ROOT / "build" / f"metrics-127.0.0.1-{port}"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "2", "BUNDLE": str(TINY_BUNDLE),
                "TFLITE_THREADS": "1", "LOG_LEVEL": "WARNING"})
    with open(tmp_path / "make.log", "wb") as out:
        make = subprocess.Popen(["make", "-s", "-o", f"{venv}/.installed", "serve", f"EDGE_VENV={venv}"], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    service = Service(make, port, tmp_path / "make.log")
    try:
        wait_ready(service.url, 60, make)
        master = psutil.Process(make.pid).children()[0]  # make's shell execs gunicorn
        for _ in range(600):
            text = requests.get(service.url + "/metrics", timeout=10).text
            memory = [sample.labels.get("pid") for family in text_string_to_metric_families(text)
                      for sample in family.samples if sample.name == "reputation_worker_resident_memory_bytes"]
            if len(memory) == 2:
                break
            time.sleep(0.1)
        assert sorted(memory) == sorted(str(w.pid) for w in master.children()), service.log_text()
        assert {p.name for p in metrics_dir.iterdir()} >= {f"gauge_liveall_{w.pid}.db" for w in master.children()}
    finally:
        service.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def test_killed_worker_is_replaced_and_metrics_keep_counting(tmp_path):
    with running(_two_workers(tmp_path), tmp_path) as service:
        url = service.url
        children = [w.pid for w in service.workers()]
        assert len(children) == 2
        before = metric_value(requests.get(url + "/metrics", timeout=10).text, "reputation_batch_size_count")
        os.kill(children[0], signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline:
            now = [w.pid for w in service.workers()]
            if len(now) == 2 and children[0] not in now:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("worker not replaced")
        wait_ready(url, 30, service.process, 2)
        ok = sum(requests.post(url + "/classify", json={"text": "after the crash"}, timeout=30).status_code == 200
                 for _ in range(10))
        assert ok == 10
        after = metric_value(requests.get(url + "/metrics", timeout=10).text, "reputation_batch_size_count")
        assert after >= before + 10  # the dead worker's counts stay; the new worker's are added


def _replaced(service: Service, old: int) -> None:
    """Wait until the one worker runs, another than ``old``, and answers."""
    deadline = time.time() + 60
    while (now := [w.pid for w in service.workers()]) == [] or now[0] == old or len(now) > 1:
        assert service.process.poll() is None, service.log_text()[-2000:]
        assert time.time() < deadline, "worker not replaced"
        time.sleep(0.2)
    wait_ready(service.url, 30, service.process, 1)


def test_settings_read_at_start_hold_for_a_replaced_worker_and_a_reload(tmp_path):
    """The token file is read once, at start (README: a new token takes a restart): a worker started later, after a
    crash or a SIGHUP, serves with the token read at start, even with the file changed or gone since. Workers used
    to read it again: a replacement took the new token (beside other workers keeping the old), and with the file
    removed the reload's new workers failed to start, and gunicorn shut the whole service down. One worker, so that
    every request after the crash reaches its replacement."""
    token = tmp_path / "token"
    token.write_text("first-token-0123456789\n")
    with running({"AUTH_TOKEN_FILE": str(token)}, tmp_path) as service:

        def statuses(secret: str) -> set[int]:
            return {requests.get(service.url + "/v1/model", headers={"Authorization": f"Bearer {secret}"},
                                 timeout=10).status_code for _ in range(8)}

        assert statuses("first-token-0123456789") == {200}
        token.write_text("second-token-0123456789\n")
        (worker,) = service.workers()
        worker.kill()
        _replaced(service, worker.pid)
        assert statuses("first-token-0123456789") == {200}
        assert statuses("second-token-0123456789") == {401}
        token.unlink()
        (worker,) = service.workers()
        os.kill(service.process.pid, signal.SIGHUP)
        _replaced(service, worker.pid)
        assert statuses("first-token-0123456789") == {200}
        assert service.process.poll() is None


def test_slow_clients_do_not_starve_fast_requests(service):
    """Twice as many stalled requests (half a body, half the headers) as the 2 x 4 worker threads."""
    url = service.url
    host, port = url.removeprefix("http://").split(":")
    slow = []
    try:
        for i in range(16):
            s = socket.create_connection((host, int(port)))
            s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + (b"Content-Length: 100\r\n\r\n{" if i % 2 else b"X-Slow: 1"))
            slow.append(s)
        stalled = {s.getsockname()[1] for s in slow}
        deadline = time.time() + 30
        while not stalled <= {c.raddr.port for w in service.workers() for c in w.net_connections("tcp") if c.raddr}:
            assert time.time() < deadline, "the stalled connections were never accepted"
            time.sleep(0.05)  # until the workers hold every stalled connection
        # A stalled client holds a thread only for a few READ_TIMEOUT periods (2 s here), so requests
        # behind them wait seconds; without the timeout they would wait for as long as the clients like.
        for _ in range(5):
            r = requests.post(url + "/classify", json={"text": "still served"}, timeout=30)
            assert r.status_code == 200
        for s in slow:  # each stalled client was cut off: a 408 answer or a closed connection
            s.settimeout(90)  # measured: all 16 cut off within about 35 s (READ_TIMEOUT 2 s)
            answer = s.recv(4096)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:80]
        log = service.log_text()  # a client cut off mid-headers fills no log with tracebacks (one DEBUG line)
        assert "Socket error" not in log and "Traceback" not in log, log[-2000:]
    finally:
        for s in slow:
            s.close()


def test_a_chunked_body_over_max_body_bytes_is_413_and_one_at_the_limit_is_read_whole(service):
    """Without Content-Length, werkzeug stops reading at the limit: the service must not parse the cut-off body."""
    limit = 1 << 20  # MAX_BODY_BYTES's default

    def chunked(size: int) -> Iterator[bytes]:  # a generator body: requests sends it chunked
        head = b'{"text": "Acme", "pad": "'
        yield head + b"x" * (size - len(head) - 2) + b'"}'

    r = requests.post(service.url + "/classify", data=chunked(limit + 1), headers={"Content-Type": "application/json"},
                      timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", r.text
    r = requests.post(service.url + "/classify", data=chunked(limit), headers={"Content-Type": "application/json"},
                      timeout=30)
    assert r.status_code == 200, r.text
    # exactly the limit, then silence before the last chunk: the look for more times out (408), not a 500
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % limit + next(chunked(limit)) + b"\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 408")
    # a malformed chunk, met by the application as it reads the body (gunicorn's chunk reader): 400, not a 500; where
    # the next request would start is unknown, so the answer says the connection closes, and it is the only one
    status, headers, body = _raw_answer(service.url, b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                        b"application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
                                        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body["error"]["code"], headers["connection"]) == (400, "malformed_request", "close")


def _raw_answer(url: str, request: bytes) -> tuple[int, dict, dict]:
    """Send bytes as they are; the answer's status, headers (lower-case names) and JSON body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.mark.parametrize(("request_bytes", "status", "code"), [
    (b"NONSENSE\r\n\r\n", 400, "malformed_request"),
    (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, "malformed_request"),
    (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: twelve\r\n\r\n", 400, "malformed_request"),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request_line_too_long"),
    (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(60)) + b"\r\n", 431, "headers_too_large"),
    (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417, "expectation_failed"),
    (b"POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n", 501, "not_implemented"),
], ids=["request-line", "http-version", "content-length", "long-request-line", "many-headers", "long-header", "expect",
        "transfer-coding"])
def test_requests_that_break_http_get_the_api_json_error(service, request_bytes, status, code):
    """gunicorn answers these before the application sees them; its worker writes the API's JSON error."""
    got, headers, body = _raw_answer(service.url, request_bytes)
    assert (got, headers["content-type"], body["error"]["code"]) == (status, "application/json", code)
    assert body["error"]["message"] and headers["connection"] == "close"
    assert {name.lower(): value for name, value in SECURITY_HEADERS.items()}.items() <= headers.items()
    assert requests.get(service.url + "/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("script_name", ["/foo", "/healthz"])
def test_a_script_name_header_from_a_local_client_changes_no_path(service, script_name):
    """gunicorn would take SCRIPT_NAME from a loopback client (a proxy, by its default) as the WSGI path's prefix:
    a 500 of its own, or a redirect built from the client's Host header; the service is served at the root."""
    answer = requests.get(service.url + "/healthz", headers={"SCRIPT_NAME": script_name, "Host": "elsewhere.example"},
                          timeout=10, allow_redirects=False)
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_a_client_trickling_a_request_is_cut_off_at_read_timeout(service):
    """A byte a second (each gap under READ_TIMEOUT, 2 s here) does not hold a thread for ever: READ_TIMEOUT counts
    over the whole request, so headers are cut off (closed) and a body gets 408. A timeout counted per gap would
    never cut it off (its 8,190-byte header field would take over two hours)."""
    host, port = service.url.removeprefix("http://").split(":")
    heads = {"headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ",
             "body": b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"}
    for part, head in heads.items():
        with socket.create_connection((host, int(port)), timeout=30) as s:
            s.sendall(head)
            answer = None
            s.settimeout(1)
            for _ in range(20):  # a guard against a hang: READ_TIMEOUT is 2 s
                try:
                    s.sendall(b"a")
                    answer = s.recv(4096)
                    break
                except TimeoutError:
                    continue
                except OSError:  # reset: the service closed the connection
                    answer = b""
                    break
        assert answer is not None, f"{part}: never cut off"
        assert answer == b"" if part == "headers" else answer.startswith(b"HTTP/1.1 408"), (part, answer)


def test_bad_requests_leave_their_bytes_out_of_the_log_and_methods_out_of_the_metrics(service):
    """gunicorn quotes a bad request's bytes (a chunk, a request line) in its log line and its answer: a tweet, where
    a client put one. A method is a client's choice too: an unknown one is counted as "other"."""
    marker = "ZQXMARK-bad-request"
    host, port = service.url.removeprefix("http://").split(":")
    statuses = []
    for request in (b"GET /classify?text=" + marker.encode() + b"\r\n\r\n",  # no HTTP version
                    b"GET /a?zip=" + marker.encode() + b"\x01 HTTP/1.1\r\n\r\n",  # 'ip=' in it: no address to keep
                    # a body the application never reads, malformed: found as gunicorn drains it after the answer
                    b"POST /nowhere HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + json.dumps({"text": marker}).encode() + b"\r\n0\r\n\r\n",
                    marker.upper().replace("-", "").encode()[:20] + b" /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"):
        answer = b""
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
            while chunk := s.recv(65536):
                answer += chunk
        assert marker.encode() not in answer
        statuses.append(re.findall(rb"^HTTP/1\.1 (\d+)", answer, re.MULTILINE))
    assert statuses == [[b"400"], [b"400"], [b"404"], [b"404"]]  # one answer each: the drained body's is no second
    time.sleep(0.5)  # the worker's log line
    metrics = requests.get(service.url + "/metrics", timeout=10).text
    assert marker not in service.log_text() and marker.upper().replace("-", "") not in metrics
    assert 'method="other"' in metrics


def _start_fails(tmp_path, env_extra, fragment):
    service = start(env_extra, tmp_path)
    try:
        service.process.wait(timeout=60)
    finally:
        service.stop()
    assert service.process.returncode != 0
    assert fragment in service.log_text(), service.log_text()


def test_no_token_on_a_network_address_is_said_at_start(tmp_path):
    """HOST beyond loopback without AUTH_TOKEN: anyone on the network may classify; the start says so once, a
    loopback-only service or one with a token does not."""
    logs = {}
    for name, settings in (("open", {"HOST": "0.0.0.0"}), ("local", {}), ("token", {"HOST": "0.0.0.0", "AUTH_TOKEN": "t" * 20})):
        (tmp_path / name).mkdir()
        with running(settings, tmp_path / name) as service:
            logs[name] = service.log_text()
    assert logs["open"].count("no AUTH_TOKEN: anyone who can reach 0.0.0.0:") == 1, logs["open"]
    assert "no AUTH_TOKEN" not in logs["local"] + logs["token"]


def test_missing_bundle_is_refused_at_start(tmp_path):
    _start_fails(tmp_path, {"BUNDLE": str(tmp_path / "nowhere")}, "not a directory")


def test_tampered_bundle_is_refused_at_start(tmp_path, tiny_bundle_copy):
    model = tiny_bundle_copy / "model.tflite"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    _start_fails(tmp_path, {"BUNDLE": str(tiny_bundle_copy)}, "fails its sha256 check")


@pytest.mark.parametrize("restart", ["a worker killed", "a reload"])
def test_a_bundle_changed_in_place_stops_the_service_in_one_line_at_the_next_worker_start(tmp_path, tiny_bundle_copy,
                                                                                          restart):
    """Workers started later load the bundle again: one changed under a running service stops it (gunicorn ends when a
    worker cannot boot), the reason in one line, not a traceback. A reload verifies it before starting any (two new
    workers failing at once ended gunicorn's master with its own traceback)."""
    with running({**_two_workers(tmp_path), "BUNDLE": str(tiny_bundle_copy)}, tmp_path) as service:
        model = tiny_bundle_copy / "model.tflite"
        model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
        os.kill(service.workers()[0].pid if restart == "a worker killed" else service.process.pid,
                signal.SIGKILL if restart == "a worker killed" else signal.SIGHUP)
        service.process.wait(timeout=60)
    log = service.log_text()
    assert service.process.returncode == 3 and "fails its sha256 check" in log and "Traceback" not in log, log
    if restart == "a worker killed":
        assert "reputation worker cannot start: bundle" in log and "Reason: Worker failed to boot." in log, log
    else:
        assert "Reason: reload: the bundle served is refused now: bundle" in log, log


def test_missing_metrics_dir_is_refused_at_start(tmp_path):
    _start_fails(tmp_path, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "absent")}, "does not exist")
    (tmp_path / "a-file").write_text("")
    _start_fails(tmp_path, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "a-file")}, "a-file is not a directory")


def test_an_empty_metrics_dir_setting_writes_no_files(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR= (empty) is unset: no metric files appear in the working directory."""
    before = set(ROOT.glob("*.db"))
    with running({"PROMETHEUS_MULTIPROC_DIR": ""}, tmp_path) as service:
        assert requests.post(service.url + "/classify", json={"text": "a tweet"}, timeout=10).status_code == 200
        assert requests.get(service.url + "/metrics", timeout=10).status_code == 200
    assert set(ROOT.glob("*.db")) == before


def test_metrics_dir_holding_other_files_is_refused_and_left_alone(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR=/tmp must not empty /tmp: only a directory of metric files is emptied."""
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    (shared / "notes.txt").write_text("a user's file")
    (shared / "counter_123.db").write_bytes(b"metrics")
    _start_fails(tmp_path, {"PROMETHEUS_MULTIPROC_DIR": str(shared)}, "holds what is not a metric file (1, such as 'notes.txt')")
    assert sorted(p.name for p in shared.iterdir()) == ["counter_123.db", "notes.txt"]


def test_a_metrics_dir_another_service_uses_is_refused_and_its_files_kept(tmp_path):
    """A second service on a running one's PROMETHEUS_MULTIPROC_DIR would delete its live metric files (its workers
    then write to deleted files: counts lost until restart): refused; once the first has stopped, the start works."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    with running({"PROMETHEUS_MULTIPROC_DIR": str(directory)}, tmp_path / "first") as first:
        assert requests.post(first.url + "/classify", json={"text": "a tweet"}, timeout=10).status_code == 200
        files = sorted(p.name for p in directory.iterdir())
        _start_fails(tmp_path / "second", {"PROMETHEUS_MULTIPROC_DIR": str(directory)},
                     f"reputation service cannot start: PROMETHEUS_MULTIPROC_DIR {directory} is in use by another "
                     "running service")
        assert sorted(p.name for p in directory.iterdir()) == files
        assert requests.post(first.url + "/classify", json={"text": "a tweet"}, timeout=10).status_code == 200
        text = requests.get(first.url + "/metrics", timeout=10).text
        assert metric_value(text, "reputation_batch_size_count") == 2
    with running({"PROMETHEUS_MULTIPROC_DIR": str(directory)}, tmp_path / "third") as third:
        assert metric_value(requests.get(third.url + "/metrics", timeout=10).text, "reputation_batch_size_count") == 0


def test_bad_setting_is_refused_at_start(tmp_path):
    _start_fails(tmp_path, {"WORKERS": "many"}, "WORKERS must be an integer")


def test_address_that_cannot_be_listened_on_is_refused_in_one_line(tmp_path):
    """A port in use or a host name that does not resolve: one line naming the settings, not gunicorn's retries."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _start_fails(tmp_path / "port", {"PORT": str(port)},
                     f"reputation service cannot start: cannot listen on 127.0.0.1:{port} (HOST, PORT): Address already in use")
    _start_fails(tmp_path / "host", {"HOST": "no-such-host.invalid"},
                 "reputation service cannot start: HOST 'no-such-host.invalid' does not resolve")
    for case in ("port", "host"):
        assert "connection to" not in (tmp_path / case / "gunicorn.log").read_text()


def test_the_gunicorn_master_imports_no_web_framework():
    """What gunicorn's master loads for one worker (its config, worker and logger classes): Flask there is memory a
    one-worker service holds twice (6 MB of PSS when the worker's error answers imported the page's headers)."""
    code = ("import json, sys, app.gunicorn_worker; "
            "print(json.dumps([m for m in ('flask', 'werkzeug', 'numpy', 'tokenizers') if m in sys.modules]))")
    out = subprocess.run([EDGE_PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_edge_side_imports_no_heavy_framework():
    code = ("import sys, app.server, app.wsgi, app.offline, app.__main__; "
            "bad = [m for m in ('tensorflow', 'torch', 'transformers') if m in sys.modules]; print(json.dumps(bad))")
    out = subprocess.run([EDGE_PYTHON, "-c", "import json; " + code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def _publish(link: Path, target: Path) -> None:
    """Point the bundle symlink at ``target`` atomically, as a deployment would."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)


def test_bundle_swap_by_symlink_and_sighup(tmp_path):
    import threading

    v1, v2, bad = (with_manifest(TINY_BUNDLE, tmp_path / name, version=version)
                   for name, version in (("v1", "0.0.1"), ("v2", "0.0.2"), ("bad", "0.0.3")))
    model = bad / "model.tflite"
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    link = tmp_path / "current"
    _publish(link, v1)
    (tmp_path / "metrics").mkdir()
    env = {"BUNDLE": str(link), "WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    failures, done, sent = [], threading.Event(), [0]
    with running(env, tmp_path) as service:
        url = service.url

        def load() -> None:
            with requests.Session() as session:
                while not done.is_set():
                    try:
                        r = session.post(url + "/classify", json={"text": "steady traffic"}, timeout=10)
                        if r.status_code != 200:
                            failures.append(r.status_code)
                    except requests.RequestException as exc:
                        failures.append(type(exc).__name__)
                    sent[0] += 1

        def version() -> str:
            return requests.get(url + "/v1/model", timeout=10).json()["version"]

        def until(condition, what: str) -> None:
            deadline = time.time() + 60
            while not condition():
                assert time.time() < deadline, what
                time.sleep(0.2)

        clients = [threading.Thread(target=load) for _ in range(3)]
        try:
            assert version() == "0.0.1"
            for c in clients:
                c.start()
            _publish(link, v2)
            os.kill(service.process.pid, signal.SIGHUP)
            until(lambda: version() == "0.0.2" and version() == "0.0.2", "new bundle not served")
            _publish(link, bad)
            os.kill(service.process.pid, signal.SIGHUP)
            until(lambda: "the new one is refused" in service.log_text(), "bad bundle not refused")
        finally:
            done.set()
            for c in clients:
                if c.is_alive():
                    c.join()
        assert failures == [] and sent[0] > 20
        assert {version() for _ in range(6)} == {"0.0.2"}
        assert service.process.poll() is None
    assert "fails its sha256 check" in service.log_text()


def test_no_outbound_connections(service):
    """Every socket of the master and workers is the listener or an inbound connection to it."""
    import psutil

    url, port = service.url, service.port
    for i in range(10):
        requests.post(url + "/classify", json={"text": f"tweet {i}", "entity": "Acme"}, timeout=10)
    requests.get(url + "/metrics", timeout=10)
    master = psutil.Process(service.process.pid)
    processes = [master, *master.children(recursive=True)]
    assert len(processes) >= 3
    for p in processes:
        for conn in p.net_connections(kind="inet"):
            assert conn.laddr.port == port, (p.pid, conn)
            assert conn.status == psutil.CONN_LISTEN or (conn.raddr and conn.laddr.port == port), (p.pid, conn)


def test_worker_stuck_while_booting_is_timed_out_and_replaced(tmp_path, tiny_bundle_copy):
    """A worker that hangs before its first heartbeat (here: opening its bundle's manifest, now a FIFO nobody writes
    to) is killed after TIMEOUT, instead of hanging for ever as under gunicorn's own clock; the worker booted in its
    place serves once its manifest can be read."""
    with running({"BUNDLE": str(tiny_bundle_copy), "TIMEOUT": "3", "LOG_LEVEL": "INFO"}, tmp_path) as service:
        manifest = tiny_bundle_copy / "manifest.json"
        text = manifest.read_bytes()
        manifest.unlink()
        os.mkfifo(manifest)  # the next worker blocks loading its bundle
        (worker,) = service.workers()
        worker.kill()
        deadline = time.time() + 30
        while "WORKER TIMEOUT" not in service.log_text():
            assert time.time() < deadline, service.log_text()[-2000:]
            time.sleep(0.2)
        while True:  # the manifest through the FIFO to the worker booted next, which waits to read it
            try:
                writer = os.open(manifest, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:  # no reader yet
                assert time.time() < deadline, service.log_text()[-2000:]
                time.sleep(0.1)
        assert os.write(writer, text) == len(text)  # a manifest within the pipe's buffer: whole at once
        os.close(writer)
        manifest.unlink()
        manifest.write_bytes(text)
        wait_ready(service.url, 30, service.process, 1)
        assert requests.post(service.url + "/classify", json={"text": "a tweet"}, timeout=10).status_code == 200


def test_rings_of_workers_dead_over_an_hour_are_deleted(tmp_path):
    """Each reload leaves one per-minute ring file per worker: a dead worker's is kept while it counts in the
    60-minute window of /v1/stats, and deleted after that, when a worker exits."""
    import shutil

    (tmp_path / "metrics").mkdir()
    with running({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}, tmp_path) as service:
        requests.post(service.url + "/classify", json={"text": "a tweet"}, timeout=10)
        (worker,) = service.workers()
        ring = tmp_path / "metrics" / f"gauge_all_{worker.pid}.db"
        old, recent = tmp_path / "metrics" / "gauge_all_999991.db", tmp_path / "metrics" / "gauge_all_999992.db"
        shutil.copy(ring, old)
        shutil.copy(ring, recent)
        os.utime(old, (time.time() - 2 * 3600,) * 2)
        worker.kill()
        deadline = time.time() + 30
        while old.exists():
            assert time.time() < deadline, "the hour-old ring of a dead worker was kept"
            time.sleep(0.2)
        wait_ready(service.url, 30, service.process, 1)
        assert recent.exists() and ring.exists()  # still inside the window
        assert requests.get(service.url + "/v1/stats", timeout=10).status_code == 200


@pytest.mark.parametrize(("line", "logged"), [
    ("Invalid request from ip=::1: Invalid HTTP request line: 'GET /c?text=ZQX'",
     "Invalid request from ip=::1: Invalid HTTP request line"),
    ("Ignored premature client disconnection. No more data after: b'Host: x\\r\\nX-Note: ip=ZQX tweet'",
     "Ignored premature client disconnection. No more data after"),
    ("Invalid request from ip=10.0.0.7: Invalid chunk size: b'{\"text\": \"ZQX\"}'",
     "Invalid request from ip=10.0.0.7: Invalid chunk size"),
    ("Request Line is too large (5014 > 4094)", "Request Line is too large (5014 > 4094)"),
])
def test_gunicorns_lines_about_bad_requests_keep_the_reason_not_the_bytes(line, logged):
    from app.gunicorn_worker import without_client_bytes

    assert without_client_bytes(line) == logged


def test_concurrent_requests_on_one_worker_get_the_answers_they_get_alone(tmp_path):
    """Four threads of one worker share its interpreter: requests of different lengths and batch sizes (the interpreter
    resized between them), sent from eight clients at once, each get the answer the same request gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    words = "Acme recalls phones over batteries and the shares fall again today".split()
    bodies = [{"tweets": [{"text": " ".join(words[: 2 + (i + j) % len(words)]) * (1 + i % 3), "entity": "Acme"}
                          for j in range(1 + i % 5)]} for i in range(24)]
    with running({"WORKERS": "1", "THREADS": "4"}, tmp_path) as service:
        def answer(body: dict) -> list:  # a connection of its own (a requests session is not for threads to share)
            r = requests.post(service.url + "/classify", json=body, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()["results"]

        alone = [answer(b) for b in bodies]
        assert len({json.dumps(a) for a in alone}) > 10  # the answers differ from one another
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(answer, bodies * 4))
    assert together == alone * 4


def test_sigterm_lets_a_request_in_flight_finish_and_gunicorn_exits_0(tmp_path):
    """systemd's stop: a request whose body is still arriving when gunicorn gets SIGTERM is answered in full within
    GRACEFUL_TIMEOUT, and gunicorn exits with status 0."""
    body = json.dumps({"text": "Acme recalls phones", "entity": "Acme"}).encode()
    head = f"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n" \
           "Connection: close\r\n\r\n".encode()
    service = start({"WORKERS": "1", "THREADS": "4", "READ_TIMEOUT": "10", "GRACEFUL_TIMEOUT": "10"}, tmp_path)
    try:
        wait_ready(service.url, 60, service.process, 1)
        host, port = service.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=20) as s:
            s.sendall(head + body[:10])
            time.sleep(1)  # the worker is reading the body
            service.process.send_signal(signal.SIGTERM)
            time.sleep(1)
            s.sendall(body[10:])
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 200 OK", answer
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["label"] in ("positive", "neutral", "negative")
        assert service.process.wait(timeout=20) == 0, service.log_text()
    finally:
        service.stop()
