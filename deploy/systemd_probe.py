"""The HTTP half of `make systemd-check`: checks a service started by the real systemd unit, from the host.

    python3 deploy/systemd_probe.py --url http://127.0.0.1:18190 --token-file FILE --workers 2 \
        --inside RUN/inside --latency-limit-ms 10

--inside is a command that runs its arguments inside the booted container (deploy/systemd-check.sh writes
it); the probe uses it for `systemctl reload`, the unit's process list and the metrics directory. It runs
in the host's edge virtual environment (prometheus_client reads the metrics).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import metric_value, wait_ready  # noqa: E402

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TWEET = {"text": "Terrible service at the branch today, waited two hours and nobody helped", "entity": "Santander"}
BATCH = {"tweets": [TWEET, {"text": "Absolutely love my new car, best purchase in years!", "entity": "BMW"}]}
UNIT_PROCS = "/sys/fs/cgroup/system.slice/reputation.service/cgroup.procs"
FEEDBACK_FILE = "/var/lib/reputation/feedback.jsonl"  # systemd/README.md's drop-in: the unit's state directory
READY_TIMEOUT = 180  # seconds for /readyz, at start and after each restart


class Probe:
    def __init__(self, url: str, token: str, inside: str):
        parts = urlsplit(url)
        self.url, self.host, self.port, self.token, self.inside = url, parts.hostname, parts.port or 80, token, inside
        self.failures: list[str] = []
        self.step_started = time.monotonic()

    def step(self, message: str) -> None:
        now = time.monotonic()
        print(f"systemd-check: [{now - self.step_started:.1f} s] {message}", flush=True)
        self.step_started = now

    def fail(self, message: str) -> None:
        print(f"systemd-check: FAILED {message}", flush=True)
        self.failures.append(message)

    def request(self, method: str, path: str, body: dict | None = None, token: bool = True,
                connection: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = connection or http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.token}"
        if connection is None:
            headers["Connection"] = "close"
        try:
            conn.request(method, path, None if body is None else json.dumps(body), headers)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            if connection is None:
                conn.close()

    def run_inside(self, *args: str) -> str:
        return subprocess.run([self.inside, *args], check=True, capture_output=True, text=True).stdout

    def unit_pids(self) -> set[int]:
        return {int(p) for p in self.run_inside("cat", UNIT_PROCS).split()}

    def ready(self) -> bool:
        """Whether /readyz answers 200 within READY_TIMEOUT (a failure otherwise)."""
        try:
            waited = wait_ready(self.url, READY_TIMEOUT, interval=0.25)
        except RuntimeError as exc:
            self.fail(str(exc))
            return False
        self.step(f"/readyz 200 after {waited:.1f} s")
        return True

    def metrics(self) -> tuple[dict[str, str], str]:
        status, headers, body = self.request("GET", "/metrics")
        if status != 200:
            self.fail(f"/metrics -> {status}")
        return headers, body.decode()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--token-file", required=True, type=Path)
    p.add_argument("--inside", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--latency-limit-ms", type=float, default=10.0)
    p.add_argument("--feedback-script",
                   help="a script inside the container that switches corrections on (systemd/README.md's drop-in)")
    p.add_argument("--in-place", metavar="FILE",
                   help="instead of the checks above: change this file of the served bundle (inside the container) in "
                        "place, reload, and see the service stop and restart as systemd/README.md says")
    args = p.parse_args()
    probe = Probe(args.url, args.token_file.read_text().strip(), args.inside)
    try:
        if args.in_place:
            check_in_place(probe, args.in_place)
        else:
            check(probe, args)
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:  # a refused connection, a failed command
        probe.fail(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    return 1 if probe.failures else 0


def check(probe: Probe, args: argparse.Namespace) -> None:
    """The checks in order; each failure is said and recorded, a check that cannot go on returns."""
    if not probe.ready():
        return
    status, _, body = probe.request("POST", "/classify", TWEET, token=False)
    probe.step(f"classify without the token -> {status}")
    if status != 401:
        probe.fail(f"without the token: {status} {body[:120]!r}, expected 401")
    status, _, body = probe.request("POST", "/classify", TWEET)
    label = json.loads(body).get("label") if status == 200 else None
    probe.step(f"classify with the token -> {status} {label}")
    if status != 200 or label not in ("positive", "neutral", "negative"):
        probe.fail(f"with the token: {status} {body[:200]!r}")

    # Both workers: enough parallel connections that each worker answers some; one worker's /metrics must
    # count every tweet (multiprocess mode), and the metrics directory must hold both workers' files.
    pids = probe.unit_pids()
    if len(pids) != 1 + args.workers:
        probe.fail(f"the unit has {len(pids)} processes, expected a master and {args.workers} workers")
    before = metric_value(probe.metrics()[1], "reputation_predictions_total")
    sent = 40

    def batch_requests(n: int) -> None:
        for _ in range(n):
            if probe.request("POST", "/classify", BATCH)[0] != 200:
                probe.fail("a batch request failed")

    threads = [threading.Thread(target=batch_requests, args=(sent // 4,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    headers, text = probe.metrics()
    counted = metric_value(text, "reputation_predictions_total") - before
    live = sorted({s.labels["pid"] for family in text_string_to_metric_families(text) for s in family.samples
                   if s.name == "reputation_worker_resident_memory_bytes"})
    files = probe.run_inside("ls", "/run/reputation").split()
    writers = {name.rsplit("_", 1)[1].removesuffix(".db") for name in files if name.startswith("counter_")}
    probe.step(f"/metrics: {counted:g} of {sent * len(BATCH['tweets'])} tweets counted, live workers {live}, "
               f"counter files from pids {sorted(writers)}, Content-Type {headers.get('content-type')!r}")
    if counted != sent * len(BATCH["tweets"]):
        probe.fail(f"/metrics counted {counted:g} tweets, expected {sent * len(BATCH['tweets'])}")
    if len(live) != args.workers or len(writers) < args.workers:
        probe.fail(f"/metrics: expected {args.workers} workers' series, got {live} and files {files}")
    if headers.get("content-type") != CONTENT_TYPE:
        probe.fail(f"/metrics Content-Type {headers.get('content-type')!r}, expected {CONTENT_TYPE!r}")

    # Reload under load: requests on fresh connections from two threads before, during and after
    # `systemctl reload`, until every worker has been replaced; not one may fail.
    results: list[tuple[float, int | str]] = []
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            t = time.monotonic()
            try:
                outcome: int | str = probe.request("POST", "/classify", TWEET)[0]
            except OSError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            results.append((t, outcome))

    streams = [threading.Thread(target=stream) for _ in range(2)]
    for t in streams:
        t.start()
    time.sleep(1)
    probe.run_inside("systemctl", "reload", "reputation")
    reload_started = time.monotonic()
    replaced = False
    while time.monotonic() - reload_started < 90:
        now = probe.unit_pids()
        if len(now) == 1 + args.workers and len(now & pids) == 1:
            replaced = True
            break
        time.sleep(0.2)
    time.sleep(2)  # keep the stream on the new workers a little
    stop.set()
    for t in streams:
        t.join()
    failed = [r for r in results if r[1] != 200]
    during = sum(1 for t, _ in results if t >= reload_started)
    probe.step(f"systemctl reload: workers replaced {'yes' if replaced else 'NO'} ({sorted(pids)} -> "
               f"{sorted(probe.unit_pids())}), {len(results) - len(failed)} of {len(results)} requests answered "
               f"200 ({during} after the reload began)")
    if not replaced:
        probe.fail("reload: the workers were not replaced within 90 s, or the master changed")
    if failed or not results:
        probe.fail(f"reload: {len(failed)} failed requests, first {failed[:3]}")

    # Latency: single tweets on one keep-alive connection, after a warm-up; XNNPACK makes this a few ms on
    # the 2-core build machine, without it (ProcSubset=pid hiding /proc/cpuinfo) 3-5 times more.
    conn = http.client.HTTPConnection(probe.host, probe.port, timeout=30)
    times = []
    for i in range(120):
        t = time.perf_counter()
        status = probe.request("POST", "/classify", TWEET, connection=conn)[0]
        if i >= 20:
            times.append(time.perf_counter() - t)
        if status != 200:
            probe.fail(f"latency run: {status}")
            break
    conn.close()
    if times:
        median = statistics.median(times) * 1e3
        probe.step(f"latency: median {median:.2f} ms, p90 {sorted(times)[int(len(times) * 0.9)] * 1e3:.2f} ms over "
                   f"{len(times)} single-tweet requests (limit {args.latency_limit_ms:g} ms)")
        if median > args.latency_limit_ms:
            probe.fail(f"median latency {median:.2f} ms above {args.latency_limit_ms:g} ms: is XNNPACK on?")
    if args.feedback_script:
        check_feedback(probe, args.feedback_script)


def check_feedback(probe: Probe, script: str) -> None:
    """Off by default (404); the drop-in switches it on; corrections land in the state directory, the unit
    user's, 0600, and survive a restart."""
    correction = {**TWEET, "label": "negative", "related": True}
    status = probe.request("POST", "/feedback", correction)[0]
    probe.step(f"feedback before the drop-in -> {status}")
    if status != 404:
        probe.fail(f"/feedback without FEEDBACK_FILE answered {status}, expected 404")
    probe.run_inside("sh", "-eu", script)
    for round_ in (1, 2):
        if not probe.ready():
            return
        status, _, body = probe.request("POST", "/feedback", correction)
        if status != 204:
            probe.fail(f"/feedback with the drop-in: {status} {body[:200]!r}")
            return
        if round_ == 1:
            probe.run_inside("systemctl", "restart", "reputation")
    owner, mode = probe.run_inside("stat", "-L", "-c", "%u %a", FEEDBACK_FILE).split()
    lines = [json.loads(line) for line in probe.run_inside("cat", FEEDBACK_FILE).splitlines()]
    main_pid = probe.run_inside("systemctl", "show", "-p", "MainPID", "--value", "reputation").strip()
    user = probe.run_inside("stat", "-c", "%u", f"/proc/{main_pid}")  # uids: no ps, no dynamic-user names here
    probe.step(f"feedback with the drop-in: 204 twice, a restart between; {FEEDBACK_FILE}: {len(lines)} lines, owner {owner}, "
                f"mode {mode} (the unit runs as uid {user.strip()})")
    if len(lines) != 2 or any(r.get("text") != TWEET["text"] or r.get("label") != "negative" for r in lines):
        probe.fail(f"the feedback file holds {len(lines)} lines, expected both corrections")
    if mode != "600" or owner != user.strip() or owner == "0":
        probe.fail(f"the feedback file is {owner} {mode}, expected the unit's user and 600")


def check_in_place(probe: Probe, path: str) -> None:
    """A served bundle's file changed in place, then `systemctl reload`: the reload stops the service saying why in
    one line, each restart by `Restart=on-failure` refuses the bundle in one line, and once the file is put back the
    next restart serves again; no traceback anywhere."""
    cursor = probe.run_inside("journalctl", "-u", "reputation", "-n", "0", "--show-cursor", "--no-pager")
    cursor = cursor.strip().rsplit("-- cursor: ", 1)[-1]
    kept = "/root/in-place.orig"
    probe.run_inside("cp", "-p", path, kept)
    # Eight bytes overwritten in the middle: the size stays, the sha256 check refuses it.
    probe.run_inside("sh", "-c", 'printf in-place | dd of="$1" bs=1 seek=4096 conv=notrunc status=none', "sh", path)
    probe.run_inside("systemctl", "reload", "reputation")
    probe.step(f"{path}: eight bytes changed in place, systemctl reload")

    def journal() -> list[str]:
        return probe.run_inside("journalctl", "-u", "reputation", f"--after-cursor={cursor}", "--no-pager",
                                "-o", "cat").splitlines()

    refused_at_start = "reputation service cannot start: "
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any(line.startswith(refused_at_start) for line in journal()):
        time.sleep(0.2)
    probe.run_inside("cp", "-p", kept, path)
    probe.step("a restart refused the bundle: the file put back")
    if not probe.ready():
        return
    lines = journal()
    restarts = probe.run_inside("systemctl", "show", "-p", "NRestarts", "--value", "reputation").strip()
    halted = [line for line in lines if "reload: the bundle served is refused now: " in line]
    refused = [line for line in lines if line.startswith(refused_at_start)]
    probe.step(f"served again after {restarts} restarts; the journal since the change: {len(lines)} lines, "
               f"{len(halted)} reload refusal(s), {len(refused)} start refusal(s)")
    for line in (halted + refused)[:2]:
        print(f"  | {line}", flush=True)
    if len(halted) != 1 or "fails its sha256 check" not in halted[0]:
        probe.fail(f"expected one reload refusal naming the changed file, got {halted}")
    if not refused or int(restarts) < 1:
        probe.fail(f"expected at least one restart refusing the bundle, got {refused} and {restarts} restarts")
    tracebacks = [line for line in lines if "Traceback" in line]
    if tracebacks:
        probe.fail(f"the journal since the change holds {len(tracebacks)} traceback(s)")
    status = probe.request("POST", "/classify", TWEET)[0]
    if status != 200:
        probe.fail(f"classify after the file was put back: {status}")


if __name__ == "__main__":
    sys.exit(main())
