"""A real Prometheus server (Debian's prometheus package, which .ci/run installs) scraping a real gunicorn of two
workers with a token, configured by the README's own configuration with the shipped rules: what the server stores and
records is what the clients were answered, a killed worker that had counted resets no counter, and promtool passes the
configuration, the metrics and the rules, whose unit tests it runs."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml

from bench.server import free_port, serve, wait_ready
from tests.conftest import DEFAULT_BUNDLE, ROOT

pytestmark = pytest.mark.skipif(not (shutil.which("prometheus") and shutil.which("promtool")),
                                reason="needs prometheus and promtool on PATH (apt-get install prometheus; .ci/run does)")

RULES = ROOT / "deploy" / "prometheus" / "reputation-rules.yml"
TOKEN = "a-token-for-prometheus-0123456789"
# (tweet, entity): the default bundle answers them negative, positive, not about the entity, and without one
TWEETS = [("BMW recalls 300,000 cars over faulty airbags", "BMW"), ("Loving my new Audi!", "Audi"),
          ("Made an apple pie for Sunday lunch", "Apple"), ("Barclays fined for mis-selling", "Barclays"),
          ("What a great day", None), ("Traffic jam again on the way to work", None)]


def readme_config(target: str, token_file: Path) -> str:
    """The README's Prometheus configuration, its placeholders replaced (the rules: this checkout's), its token line in
    use, scraped and its rules evaluated each second."""
    section = ROOT.joinpath("README.md").read_text(encoding="utf-8").split("## Monitoring with Prometheus", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    replaced = (block.replace("raspberrypi.local:8080", target).replace("/etc/prometheus/reputation_token", str(token_file))
                .replace("/etc/prometheus/reputation-rules.yml", str(RULES))
                .replace("scrape_interval: 15s", "scrape_interval: 1s").replace("# authorization:", "authorization:"))
    assert all(replaced.count(str(part)) == 1 for part in (target, token_file, RULES)), block
    assert "authorization:" in replaced and "global:" not in replaced, block
    return "global: {evaluation_interval: 1s}\n" + replaced


class Prometheus:
    """A Prometheus server of its own (storage under a temporary folder), queried through its HTTP API."""

    def __init__(self, config: Path, tmp: Path):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = tmp / "prometheus.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}"], stdout=out, stderr=subprocess.STDOUT)

    def query(self, promql: str) -> dict[tuple, float]:
        """An instant query's vector: each series' labels (as sorted pairs, ``__name__`` left out) and value."""
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert answer["status"] == "success", answer
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
                for r in answer["data"]["result"]}

    def until(self, promql: str, expected: dict, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while (got := self._try(promql)) != pytest.approx(expected, rel=1e-9):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"{what}: {promql} gave {got}, not {expected}"
            time.sleep(0.5)

    def _try(self, promql: str) -> dict | None:
        try:
            return self.query(promql)
        except requests.ConnectionError:  # not listening yet
            return None

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def _labels(**labels: str) -> tuple:
    return tuple(sorted(labels.items()))


def test_a_real_prometheus_stores_what_the_clients_were_answered(tmp_path):
    token_file = tmp_path / "reputation_token"
    token_file.write_text(TOKEN + "\n")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    (tmp_path / "metrics").mkdir()
    with serve(DEFAULT_BUNDLE, workers=2, log=tmp_path / "gunicorn.log", AUTH_TOKEN=TOKEN,
               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics")) as service:
        metrics = requests.get(service.url + "/metrics", headers=auth, timeout=10).text
        lint = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True)
        assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint
        config = tmp_path / "prometheus.yml"
        config.write_text(readme_config(f"127.0.0.1:{service.port}", token_file))
        check = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check
        prometheus = Prometheus(config, tmp_path)
        try:
            target = _labels(instance=f"127.0.0.1:{service.port}", job="reputation")
            prometheus.until("up", {target: 1}, "the target scraped with the token")
            answered: Counter = Counter()

            def classify(rounds: int) -> None:
                with requests.Session() as a, requests.Session() as b:  # two connections, for either worker
                    for i in range(rounds):
                        tweets = [{"text": text, **({"entity": entity} if entity else {})}
                                  for text, entity in TWEETS[: 1 + i % len(TWEETS)]]
                        r = (a if i % 2 else b).post(service.url + "/classify", json={"tweets": tweets},
                                                     headers=auth, timeout=30)
                        assert r.status_code == 200, r.text
                        answered.update((p["label"], ("related" if p["about"] else "unrelated") if "about" in p
                                         else "unknown") for p in r.json()["results"])

            classify(20)
            assert requests.post(service.url + "/classify", json={"text": "no token"}, timeout=10).status_code == 401
            predictions = "sum by (label, related) (reputation_predictions_total) > 0"
            prometheus.until(predictions, {_labels(label=lb, related=rel): n for (lb, rel), n in answered.items()},
                             "the predictions counted by label and relatedness")
            prometheus.until("sum by (code) (reputation_errors_total) > 0", {_labels(code="unauthorized"): 1},
                             "the refused request, the only error")
            assert {related for _, related in answered} == {"related", "unrelated", "unknown"}, answered
            about = Counter()  # by label, the tweets not answered unrelated
            for (label, related), n in answered.items():
                if related != "unrelated":
                    about[label] += n
            assert about["negative"] and about["positive"], answered
            prometheus.until("reputation:negative_share:30m", {target: about["negative"] / about.total()},
                             "the recorded negative share of the tweets about the entity")

            # the worker that classified most (by the service's own count), so that its counts are what must stay
            served = requests.get(service.url + "/v1/stats", headers=auth, timeout=10).json()["workers"]
            killed = max(served, key=lambda w: w["tweets_last_60m"])
            assert killed["tweets_last_60m"] > 0, served
            (victim,) = (w for w in service.workers() if w.pid == killed["pid"])
            (survivor,) = (w.pid for w in service.workers() if w.pid != victim.pid)
            victim.send_signal(signal.SIGKILL)
            deadline = time.monotonic() + 30
            while victim.pid in (pids := [w.pid for w in service.workers()]) or len(pids) < 2:
                assert time.monotonic() < deadline, "worker not replaced"
                time.sleep(0.2)
            wait_ready(service.url, 30, service.process, 2)
            classify(20)
            prometheus.until(predictions, {_labels(label=lb, related=rel): n for (lb, rel), n in answered.items()},
                             "the predictions after a worker died (its counts kept)")
            assert prometheus.query("resets(reputation_predictions_total[5m]) > 0") == {}
            assert survivor in pids
            memory = "count by (pid) (reputation_worker_resident_memory_bytes)"  # a worker's, as it serves a scrape
            prometheus.until(memory, {(("pid", str(pid)),): 1 for pid in pids}, "one memory series per live worker")
            rules = requests.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
            assert {(r["name"], r["health"], r.get("lastError", "")) for g in rules for r in g["rules"]} == {
                (name, "ok", "") for name in ("reputation:tweets_about:rate30m", "reputation:negative_share:30m",
                                              "ReputationNegativeSurge", "ReputationServiceDown",
                                              "ReputationServerErrors", "ReputationWorkerMemoryHigh")}
        finally:
            prometheus.stop()


def test_the_rules_pass_promtool_and_their_unit_tests():
    """promtool check rules, then the unit tests beside the rules (a surge, a silent night, low traffic, the service
    alerts), run by promtool test rules."""
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    rules = sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert check.returncode == 0 and f"SUCCESS: {rules} rules found" in check.stdout, check
    tests = subprocess.run(["promtool", "test", "rules", RULES.with_suffix(".test.yml").name], cwd=RULES.parent,
                           capture_output=True, text=True)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr
