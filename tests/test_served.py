"""A real gunicorn process (the edge-only virtual environment under `make test`): API, multiprocess
metrics across workers, worker crashes, slow clients, and refusals at start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import EDGE_PYTHON, ROOT, TINY_BUNDLE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env_extra: dict, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "BUNDLE": str(TINY_BUNDLE), "TFLITE_THREADS": "1"}, **env_extra)
    log = open(tmp_path / f"gunicorn-{port}.log", "wb")
    proc = subprocess.Popen([EDGE_PYTHON, "-m", "gunicorn", "-c", "app/gunicorn_conf.py"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "gunicorn exited during start"
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError("service not ready in time")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    (tmp / "metrics").mkdir()
    (tmp / "metrics" / "stale.db").write_bytes(b"stale")
    proc, url = start({"WORKERS": "2", "THREADS": "4", "READ_TIMEOUT": "2",
                       "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")}, tmp)
    try:
        wait_ready(proc, url)
        yield proc, url, tmp
    finally:
        stop(proc)


def metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def test_multiprocess_dir_was_wiped(service):
    _, _, tmp = service
    assert not (tmp / "metrics" / "stale.db").exists()


def test_classify_over_http(service):
    _, url, _ = service
    r = requests.post(url + "/classify", json={"text": "Acme recalls phones", "entity": "Acme"}, timeout=10)
    assert r.status_code == 200 and r.json()["label"] in ("positive", "neutral", "negative")
    r = requests.post(url + "/classify", json={"tweets": [{"text": "a"}, {"text": "b"}]}, timeout=10)
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    r = requests.post(url + "/classify", data=b"{oops", headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_metrics_count_every_worker(service):
    _, url, _ = service
    before = metric_sum(requests.get(url + "/metrics", timeout=10).text, "reputation_batch_size_count")
    with requests.Session() as a, requests.Session() as b:  # two connections: gunicorn spreads them
        for i in range(20):
            (a if i % 2 else b).post(url + "/classify", json={"text": f"tweet {i}"}, timeout=10)
    text = requests.get(url + "/metrics", timeout=10).text
    assert metric_sum(text, "reputation_batch_size_count") == before + 20
    assert 'reputation_model_info{name="tiny-test"' in text


def test_killed_worker_is_replaced_and_metrics_keep_counting(service):
    proc, url, _ = service
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 2
    before = metric_sum(requests.get(url + "/metrics", timeout=10).text, "reputation_batch_size_count")
    os.kill(int(children[0]), signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline:
        now = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if len(now) == 2 and children[0] not in now:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("worker not replaced")
    ok = sum(requests.post(url + "/classify", json={"text": "after the crash"}, timeout=30).status_code == 200
             for _ in range(10))
    assert ok == 10
    after = metric_sum(requests.get(url + "/metrics", timeout=10).text, "reputation_batch_size_count")
    assert after >= before + 10  # the dead worker's counts stay; the new worker's are added


def test_slow_clients_do_not_starve_fast_requests(service):
    """Twice as many stalled requests (half a body, half the headers) as the 2 x 4 worker threads."""
    _, url, _ = service
    host, port = url.removeprefix("http://").split(":")
    slow = []
    try:
        for i in range(16):
            s = socket.create_connection((host, int(port)))
            s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + (b"Content-Length: 100\r\n\r\n{" if i % 2 else b"X-Slow: 1"))
            slow.append(s)
        time.sleep(0.5)
        # A stalled client holds a thread only for a few READ_TIMEOUT periods (2 s here), so requests
        # behind them wait seconds; without the timeout they would wait for as long as the clients like.
        for _ in range(5):
            r = requests.post(url + "/classify", json={"text": "still served"}, timeout=30)
            assert r.status_code == 200
        for s in slow:  # each stalled client was cut off: a 408 answer or a closed connection
            s.settimeout(90)  # measured: all 16 cut off within about 35 s (READ_TIMEOUT 2 s)
            answer = s.recv(4096)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:80]
    finally:
        for s in slow:
            s.close()


def _start_fails(tmp_path, env_extra, fragment):
    proc, _ = start(env_extra, tmp_path)
    try:
        proc.wait(timeout=60)
    finally:
        stop(proc)
    log = next(tmp_path.glob("gunicorn-*.log")).read_text()
    assert proc.returncode != 0
    assert fragment in log, log


def test_missing_bundle_is_refused_at_start(tmp_path):
    _start_fails(tmp_path, {"BUNDLE": str(tmp_path / "nowhere")}, "not a directory")


def test_tampered_bundle_is_refused_at_start(tmp_path, tiny_bundle_copy):
    model = tiny_bundle_copy / "model.tflite"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    _start_fails(tmp_path, {"BUNDLE": str(tiny_bundle_copy)}, "fails its sha256 check")


def test_missing_metrics_dir_is_refused_at_start(tmp_path):
    _start_fails(tmp_path, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "absent")}, "does not exist")


def test_bad_setting_is_refused_at_start(tmp_path):
    _start_fails(tmp_path, {"WORKERS": "many"}, "WORKERS must be an integer")


def test_edge_side_imports_no_heavy_framework():
    code = ("import sys, app.server, app.wsgi, app.offline, app.__main__; "
            "bad = [m for m in ('tensorflow', 'torch', 'transformers') if m in sys.modules]; print(json.dumps(bad))")
    out = subprocess.run([EDGE_PYTHON, "-c", "import json; " + code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def _publish(link: Path, target: Path) -> None:
    """Point the bundle symlink at ``target`` atomically, as a deployment would."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)


def test_bundle_swap_by_symlink_and_sighup(tmp_path):
    import shutil
    import threading

    v1, v2, bad = tmp_path / "v1", tmp_path / "v2", tmp_path / "bad"
    for path, version in ((v1, "0.0.1"), (v2, "0.0.2"), (bad, "0.0.3")):
        shutil.copytree(TINY_BUNDLE, path)
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["version"] = version
        (path / "manifest.json").write_text(json.dumps(manifest))
    model = bad / "model.tflite"
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    link = tmp_path / "current"
    _publish(link, v1)
    (tmp_path / "metrics").mkdir()
    proc, url = start({"BUNDLE": str(link), "WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")},
                      tmp_path)
    failures, done, sent = [], threading.Event(), [0]

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

    try:
        wait_ready(proc, url)
        assert version() == "0.0.1"
        clients = [threading.Thread(target=load) for _ in range(3)]
        for c in clients:
            c.start()
        _publish(link, v2)
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.time() + 60
        while version() != "0.0.2" or requests.get(url + "/v1/model", timeout=10).json()["version"] != "0.0.2":
            assert time.time() < deadline, "new bundle not served"
            time.sleep(0.3)
        _publish(link, bad)
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(5)
        done.set()
        for c in clients:
            c.join()
        assert failures == [] and sent[0] > 20
        assert {version() for _ in range(6)} == {"0.0.2"}
        assert proc.poll() is None
    finally:
        done.set()
        stop(proc)
    log = next(tmp_path.glob("gunicorn-*.log")).read_text()
    assert "the new one is refused" in log and "fails its sha256 check" in log


def test_no_outbound_connections(service):
    """Every socket of the master and workers is the listener or an inbound connection to it."""
    import psutil

    proc, url, _ = service
    port = int(url.rsplit(":", 1)[1])
    for i in range(10):
        requests.post(url + "/classify", json={"text": f"tweet {i}", "entity": "Acme"}, timeout=10)
    requests.get(url + "/metrics", timeout=10)
    master = psutil.Process(proc.pid)
    processes = [master, *master.children(recursive=True)]
    assert len(processes) >= 3
    for p in processes:
        for conn in p.net_connections(kind="inet"):
            assert conn.laddr.port == port, (p.pid, conn)
            assert conn.status == psutil.CONN_LISTEN or (conn.raddr and conn.laddr.port == port), (p.pid, conn)
