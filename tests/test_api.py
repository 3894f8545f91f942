"""The HTTP API through the application factory: every endpoint, every error case, auth, metrics."""

import codecs
import json
import re

import pytest
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families

from app.bundle import Bundle
from app.config import Config
from app.server import create_app
from bench.server import metric_value
from model_build.splits import UNSEEN_ENTITIES
from tests.conftest import (
    DEFAULT_BUNDLE,
    REPLAB,
    ROOT,
    TINY_BUNDLE,
    TINY_RELATED_BUNDLE,
    needs_replab,
    splitting_threshold,
    with_manifest,
)
from tests.conftest import post_json as post

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def client():
    return create_app(Config(bundle=TINY_BUNDLE, threads=1, max_tweets=4, max_text_chars=200,
                             max_body_bytes=4096)).test_client()


@pytest.fixture(scope="module")
def auth_client():
    return create_app(Config(bundle=TINY_BUNDLE, threads=1, auth_token=TOKEN)).test_client()


def test_single_tweet(client):
    r = post(client, {"text": "Acme recalls phones", "entity": "Acme"})
    assert r.status_code == 200
    body = r.get_json()
    assert body["label"] in ("positive", "neutral", "negative")
    assert set(body["scores"]) == {"positive", "neutral", "negative"}
    assert body["label"] == max(body["scores"], key=body["scores"].get)
    assert body["model"] == {"name": "tiny-test", "version": "0.0.1"}


def test_entity_is_optional_and_null_means_none(client):
    assert post(client, {"text": "great deal"}).status_code == 200
    assert post(client, {"text": "great deal", "entity": None}).status_code == 200


def test_batch_keeps_input_order(client):
    tweets = [{"text": t, "entity": "Acme"} for t in ("great", "Acme recalls 300000 phones", "store opens", "bad")]
    r = post(client, {"tweets": tweets})
    assert r.status_code == 200
    results = r.get_json()["results"]
    assert len(results) == 4
    singles = [post(client, t).get_json() for t in tweets]
    assert [x["label"] for x in results] == [s["label"] for s in singles]


def test_a_body_after_a_byte_order_mark_is_read(client):
    """Some clients (Windows PowerShell's UTF-8) write a BOM before the JSON; RFC 8259 lets a parser ignore it."""
    body = {"text": "great phone", "entity": "Acme"}
    r = post(client, codecs.BOM_UTF8 + json.dumps(body).encode())
    assert r.status_code == 200 and r.get_json() == post(client, body).get_json()


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b'{"text": NaN}', 400, "invalid_json"),
    (b'{"text": "a", "entity": Infinity}', 400, "invalid_json"),
    (b'{"text": "caf\xe9"}', 400, "invalid_encoding"),
    (b"[1, 2]", 400, "invalid_body"),
    (b'"text"', 400, "invalid_body"),
    (b"{}", 400, "missing_field"),
    (b'{"text": "a", "tweets": []}', 400, "invalid_body"),
    (b'{"tweets": [{"text": "a"}], "entity": "Acme"}', 400, "invalid_body"),
    (b'{"text": ""}', 400, "empty_field"),
    (b'{"text": "   "}', 400, "empty_field"),
    (b'{"text": 5}', 400, "invalid_field"),
    (b'{"text": null}', 400, "missing_field"),
    (b'{"text": "a", "entity": ""}', 400, "empty_field"),
    (b'{"text": "a", "entity": ["Acme"]}', 400, "invalid_field"),
    (b'{"tweets": "a"}', 400, "invalid_field"),
    (b'{"tweets": []}', 400, "invalid_field"),
    (b'{"tweets": ["a"]}', 400, "invalid_field"),
    (b'{"tweets": [{"entity": "Acme"}]}', 400, "missing_field"),
    (b'{"tweets": [{"text": "a", "entity": 3}]}', 400, "invalid_field"),
    (json.dumps({"text": "x" * 201}).encode(), 413, "text_too_long"),
    (json.dumps({"tweets": [{"text": "a"}] * 5}).encode(), 413, "batch_too_large"),
    (json.dumps({"text": "x" * 5000}).encode(), 413, "body_too_large"),
    (b"[" * 5000 + b"]" * 5000, 413, "body_too_large"),
    (b"[" * 2000 + b"]" * 2000, 400, None),
])
def test_client_errors(client, body, status, code):
    r = post(client, body)
    assert r.status_code == status
    error = r.get_json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code


@pytest.mark.parametrize("body, says", [
    (b"{}", "'text' (one tweet) or 'tweets' (a list) is required"),
    (b'{"text": "a", "tweets": []}', "not both"),
    (b'{"tweets": [{"text": "a"}], "entity": "Acme"}', "'entity' goes in each of 'tweets'"),
    (json.dumps({"text": "x" * 5000}).encode(), "over the limit of 4096 bytes (MAX_BODY_BYTES)"),
])
def test_client_error_messages(client, body, says):
    assert says in post(client, body).get_json()["error"]["message"]


def test_not_json_content_type(client):
    r = post(client, "text=hello", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415 and r.get_json()["error"]["code"] == "unsupported_media_type"
    assert post(client, {"text": "a"}, content_type="application/json; charset=utf-8").status_code == 200


def test_not_found_and_method_not_allowed(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = client.get("/classify")
    assert r.status_code == 405 and r.get_json()["error"]["code"] == "method_not_allowed"
    assert "POST" in r.headers["Allow"]


def test_conditional_and_range_requests_and_double_slashes_answer_in_json(client):
    """A failed If-Match (werkzeug would send the page itself with its 412), an unsatisfiable range, a path with
    '//' (werkzeug would redirect, to a URL built from the client's Host header)."""
    page = client.get("/")
    for r, status, code in ((client.get("/", headers={"If-Match": '"other"'}), 412, "precondition_failed"),
                            (client.get("/v1//model"), 404, "not_found")):
        assert (r.status_code, r.get_json()["error"]["code"]) == (status, code)
    script = page.get_data(as_text=True).split('src="')[1].split('"')[0]  # the page's versioned script URL
    r = client.get(script, headers={"Range": "bytes=99999999-"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (416, "range_not_satisfiable")
    assert client.get(script, headers={"Range": "bytes=0-9"}).status_code == 206


def test_the_page_is_served_at_its_path_only(auth_client):
    """The page is / only, with its versioned asset URLs and, with AUTH_TOKEN set, the token asked for; its raw
    template is no file under /static/ (it was /static/index.html, cached a day, unversioned, saying no token), while
    the page's own files are."""
    page = auth_client.get("/").get_data(as_text=True)
    assert 'data-auth="on"' in page and "?v=" in page
    for path in ("/static/index.html", "/static/page.html", "/static/../page.html"):
        assert auth_client.get(path).status_code == 404, path
    assets = [part.split('"')[0] for part in page.split('"/static/')[1:]]
    assert len(assets) == 3 and all(auth_client.get(f"/static/{a}").status_code == 200 for a in assets), assets


def test_health_ready_model_openapi(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["model"]["version"] == "0.0.1"
    model = client.get("/v1/model").get_json()
    assert model["labels"] == ["positive", "neutral", "negative"] and model["input_format"] == "entity+text"
    assert model["runtime"].startswith("ai-edge-litert") and model["model_bytes"] > 0
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.") and "/classify" in spec["paths"]


@pytest.mark.parametrize("bundle", [TINY_BUNDLE, TINY_RELATED_BUNDLE, DEFAULT_BUNDLE], ids=lambda p: p.name)
def test_the_model_card_is_what_the_openapi_document_says(bundle):
    """Every field /v1/model returns is one the served document describes, and valid as it says."""
    client = create_app(Config(bundle=bundle, threads=1)).test_client()
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    model = client.get("/v1/model").get_json()
    assert set(model) <= set(schemas["ModelSummary"]["properties"]), set(model) - set(schemas["ModelSummary"]["properties"])
    Draft202012Validator({**schemas["ModelSummary"], "$defs": schemas}).validate(model)


def test_metrics_move_after_requests(client):
    before = client.get("/metrics").get_data(as_text=True)
    post(client, {"tweets": [{"text": "great", "entity": "Acme"}, {"text": "bad news", "entity": "Acme"}]})
    post(client, b"{bad")
    after = client.get("/metrics").get_data(as_text=True)
    assert metric_value(after, "reputation_batch_size_count") == metric_value(before, "reputation_batch_size_count") + 1
    assert metric_value(after, "reputation_tweet_tokens_count") == metric_value(before, "reputation_tweet_tokens_count") + 2
    assert metric_value(after, "reputation_errors_total", code="invalid_json") == \
        metric_value(before, "reputation_errors_total", code="invalid_json") + 1
    assert metric_value(after, "reputation_inference_duration_seconds_count") >= 1
    for name in ("reputation_predictions_total", "reputation_worker_resident_memory_bytes",
                 "reputation_model_info", "reputation_model_file_bytes",
                 'reputation_http_request_duration_seconds_count{endpoint="/classify",method="POST",status="200"}'):
        assert name in after
    assert "great" not in after and "bad news" not in after


def test_a_method_a_route_does_not_take_or_a_websocket_is_counted_under_that_route():
    client = create_app(Config(bundle=TINY_BUNDLE, threads=1)).test_client()
    assert [client.open(path, method=method).status_code for method, path in
            [("DELETE", "/classify"), ("BREW", "/healthz"), ("PUT", "/nowhere")]] == [405, 405, 404]
    websocket = {"Upgrade": "websocket", "Connection": "Upgrade"}  # a WebSocket to a route that is plain HTTP
    assert [client.open(path, method=method, headers=websocket).status_code for method, path in
            [("POST", "/classify"), ("GET", "/classify")]] == [400, 405]
    text = client.get("/metrics").get_data(as_text=True)
    for endpoint, method, status in [("/classify", "DELETE", "405"), ("/healthz", "other", "405"),
                                     ("unmatched", "PUT", "404"), ("/classify", "POST", "400"),
                                     ("/classify", "GET", "405")]:
        assert metric_value(text, "reputation_http_request_duration_seconds_count", endpoint=endpoint, method=method,
                            status=status) == 1


def _counter_series(client, family: str, *labels: str) -> dict[tuple, float]:
    families = text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
    return {tuple(s.labels[n] for n in labels): s.value for f in families if f.name == family for s in f.samples}


@pytest.mark.parametrize("bundle, input_format, related", [
    (TINY_RELATED_BUNDLE, None, ("related", "unrelated", "unknown")),  # a pair model: a tweet without an entity
    (TINY_RELATED_BUNDLE, "text", ("related", "unrelated")),
    (TINY_BUNDLE, None, ("unknown",)),  # no relatedness head
])
def test_every_counter_series_is_there_at_zero_from_the_start(tmp_path, bundle, input_format, related):
    """A first prediction, error or correction is one that rate() and alerts see: each series the bundle, the API and
    FEEDBACK_FILE allow is exported at 0 before any request, and no other (nor *_created ones, which the
    multiprocess mode lacks)."""
    if input_format:
        bundle = with_manifest(bundle, tmp_path / "bundle", input_format=input_format)
    labels = ("positive", "neutral", "negative")
    client = create_app(Config(bundle=bundle, threads=1, feedback_file=tmp_path / "feedback.jsonl")).test_client()
    predictions = _counter_series(client, "reputation_predictions", "label", "related")
    assert predictions == {(label, r): 0 for label in labels for r in related}
    errors = _counter_series(client, "reputation_errors", "code")
    assert {"invalid_json", "empty_field", "unauthorized", "not_found", "internal", "feedback_full"} <= set(
        code for (code,) in errors) and set(errors.values()) == {0}
    assert "headers_too_large" not in {code for (code,) in errors}  # gunicorn answers it, the application never counts it
    assert _counter_series(client, "reputation_feedback", "outcome", "label") == {
        (outcome, label): 0 for outcome in ("stored", "full", "failed") for label in (*labels, "none")}
    assert "_created" not in client.get("/metrics").get_data(as_text=True)
    off = create_app(Config(bundle=bundle, threads=1)).test_client()
    assert _counter_series(off, "reputation_feedback", "outcome", "label") == {}


def test_related_in_results_and_counted_where_the_bundle_has_that_head(client):
    related_client = create_app(Config(bundle=TINY_RELATED_BUNDLE, threads=1)).test_client()
    tweets = [{"text": "Acme recalls phones", "entity": "Acme"}, {"text": "acme of perfection", "entity": "Acme"}]
    before = related_client.get("/metrics").get_data(as_text=True)
    body = post(related_client, {"tweets": tweets}).get_json()
    assert all(0 <= r["related"] <= 1 for r in body["results"])
    assert 0 <= post(related_client, tweets[0]).get_json()["related"] <= 1
    after = related_client.get("/metrics").get_data(as_text=True)
    related = metric_value(after, "reputation_predictions_total", related="related")
    unrelated = metric_value(after, "reputation_predictions_total", related="unrelated")
    assert related + unrelated - metric_value(before, "reputation_predictions_total") == 3
    assert related_client.get("/v1/model").get_json()["outputs"] == ["polarity", "related"]
    plain = post(client, tweets[0]).get_json()
    assert not {"related", "about"} & set(plain)
    assert 'related="unknown"' in client.get("/metrics").get_data(as_text=True)


def test_about_follows_the_bundles_threshold_in_results_metrics_model_and_document(tmp_path):
    """A bundle's related_threshold decides `about` in every result and the predictions counter's related label;
    /v1/model states it and the OpenAPI document requires `about` beside `related`."""
    tweets = [{"text": text, "entity": "Acme"} for text in
              ("Acme recalls phones", "acme of perfection", "Acme shares up 5%", "lunch at acme cafe", "I love Acme")]
    plain = create_app(Config(bundle=TINY_RELATED_BUNDLE, threads=1)).test_client()
    related = [r["related"] for r in post(plain, {"tweets": tweets}).get_json()["results"]]
    threshold = splitting_threshold(related)
    client = create_app(Config(bundle=with_manifest(TINY_RELATED_BUNDLE, tmp_path / "bundle", related_threshold=threshold),
                                threads=1)).test_client()
    results = post(client, {"tweets": tweets}).get_json()["results"]
    assert [r["related"] for r in results] == related
    assert [r["about"] for r in results] == [p >= threshold for p in related] and {r["about"] for r in results} == {
        True, False}
    assert post(client, tweets[0]).get_json()["about"] is results[0]["about"]
    text = client.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "reputation_predictions_total", related="related") == sum(p >= threshold for p in related) + \
        results[0]["about"]
    assert client.get("/v1/model").get_json()["related_threshold"] == threshold
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert all(schemas[name]["dependentRequired"] == {"related": ["about"], "about": ["related"]}
               for name in ("Result", "SingleResult"))


def test_a_pair_model_says_nothing_of_relatedness_for_a_tweet_without_an_entity():
    """Trained on (entity, tweet) pairs, its relatedness head has no entity to judge against: no related, no about,
    counted as unknown; the polarity is given as for any tweet. The document does not require them of a pair model."""
    client = create_app(Config(bundle=TINY_RELATED_BUNDLE, threads=1)).test_client()
    results = post(client, {"tweets": [{"text": "Acme recalls phones", "entity": "Acme"},
                                       {"text": "Acme recalls phones"}]}).get_json()["results"]
    assert {"related", "about"} <= set(results[0]) and not {"related", "about"} & set(results[1])
    assert results[1]["label"] in ("positive", "neutral", "negative")
    assert not {"related", "about"} & set(post(client, {"text": "Acme recalls phones", "entity": None}).get_json())
    assert not {"related", "about"} & set(post(client, {"text": "Acme recalls phones", "entity": "\u200b"}).get_json())
    text = client.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "reputation_predictions_total", related="unknown") == 3
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert all("about" not in schemas[name]["required"] and "about" in schemas[name]["properties"]
               for name in ("Result", "SingleResult"))


@pytest.mark.parametrize("unread", ["\u0301", "\u0301\u0300 \u20d0", "\ufffd", "&#0;"])
def test_an_entity_the_model_reads_no_token_of_is_none(unread):
    """A name of only characters the tokenizer's normaliser drops (combining accents without a letter, which a lower
    case bundle strips; U+FFFD) reaches the model as no name at all, as a zero-width one does: the relatedness head has
    nothing to judge against, so no related or about, counted as unknown; the polarity is the same as with no name."""
    client = create_app(Config(bundle=TINY_RELATED_BUNDLE, threads=1)).test_client()
    tweet = "Acme recalls phones"
    named = post(client, {"text": tweet, "entity": unread}).get_json()
    assert not {"related", "about"} & set(named)
    assert named["scores"] == post(client, {"text": tweet}).get_json()["scores"]
    assert {"related", "about"} <= set(post(client, {"text": tweet, "entity": f"{unread}Acme"}).get_json())
    text = client.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "reputation_predictions_total", related="unknown") == 2


def test_label_offsets_decide_labels_in_results_metrics_and_model(tmp_path):
    """A bundle's label_offsets (a large one on negative here) decide every result's label and scores and the
    predictions counter's label; /v1/model states them."""
    tweets = [{"text": text, "entity": "Acme"} for text in ("Acme recalls phones", "I love Acme", "Acme shares up 5%")]
    plain = create_app(Config(bundle=TINY_RELATED_BUNDLE, threads=1)).test_client()
    assert any(r["label"] != "negative" for r in post(plain, {"tweets": tweets}).get_json()["results"])
    bundle = with_manifest(TINY_RELATED_BUNDLE, tmp_path / "bundle", label_offsets={"negative": 30.0})
    client = create_app(Config(bundle=bundle, threads=1)).test_client()
    results = post(client, {"tweets": tweets}).get_json()["results"]
    assert all(r["label"] == "negative" and r["scores"]["negative"] > 0.99 for r in results)
    assert metric_value(client.get("/metrics").get_data(as_text=True), "reputation_predictions_total",
                        label="negative") == len(tweets)
    assert client.get("/v1/model").get_json()["label_offsets"] == {"negative": 30.0}


def test_an_entity_named_by_an_alias_is_answered_as_the_name_it_stands_for(tmp_path):
    """A bundle's entity_aliases: /classify answers a tweet about an entity named by one (any case) exactly as with
    the name it maps to; /v1/model lists them, as the OpenAPI document's ModelSummary describes."""
    aliases = {"The Acme Corporation": "Acme"}
    client = create_app(Config(bundle=with_manifest(TINY_RELATED_BUNDLE, tmp_path / "bundle", entity_aliases=aliases),
                               threads=1)).test_client()
    texts = ("Acme recalls phones", "I love Acme", "Acme shares up 5%")
    answers = {name: post(client, {"tweets": [{"text": text, "entity": name} for text in texts]}).get_json()["results"]
               for name in ("Acme", "the ACME corporation", "Acme Corporation")}
    assert answers["the ACME corporation"] == answers["Acme"] != answers["Acme Corporation"]
    model = client.get("/v1/model").get_json()
    assert model["entity_aliases"] == aliases
    summary = client.get("/openapi.json").get_json()["components"]["schemas"]["ModelSummary"]
    Draft202012Validator(summary).validate(model)
    assert "entity_aliases" in summary["properties"]


def test_auth_required_except_health(auth_client):
    body = json.dumps({"text": "great"})
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
        r = auth_client.post("/classify", data=body, content_type="application/json", headers=headers)
        assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert auth_client.get("/v1/model").status_code == 401
    assert auth_client.get("/metrics").status_code == 401
    ok = auth_client.post("/classify", data=body, content_type="application/json",
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert auth_client.get(path).status_code == 200


def test_an_open_path_under_a_method_it_does_not_take_is_answered_as_without_a_token(auth_client):
    """/healthz, /readyz, /openapi.json, the page and /static/ stay open with AUTH_TOKEN set: under a method they do
    not take (405) or asked as a WebSocket (400) they answer as they do without one, not with a 401 that asks for a
    token they never need; a path that needs the token still asks for it first, whatever the method."""
    page = auth_client.get("/").get_data(as_text=True)
    script = page.split('src="')[1].split('"')[0]
    for path in ("/healthz", "/readyz", "/openapi.json", "/", script):
        r = auth_client.post(path)
        assert (r.status_code, r.get_json()["error"]["code"]) == (405, "method_not_allowed"), path
        assert "WWW-Authenticate" not in r.headers and "GET" in r.headers["Allow"]
    websocket = {"Upgrade": "websocket", "Connection": "Upgrade"}
    assert auth_client.get("/healthz", headers=websocket).get_json()["error"]["code"] == "bad_request"
    for method, path in (("GET", "/classify"), ("POST", "/v1/model"), ("PUT", "/metrics"), ("GET", "/nowhere")):
        assert auth_client.open(path, method=method).status_code == 401, (method, path)


def test_no_tweet_text_in_logs(caplog):
    import logging

    marker = "MARKER-7f3a9c tweet text that must never be logged"
    caplog.set_level(logging.DEBUG)
    client = create_app(Config(bundle=TINY_BUNDLE, threads=1)).test_client()
    post(client, {"text": marker, "entity": "MARKER-entity-51d2"})
    post(client, {"tweets": [{"text": marker}]})
    post(client, b'{"text": "MARKER-7f3a9c', content_type="application/json")
    assert caplog.records, "expected the service's own log records"
    assert all("MARKER" not in r.getMessage() for r in caplog.records)


def test_very_long_entity_is_classified(client):
    r = post(client, {"text": "great", "entity": "0" * 190})
    assert r.status_code == 200


def test_openapi_states_this_service_limits_and_labels(client, tmp_path):
    """maxItems, maxLength and the label enum come from the running configuration and bundle; so does whether every
    result has related and about (a bundle with that head reading the tweet alone) or only those with an entity."""
    doc = client.get("/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    assert schemas["Batch"]["properties"]["tweets"]["maxItems"] == 4
    assert {f["maxLength"] for f in schemas["Tweet"]["properties"].values()} == {200}
    assert schemas["Result"]["properties"]["label"]["enum"] == ["positive", "neutral", "negative"]
    assert not {"related", "about"} & set(schemas["Result"]["properties"])
    related = create_app(Config(bundle=TINY_RELATED_BUNDLE, threads=1, max_tweets=7)).test_client()
    schemas = related.get("/openapi.json").get_json()["components"]["schemas"]
    assert schemas["Batch"]["properties"]["tweets"]["maxItems"] == 7
    assert "related" not in schemas["SingleResult"]["required"] and "related" in schemas["Result"]["properties"]
    alone = create_app(Config(bundle=with_manifest(TINY_RELATED_BUNDLE, tmp_path / "text", input_format="text"),
                              threads=1)).test_client()
    schemas = alone.get("/openapi.json").get_json()["components"]["schemas"]
    assert all({"related", "about"} <= set(schemas[name]["required"]) for name in ("Result", "SingleResult"))
    assert {"related", "about"} <= set(post(alone, {"text": "Acme recalls phones"}).get_json())


@pytest.mark.parametrize("blank", ["\u0085", "\x1c\x1f", "\u3000 \u2028", "\t\r\n"])
def test_whitespace_of_every_kind_is_blank(client, blank):
    """What the schema's pattern calls blank is what the server rejects, for text and entity alike."""
    assert post(client, {"text": blank}).get_json()["error"]["code"] == "empty_field"
    assert post(client, {"text": "a", "entity": blank}).get_json()["error"]["code"] == "empty_field"
    assert post(client, {"text": f"{blank}x{blank}"}).status_code == 200


@pytest.mark.parametrize("invisible", ["\u200b", "\u200d\ufeff \u202e", "\x00\x7f", "&#8203;"])
def test_a_text_of_only_invisible_characters_is_empty(client, invisible):
    """Characters preprocessing drops (zero-width, bidi, control; an HTML entity of one) leave nothing to classify:
    refused as empty, named by its place in a batch; as an entity, the tweet has none (no relatedness)."""
    error = post(client, {"text": invisible}).get_json()["error"]
    assert error["code"] == "empty_field" and error["message"].startswith("'text' must not be empty")
    r = post(client, {"tweets": [{"text": "fine"}, {"text": f" {invisible} "}]})
    assert r.status_code == 400 and r.get_json()["error"]["message"].startswith("'tweets[1].text' must not be empty")
    assert post(client, {"text": f"{invisible}ok"}).status_code == 200


@pytest.mark.parametrize("unread", ["\ufffd", "\ufffd \ufffd", "&#0;", "&#xfffd;"])
def test_a_text_or_entity_of_only_replacement_characters_is_read_as_nothing(unread):
    """U+FFFD (what bytes that are not UTF-8 become; an HTML entity of NUL reads as one) is dropped by the
    tokenizer's normaliser, as NUL is: a text of only such characters is empty, not classified as an empty tweet, and
    an entity of only them is none (no relatedness judged against a name the model never read)."""
    client = create_app(Config(bundle=TINY_RELATED_BUNDLE, threads=1)).test_client()
    error = post(client, {"text": unread}).get_json()["error"]
    assert error["code"] == "empty_field" and error["message"].startswith("'text' must not be empty")
    assert post(client, {"text": f"{unread}ok"}).status_code == 200
    named = post(client, {"text": "Acme recalls phones", "entity": unread}).get_json()
    assert named["label"] in ("positive", "neutral", "negative") and not {"related", "about"} & set(named)


def test_default_bundle_serves_relatedness_and_its_figures():
    """The default bundle (1.1.0 or later) has both heads: `related` on every result (high for a tweet about the
    entity, low for one that never names it; how well it reads an ambiguous name is what its figures measure),
    and /v1/model shows the validation, relatedness and unseen-entity figures, each with n, accuracy, macro-F1
    and per-class figures."""
    client = create_app(Config(bundle=DEFAULT_BUNDLE, threads=1)).test_client()
    body = post(client, {"tweets": [{"text": "Apple's new iPhone sells out in hours", "entity": "Apple"},
                                    {"text": "The weather is lovely in Lisbon today", "entity": "Apple"}]}).get_json()
    about, other = body["results"]
    assert about["related"] > 0.5 > other["related"] and about["label"] in ("positive", "neutral", "negative")
    model = client.get("/v1/model").get_json()
    assert model["outputs"] == ["polarity", "related"]
    metrics = model["metrics"]
    for figures, classes in ((metrics["validation"], {"positive", "neutral", "negative"}),
                             (metrics["relatedness"], {"unrelated", "related"}),
                             (metrics["unseen_entities"], {"positive", "neutral", "negative"}),
                             (metrics["unseen_entities"]["relatedness"], {"unrelated", "related"})):
        assert figures["n"] > 1000 and 0 < figures["macro_f1"] < 1 and 0 < figures["accuracy"] < 1
        assert set(figures["per_class"]) == classes
    assert len(metrics["unseen_entities"]["entities"]) == len(UNSEEN_ENTITIES)
    assert "time gap" in metrics["validation"]["model"]


def test_the_default_bundle_reads_its_brands_full_names_as_their_queries():
    """The default bundle (1.5.0 or later) maps RepLab's full names that read otherwise than their queries to them: a
    tweet about BMW named Bayerische Motoren Werke AG, in any case, is answered as with BMW, which the model itself
    reads apart (the same tweet with a name that is not an alias)."""
    client = create_app(Config(bundle=DEFAULT_BUNDLE, threads=1)).test_client()
    aliases = client.get("/v1/model").get_json()["entity_aliases"]
    assert aliases["Bayerische Motoren Werke AG"] == "BMW"
    tweets = ["Stuck on the M25 again, my new 3 series broke down twice this month", "Loving the new i4, so quiet"]
    answers = {name: post(client, {"tweets": [{"text": t, "entity": name} for t in tweets]}).get_json()["results"]
               for name in ("BMW", "bayerische motoren werke ag", "Bayerische Motoren Werke")}
    assert answers["bayerische motoren werke ag"] == answers["BMW"] != answers["Bayerische Motoren Werke"]


@needs_replab
def test_the_default_bundles_aliases_are_those_its_training_tweets_give():
    """Every full name of a RepLab entity that reads otherwise than its query (33 of the 61), as `package` writes them
    for the tweets the default bundle trained on (every English one)."""
    from model_build.data import load_replab
    from model_build.package import trained_names

    bundle = Bundle.load(DEFAULT_BUNDLE)
    assert dict(bundle.entity_aliases) == trained_names(load_replab(REPLAB)[0], bundle.text_settings)


def test_an_integer_over_pythons_digit_limit_is_invalid_json_not_a_500():
    from app.validation import ApiError, parse_json_body

    with pytest.raises(ApiError) as caught:
        parse_json_body(b'{"text": "a", "n": ' + b"1" * 4301 + b"}", "application/json")
    assert (caught.value.status, caught.value.code) == (400, "invalid_json")


def test_a_metrics_directory_that_prometheus_client_does_not_write_to_is_refused(tmp_path, monkeypatch):
    """prometheus-client's multiprocess mode follows PROMETHEUS_MULTIPROC_DIR: a config naming another directory would
    serve empty metrics, so the factory refuses it in one line."""
    from app.errors import AppError

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(AppError, match=r"metrics directory .* is not PROMETHEUS_MULTIPROC_DIR \(unset\)"):
        create_app(Config(bundle=TINY_BUNDLE, threads=1, metrics_dir=tmp_path))


def _readme_examples() -> list[tuple[dict, str]]:
    """The README's "Try it" curl examples: each request body (``-d '...'``) and the answer line written under it."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Try it", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"curl -s localhost:8080/classify .*?-d '(.*?)'\n# (\{[^\n]*)", section, re.S)
    return [(json.loads(body), answer[:answer.rindex("}") + 1]) for body, answer in found]  # less a comment after it


def test_the_readmes_curl_examples_answer_as_written():
    """Every "key":value the README shows under a curl example is in the default bundle's answer to that request (an
    answer written out whole is the answer): the README's first answer was 1.4.0's after 1.5.0 had shipped."""
    examples = _readme_examples()
    assert len(examples) == 3
    client = create_app(Config(bundle=DEFAULT_BUNDLE, threads=1)).test_client()
    for body, written in examples:
        answer = post(client, body).get_json()
        served = json.dumps(answer, separators=(",", ":"), ensure_ascii=False)
        if "..." not in written:
            assert json.loads(written) == answer, body
        pairs = re.findall(r'"\w+":(?:"[^"]*"|[-\d.e]+\b|true|false|null)', written)
        assert pairs and [p for p in pairs if p not in served] == [], (body, served)
