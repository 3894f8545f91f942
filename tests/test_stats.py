"""GET /v1/stats and the page's headers through the application factory; the per-minute ring alone, over
simulated hours, and across processes sharing a multiprocess metrics directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from html.parser import HTMLParser

import pytest
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.multiprocess import MultiProcessCollector

from app.config import Config
from app.page import ASSETS, STATIC
from app.server import create_app
from app.stats import STARTED, RecentCounts, _quantile, service_stats
from tests.conftest import ROOT, TINY_BUNDLE

LABELS = ("positive", "neutral", "negative")
TOKEN = "stats-test-token-0123456789"
MARKER = "MARKER-b41c tweet text that must stay out of the stats"


@pytest.fixture
def client():
    return create_app(Config(bundle=TINY_BUNDLE, threads=1)).test_client()


def test_stats_count_what_was_classified(client):
    batch = client.post("/classify", json={"tweets": [{"text": "great phone", "entity": "Acme"}, {"text": "awful"},
                                                      {"text": "store opens", "entity": "Acme"}]}).get_json()
    single = client.post("/classify", json={"text": MARKER, "entity": "Acme"}).get_json()
    client.post("/classify", data=b"{bad", content_type="application/json")
    client.get("/nowhere")
    assert client.options("/classify").status_code == 200  # answered, but no classification
    response = client.get("/v1/stats")
    assert response.status_code == 200 and response.mimetype == "application/json"
    stats = response.get_json()
    expected = Counter(r["label"] for r in batch["results"]) + Counter([single["label"]])
    for window in ("last_5m", "last_60m"):
        assert stats[window]["tweets"] == {label: expected[label] for label in LABELS}
        assert stats[window]["requests"] == 2 and stats[window]["errors"] == 2
        assert 0 < stats[window]["requests_per_second"] <= 3
    assert stats["errors_since_start"] == {"invalid_json": 1, "not_found": 1}
    assert stats["latency_ms"]["requests"] == 2 and 0 < stats["latency_ms"]["p50"] <= stats["latency_ms"]["p95"]
    assert [w["pid"] for w in stats["workers"]] == [os.getpid()]
    assert stats["workers"][0]["resident_bytes"] > 10e6 and stats["workers"][0]["tweets_last_60m"] == 4
    assert "MARKER" not in response.get_data(as_text=True)
    spec = client.get("/openapi.json").get_json()
    Draft202012Validator({"components": spec["components"], "$ref": "#/components/schemas/Stats"}).validate(stats)


def test_metrics_leave_the_ring_out_and_hold_no_tweet_text(client):
    client.post("/classify", json={"text": MARKER})
    exported = client.get("/metrics").get_data(as_text=True)
    assert "reputation_recent_" not in exported and "MARKER" not in exported
    assert "reputation_start_time_seconds" in exported


def _ring_stats(ring_registry: CollectorRegistry, now: float) -> dict:
    return service_stats(ring_registry.collect(), LABELS, now)


def test_windows_over_simulated_hours():
    registry = CollectorRegistry()
    ring = RecentCounts(registry)
    t0 = 29_000_000 * 60  # a minute boundary
    Gauge(STARTED, "start", registry=registry).set(t0)
    ring.add({"positive": 2}, requests=1, now=t0)
    ring.add({"negative": 1}, requests=1, errors=1, now=t0 + 10 * 60 + 59)
    ring.add({"neutral": 4}, requests=2, now=t0 + 62 * 60)
    stats = _ring_stats(registry, t0 + 62 * 60 + 30)
    assert stats["last_5m"]["tweets"] == {"positive": 0, "neutral": 4, "negative": 0}
    assert stats["last_5m"]["seconds"] == 4 * 60 + 30 and stats["last_5m"]["requests_per_second"] == round(2 / 270, 3)
    assert stats["last_60m"]["tweets"] == {"positive": 0, "neutral": 4, "negative": 1}  # minute 0 is out
    assert stats["last_60m"]["errors"] == 1 and stats["last_60m"]["requests"] == 3
    assert stats["uptime_seconds"] == 62 * 60 + 30
    # Minute 70 reuses minute 10's slot: its counts start again from zero.
    ring.add({"positive": 1}, requests=1, now=t0 + 70 * 60)
    stats = _ring_stats(registry, t0 + 70 * 60 + 1)
    assert stats["last_60m"]["tweets"] == {"positive": 1, "neutral": 4, "negative": 0}
    assert stats["last_60m"]["errors"] == 0
    # An hour and more of silence: nothing left in either window.
    stats = _ring_stats(registry, t0 + 200 * 60)
    assert stats["last_60m"]["tweets"] == {"positive": 0, "neutral": 0, "negative": 0}
    assert stats["last_60m"]["requests"] == 0


def test_rings_of_several_processes_add_up(tmp_path):
    """Each process writes its own ring into the multiprocess directory; any reader sums them all, also after
    the writers have exited (a replaced gunicorn worker's tweets still count)."""
    code = ("import sys; from pathlib import Path; from app.metrics import Metrics\n"
            "m = Metrics(Path(sys.argv[1])); m.observe_memory()\n"
            "m.recent.add({'positive': int(sys.argv[2]), 'negative': 1}, requests=1)")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for positives in (3, 5):
        subprocess.run([sys.executable, "-c", code, str(tmp_path), str(positives)], cwd=ROOT, env=env, check=True)
    stats = service_stats(MultiProcessCollector(None, path=str(tmp_path)).collect(), LABELS, time.time())
    assert stats["last_5m"]["tweets"] == {"positive": 8, "neutral": 0, "negative": 2}
    assert stats["last_5m"]["requests"] == 2
    assert sorted(w["tweets_last_60m"] for w in stats["workers"]) == [4, 6]


def test_quantiles_from_histogram_buckets():
    inf = float("inf")
    buckets = [(0.001, 0.0), (0.005, 10.0), (0.01, 20.0), (inf, 20.0)]
    assert _quantile(0.5, buckets) == pytest.approx(0.005)
    assert _quantile(0.95, buckets) == pytest.approx(0.0095)
    assert _quantile(0.95, [(0.001, 1.0), (inf, 10.0)]) == 0.001  # beyond the last bound: that bound
    assert _quantile(0.5, [(0.001, 0.0), (inf, 0.0)]) is None


class _Inline(HTMLParser):
    """Collects what a strict CSP would block: inline scripts and styles, event-handler attributes."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self.assets: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "style" or "style" in attrs or any(name.startswith("on") for name in attrs):
            self.found.append(tag)
        if tag == "script" and not attrs.get("src"):
            self.found.append("inline script")
        self.assets += [attrs[k] for k in ("src", "href") if k in attrs]


def test_page_headers_and_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-cache"
    assert client.get("/", headers={"If-None-Match": page.headers["ETag"]}).status_code == 304
    html = page.get_data(as_text=True)
    assert 'data-auth="off"' in html
    parsed = _Inline()
    parsed.feed(html)
    assert parsed.found == []
    assert sorted(a.split("?v=")[0] for a in parsed.assets if "?v=" in a) == sorted(f"/static/{n}" for n in ASSETS)
    for url in parsed.assets:
        asset = client.get(url)
        name = url.split("?")[0].removeprefix("/static/")
        assert asset.status_code == 200 and asset.data == (STATIC / name).read_bytes()
        assert asset.headers["Cache-Control"] == "public, max-age=86400"
        assert asset.headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" in asset.headers
        assert asset.mimetype == {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}[name.split(".")[1]]
    assert sum(p.stat().st_size for p in STATIC.iterdir()) < 60_000
    for path in ("/v1/stats", "/healthz", "/nowhere"):
        assert client.get(path).headers["X-Content-Type-Options"] == "nosniff"


def test_with_a_token_the_page_is_open_and_the_stats_are_not():
    client = create_app(Config(bundle=TINY_BUNDLE, threads=1, auth_token=TOKEN)).test_client()
    page = client.get("/")
    assert page.status_code == 200 and 'data-auth="on"' in page.get_data(as_text=True)
    assert client.get("/static/page.js").status_code == 200
    for token in (None, "wrong-token-0123456789"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = client.get("/v1/stats", headers=headers)
        assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/stats", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_openapi_describes_the_page_and_the_stats(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "text/html" in paths["/"]["get"]["responses"]["200"]["content"]
    assert paths["/"]["get"]["security"] == []
    assert set(paths["/v1/stats"]["get"]["responses"]) == {"200", "401"}
