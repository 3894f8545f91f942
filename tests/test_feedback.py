"""POST /feedback: corrections appended to FEEDBACK_FILE through the factory and through gunicorn with two workers
appending at once, validation, auth, off by default, the size limit, disk errors, privacy, and the build side
reading the file as training data."""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import schemathesis
from prometheus_client.multiprocess import MultiProcessCollector

from app.config import Config
from app.server import create_app
from bench.server import metric_value, serve
from tests.conftest import FIXTURES, TINY_BUNDLE, cli, post_json
from tests.test_fuzz_api import _run
from tests.test_served import _start_fails

TOKEN = "feedback-token-0123456789"
MARKER = "MARKER-c0ffee"
GOOD = {"text": "Acme recalls phones", "entity": "Acme", "label": "negative"}


def make_client(path: Path | None, **settings):
    config = Config(bundle=TINY_BUNDLE, threads=1, feedback_file=path,
                    **{"max_text_chars": 200, "max_body_bytes": 4096, **settings})
    return create_app(config).test_client()


post = functools.partial(post_json, path="/feedback")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]


def stored(client, **labels) -> float:
    return metric_value(client.get("/metrics").get_data(as_text=True), "reputation_feedback_total", **labels)


def test_each_correction_is_one_json_line(tmp_path):
    path = tmp_path / "feedback.jsonl"
    client = make_client(path)
    tricky = "line\nbreak \u2028 sep \x85 nel \x1c fs \U0001f600 caf\u00e9 \ud800"  # splitlines() splits on most
    assert post(client, {**GOOD, "related": False}).status_code == 204
    r = post(client, {"text": tricky, "entity": "Café Ltd", "label": "positive"})
    assert r.status_code == 204 and r.get_data() == b"" and "Content-Type" not in r.headers
    first, second = lines(path)
    assert {k: first[k] for k in ("text", "entity", "label", "related")} == {**GOOD, "related": False}
    assert first["model"] == {"name": "tiny-test", "version": "0.0.1"} and first["time"].endswith("Z")
    assert second["text"] == tricky and second["entity"] == "Café Ltd" and "related" not in second
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert stored(client, outcome="stored", label="negative") == 1 and stored(client, outcome="stored") == 2


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b'{"text": NaN, "entity": "a", "label": "positive"}', 400, "invalid_json"),
    (b'{"text": "caf\xe9", "entity": "a", "label": "positive"}', 400, "invalid_encoding"),
    (b"[1]", 400, "invalid_body"),
    ({"entity": "Acme", "label": "negative"}, 400, "missing_field"),
    ({"text": "a", "label": "negative"}, 400, "missing_field"),
    ({"text": "a", "entity": "Acme"}, 400, "missing_field"),
    ({**GOOD, "text": " \u3000 "}, 400, "empty_field"),
    ({**GOOD, "entity": ""}, 400, "empty_field"),
    ({**GOOD, "text": "\u200b\u200b"}, 400, "empty_field"),
    ({**GOOD, "entity": "\u2060"}, 400, "empty_field"),
    ({**GOOD, "entity": None}, 400, "invalid_field"),
    ({**GOOD, "text": 5}, 400, "invalid_field"),
    ({**GOOD, "label": "awful"}, 400, "invalid_field"),
    ({**GOOD, "label": "Negative"}, 400, "invalid_field"),
    ({**GOOD, "related": "yes"}, 400, "invalid_field"),
    ({"text": "a", "entity": "Acme", "related": "false"}, 400, "invalid_field"),  # its type, not the missing label
    ({"text": "a", "entity": "Acme", "related": None}, 400, "invalid_field"),
    ({**GOOD, "text": "x" * 201}, 413, "text_too_long"),
    ({**GOOD, "entity": "x" * 201}, 413, "text_too_long"),
    ({**GOOD, "text": "x" * 5000}, 413, "body_too_large"),
])
def test_bad_bodies_are_refused_and_nothing_is_stored(tmp_path, body, status, code):
    path = tmp_path / "feedback.jsonl"
    client = make_client(path)
    r = post(client, body)
    assert r.status_code == status and r.get_json()["error"]["code"] == code, r.get_json()
    assert not path.exists() or path.read_bytes() == b""
    assert stored(client) == 0


def test_a_tweet_not_about_the_entity_needs_no_label_and_training_ignores_one(tmp_path):
    """A tweet that only shares the brand's name has no polarity for it: the label may be left out with related
    false (counted as label none), not otherwise; the build side reads such a line as unrelated, a label given
    there ignored."""
    path = tmp_path / "feedback.jsonl"
    client = make_client(path)
    r = post(client, {"text": "a sword with a fine quillon", "entity": "Quillon"})
    assert r.status_code == 400 and r.get_json()["error"] == {
        "code": "missing_field", "message": "'label' is required unless 'related' is false"}
    assert post(client, {"text": "a sword with a fine quillon", "entity": "Quillon", "related": False}).status_code == 204
    assert post(client, {"text": "another sword", "entity": "Quillon", "related": False, "label": "positive"}
                ).status_code == 204
    assert [(x["label"], x["related"]) for x in lines(path)] == [(None, False), ("positive", False)]
    assert stored(client, outcome="stored", label="none") == 1
    r = post(client, {"text": "a sword", "entity": "Quillon", "label": None})  # null is no label: related false only
    assert r.status_code == 400 and r.get_json()["error"] == {
        "code": "missing_field", "message": "'label' is required unless 'related' is false"}
    replayed = {k: lines(path)[0][k] for k in ("text", "entity", "label", "related")}  # a stored line, sent again
    assert post(client, replayed).status_code == 204 and lines(path)[2]["label"] is None
    assert stored(client, outcome="stored", label="none") == 2
    from model_build.data import load_table

    examples, report = load_table(path, unrelated=True)
    assert [(e.label, e.related) for e in examples] == [(None, False)] * 2 and report.kept == 2  # the replay counts once


def test_label_error_names_the_bundle_labels(tmp_path):
    for label in ("awful", 5, ["positive"]):
        r = post(make_client(tmp_path / "f.jsonl"), {**GOOD, "label": label})
        assert r.get_json()["error"]["message"] == "'label' must be one of positive, neutral, negative", label
    r = post(make_client(tmp_path / "f.jsonl"), "label=positive", content_type="text/plain")
    assert r.status_code == 415


def test_off_without_feedback_file(tmp_path):
    client = make_client(None)
    r = post(client, GOOD)
    assert r.status_code == 404 and r.get_json() == client.post("/nowhere", json=GOOD).get_json()
    assert r.get_json()["error"]["code"] == "not_found"
    assert client.get("/feedback").status_code == 404
    assert "/feedback" not in client.get("/openapi.json").get_json()["paths"]
    assert "/feedback" in make_client(tmp_path / "on.jsonl").get("/openapi.json").get_json()["paths"]
    assert "reputation_feedback_total{" not in client.get("/metrics").get_data(as_text=True)
    assert list(tmp_path.iterdir()) == []


def test_auth_as_for_classify(tmp_path):
    path = tmp_path / "feedback.jsonl"
    client = make_client(path, auth_token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        r = post(client, GOOD, headers=headers)
        assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    assert not path.exists() or path.read_bytes() == b""
    assert post(client, GOOD, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 204
    assert len(lines(path)) == 1


def test_size_limit_refuses_and_stores_nothing(tmp_path):
    path = tmp_path / "feedback.jsonl"
    client = make_client(path, feedback_max_bytes=1024)
    statuses = [post(client, {**GOOD, "text": f"correction {i}"}).status_code for i in range(12)]
    accepted = statuses.index(507)
    assert accepted > 0 and set(statuses[:accepted]) == {204} and set(statuses[accepted:]) == {507}
    size = path.stat().st_size
    assert size <= 1024 and len(lines(path)) == accepted
    r = post(client, {**GOOD, "text": "x"})
    error = r.get_json()["error"]
    assert r.status_code == 507 and error["code"] == "feedback_full" and "FEEDBACK_MAX_BYTES" in error["message"]
    assert path.stat().st_size == size
    assert stored(client, outcome="stored") == accepted and stored(client, outcome="full") == 12 - accepted + 1
    path.unlink()  # deleting the file is how a user empties it: the next correction starts a new one
    assert post(client, GOOD).status_code == 204 and len(lines(path)) == 1


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_full_disk_is_507_and_a_storage_error_500(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    full = tmp_path / "full.jsonl"
    full.symlink_to("/dev/full")  # every write fails with ENOSPC
    client = make_client(full)
    r = post(client, {**GOOD, "text": MARKER})
    assert r.status_code == 507 and r.get_json()["error"]["code"] == "insufficient_storage"
    assert stored(client, outcome="failed", label="negative") == 1
    gone = tmp_path / "gone"
    gone.mkdir()
    client = make_client(gone / "feedback.jsonl")
    gone.rmdir()  # the directory vanished after the start
    r = post(client, {**GOOD, "text": MARKER})
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "storage_error"
    assert any("feedback: cannot write" in rec.getMessage() for rec in caplog.records)
    assert all(MARKER not in rec.getMessage() for rec in caplog.records)


def test_no_tweet_text_in_logs_or_metrics(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(tmp_path / "feedback.jsonl", feedback_max_bytes=1024)
    for _ in range(8):  # stored, then full
        post(client, {"text": f"{MARKER} a tweet", "entity": f"{MARKER}-entity", "label": "neutral", "related": True})
    post(client, {"text": f"{MARKER} a tweet", "entity": "Acme", "label": MARKER})
    assert caplog.records
    assert all(MARKER not in rec.getMessage() for rec in caplog.records)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert MARKER not in metrics and stored(client, outcome="full", label="neutral") > 0


def test_schemathesis_with_feedback_on(tmp_path):
    """The fuzz test's checks on POST /feedback with a file set: no 5xx, answers as documented, intact lines."""
    path = tmp_path / "feedback.jsonl"
    app = create_app(Config(bundle=TINY_BUNDLE, threads=1, feedback_file=path))
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    (operation,) = [r.ok() for r in schema.get_all_operations() if r.ok().label == "POST /feedback"]
    cases = _run(operation)
    records = lines(path)
    assert cases >= 100 and records
    assert all((r["label"] in ("positive", "neutral", "negative") or r["label"] is None and r["related"] is False)
               and r["text"].strip() for r in records)
    print(f"schemathesis on POST /feedback: {cases} cases, {len(records)} corrections stored")


def test_gunicorn_two_workers_append_concurrently(tmp_path):
    """Eight clients, new connections each, against two workers: every line intact, none lost or doubled."""
    path, metrics_dir = tmp_path / "feedback.jsonl", tmp_path / "metrics"
    metrics_dir.mkdir()
    texts = [f"{MARKER} {i} " + ("\u00e9" * (1500 if i % 3 == 0 else i)) for i in range(240)]  # lines of 9 KB too
    with serve(TINY_BUNDLE, workers=2, threads=4, log=tmp_path / "gunicorn.log", FEEDBACK_FILE=str(path),
               PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), LOG_LEVEL="DEBUG", ACCESS_LOG="1") as service:
        def send(text: str) -> int:
            body = {"text": text, "entity": "Acme", "label": ("positive", "neutral", "negative")[len(text) % 3]}
            query = {"text": text} if len(text) % 5 == 0 else None  # a query string is not logged either
            return requests.post(f"{service.url}/feedback", params=query, json=body, timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, texts))
        # a path or a method of the client's own, where it could put tweet text, is logged as the metrics count it
        assert requests.get(f"{service.url}/{MARKER}%0AFORGED", timeout=10).status_code == 404
        assert requests.request("ZQXMETHOD", f"{service.url}/feedback", timeout=10).status_code == 405
        metrics = requests.get(f"{service.url}/metrics", timeout=10).text
        per_worker = [_stored_in(metrics_dir / f"counter_{w.pid}.db") for w in service.workers()]
        log = service.log_text()
    assert statuses == [204] * len(texts)
    records = lines(path)
    assert sorted(r["text"] for r in records) == sorted(texts)
    assert metric_value(metrics, "reputation_feedback_total", outcome="stored") == len(texts)
    print(f"corrections stored per worker: {per_worker}")
    assert len(per_worker) == 2 and min(per_worker) > 0 and sum(per_worker) == len(texts), per_worker
    assert "POST /feedback" in log and MARKER not in log and MARKER not in metrics
    assert '"GET unmatched HTTP/1.1" 404' in log and '"other /feedback HTTP/1.1" 405' in log
    assert "FORGED" not in log and "ZQXMETHOD" not in log


def test_gunicorn_two_workers_keep_the_size_limit_together(tmp_path):
    """FEEDBACK_MAX_BYTES holds across workers (it is the file's size, not each worker's own count): eight clients
    against two workers, past the limit; the file stays under it, holds every correction answered 204 and no other.
    The file's lock is not what this shows: without it the race is too narrow to be seen here."""
    path, limit = tmp_path / "feedback.jsonl", 30_000
    texts = [f"{MARKER} {i} " + "x" * (i % 7 * 40) for i in range(400)]  # about 60 KB of corrections in all
    with serve(TINY_BUNDLE, workers=2, threads=4, log=tmp_path / "gunicorn.log", FEEDBACK_FILE=str(path),
               FEEDBACK_MAX_BYTES=str(limit)) as service:
        def send(text: str) -> int:
            return requests.post(f"{service.url}/feedback", json={"text": text, "entity": "Acme", "label": "negative"},
                                 timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, texts))
    records = lines(path)
    assert set(statuses) == {204, 507} and path.stat().st_size <= limit
    assert sorted(r["text"] for r in records) == sorted(t for t, s in zip(texts, statuses) if s == 204)
    assert path.stat().st_size > limit - 1000  # filled up to the last line that fit


def _stored_in(counter_file: Path) -> float:
    """The corrections one worker stored, from its own multiprocess counter file."""
    return sum(s.value for family in MultiProcessCollector.merge([str(counter_file)], accumulate=False)
               for s in family.samples if s.name == "reputation_feedback_total" and s.labels["outcome"] == "stored")


def test_unwritable_feedback_file_refuses_the_start(tmp_path):
    _start_fails(tmp_path, {"FEEDBACK_FILE": str(tmp_path / "absent" / "feedback.jsonl")},
                 f"FEEDBACK_FILE {tmp_path / 'absent' / 'feedback.jsonl'}: No such file or directory")


def test_build_side_trains_and_evaluates_on_the_feedback_file(tmp_path, tiny_base):
    """The fixture tweets sent as corrections, then the file given to train and evaluate as --data."""
    path = tmp_path / "feedback.jsonl"
    client = make_client(path, max_text_chars=4000)
    with open(FIXTURES / "tweets.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"]]
    for r in rows:
        body = {"text": r["text"], "entity": r["entity"], "label": r["label"]}
        assert post(client, {**body, **({"related": True} if r["related"] else {})}).status_code == 204
    metrics_file = tmp_path / "eval.json"
    out = cli("evaluate", "--bundle", str(TINY_BUNDLE), "--data", str(path), "--json", str(metrics_file))
    assert json.loads(metrics_file.read_text())["n"] == len(rows) and "macro-F1" in out
    (tmp_path / "base").symlink_to(tiny_base)
    out = cli("train", "--data", str(path), "--base", str(tmp_path / "base"), "--out", str(tmp_path / "run"),
              "--epochs", "1", "--val-fraction", "0.25", "--gap-fraction", "0", "--threads", "1")
    assert f"data: kept {len(rows)} examples" in out and "best epoch 1" in out
