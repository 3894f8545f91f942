"""The HTTP layer: a Flask application factory over a Classifier. Thin by design."""

from __future__ import annotations

import hmac
import logging
import time
from collections import Counter
from typing import Any

from flask import Flask, Response, g, jsonify, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import ClientDisconnected, HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.routing import Rule, WebsocketMismatch

from .api_schema import ApiSchema
from .bundle import Bundle
from .classifier import Classifier
from .config import Config
from .feedback import FeedbackLog
from .headers import SECURITY_HEADERS
from .metrics import ROUTE_KEY, Metrics, Relatedness, method_label
from .page import ASSET_MAX_AGE, Page
from .stats import service_stats
from .validation import ApiError, ErrorCode, parse_json_body

log = logging.getLogger(__name__)
OPEN_ENDPOINTS = frozenset({"healthz", "readyz", "openapi", "index", "static"})  # index: the page at /
_HTTP_CODES = {400: ErrorCode.BAD_REQUEST, 401: ErrorCode.UNAUTHORIZED, 404: ErrorCode.NOT_FOUND,
               405: ErrorCode.METHOD_NOT_ALLOWED, 408: ErrorCode.REQUEST_TIMEOUT, 412: ErrorCode.PRECONDITION_FAILED,
               413: ErrorCode.BODY_TOO_LARGE, 415: ErrorCode.UNSUPPORTED_MEDIA_TYPE, 416: ErrorCode.RANGE_NOT_SATISFIABLE}


def create_app(config: Config, classifier: Classifier | None = None) -> Flask:
    """Load the bundle (unless a classifier is given), warm it up, and wire the routes."""
    if classifier is None:
        bundle = Bundle.load(config.bundle)
        classifier = Classifier(bundle, threads=config.threads, bucket=config.length_bucket,
                                max_batch=config.inference_batch)
    bundle = classifier.bundle
    metrics = Metrics(config.metrics_dir)
    runtime = f"{classifier.runtime.name} {classifier.runtime.version}"
    metrics.model_info.labels(bundle.name, bundle.version, bundle.quantization, runtime).set(1)
    metrics.model_bytes.labels(bundle.name, bundle.version).set(bundle.model_bytes)
    metrics.observe_memory()
    metrics.start_series(bundle.labels, Relatedness.possible(bundle.has_related, bundle.pair_input),
                         feedback=config.feedback_file is not None)
    model_ref = {"name": bundle.name, "version": bundle.version}
    model_summary = {**bundle.summary(), "runtime": runtime, "threads": config.threads}
    api = ApiSchema.build(config.max_tweets, config.max_text_chars, bundle.labels, bundle.has_related, bundle.pair_input,
                          feedback=config.feedback_file is not None)
    page = Page.build(auth=config.auth_token is not None)
    feedback_log = (FeedbackLog(config.feedback_file, config.feedback_max_bytes, model_ref, metrics.feedback)
                    if config.feedback_file else None)
    log.info("serving bundle %s %s (%s) with %s", bundle.name, bundle.version, bundle.quantization, runtime)

    def fail(status: int, code: ErrorCode, message: str) -> Response:
        metrics.errors.labels(code.value).inc()
        metrics.recent.add(errors=1)
        response = jsonify({"error": {"code": code.value, "message": message}})
        response.status_code = status
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="reputation"'
        return response

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = ASSET_MAX_AGE  # app/static/, whose URLs the page versions
    app.json.sort_keys = False
    app.url_map.merge_slashes = False  # /v1//model is a 404, not a redirect built from the client's Host header

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        # An open path stays open under a method it does not take (405) or asked as a WebSocket (400), as without a token.
        if config.auth_token and getattr(matched_rule(), "endpoint", None) not in OPEN_ENDPOINTS:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), config.auth_token.encode()):
                return fail(401, ErrorCode.UNAUTHORIZED, "a valid bearer token is required")
        return None

    def matched_rule() -> Rule | None:
        """The request's rule, a known path's under a method it does not take (405) or asked as a WebSocket (400)
        too; None for a path that is none."""
        if request.url_rule:
            return request.url_rule
        if not isinstance(request.routing_exception, (MethodNotAllowed, WebsocketMismatch)):
            return None
        adapter = app.create_url_adapter(request)
        try:  # the path as a plain HTTP request
            return adapter.match(return_rule=True, websocket=False)[0]
        except MethodNotAllowed as other:  # under a method it takes
            return adapter.match(method=other.valid_methods[0], return_rule=True, websocket=False)[0]

    def route() -> str:
        """The request's route (see matched_rule); "unmatched" for a path that is none (its own label would let
        clients grow /metrics without end)."""
        rule = matched_rule()
        return rule.rule if rule is not None else "unmatched"

    @app.after_request
    def _observe(response: Response) -> Response:
        endpoint = request.environ[ROUTE_KEY] = route()
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        if response.status_code == 412 and not response.is_json:  # a failed If-Match: werkzeug would send the file
            response.close()
            response = fail(412, ErrorCode.PRECONDITION_FAILED, "the If-Match condition does not hold")
        metrics.requests.labels(endpoint, method_label(request.method), str(response.status_code)).observe(elapsed)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return fail(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = (f"the body is over the limit of {config.max_body_bytes} bytes (MAX_BODY_BYTES)" if status == 413
                   else exc.description or exc.name)
        response = fail(status, _HTTP_CODES.get(status, ErrorCode.HTTP_ERROR), message)
        for name, value in exc.get_headers():  # such as Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _internal(exc: Exception) -> Response:
        log.error("internal error: %s", type(exc).__name__)
        return fail(500, ErrorCode.INTERNAL, "internal error")

    @app.get("/")
    def index() -> Response:
        return page.response(request)

    @app.get("/v1/stats")
    def stats() -> Response:
        metrics.observe_memory()
        return jsonify(service_stats(metrics.collect(), bundle.labels, time.time()))

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        return jsonify({"status": "ready", "model": model_ref})

    @app.get("/v1/model")
    def model() -> Response:
        return jsonify(model_summary)

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(api.document)

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        metrics.observe_memory()
        # content_type, not mimetype: werkzeug appends "; charset=utf-8" to a text/ mimetype a second time.
        return Response(metrics.export(), content_type="text/plain; version=0.0.4; charset=utf-8")

    def json_body() -> Any:
        try:
            raw = request.get_data(cache=False)
            # werkzeug ends a body without Content-Length (chunked) at MAX_BODY_BYTES without saying if more followed
            if request.content_length is None and len(raw) >= config.max_body_bytes \
                    and request.environ["wsgi.input"].read(1):
                raise RequestEntityTooLarge()
        except (OSError, ClientDisconnected):  # the client went silent mid-body (receive timeout) or left
            raise ApiError(408, ErrorCode.REQUEST_TIMEOUT, "the request body did not arrive in time") from None
        except ParseException:  # gunicorn's reader of a chunked body: a malformed chunk (its bytes not repeated)
            # where the connection's next request starts is unknown: gunicorn's request closes it, and says so
            request.environ["wsgi.input"].reader.req.must_close = True
            raise ApiError(400, ErrorCode.MALFORMED_REQUEST, "malformed chunked body") from None
        return parse_json_body(raw, request.content_type)

    @app.post("/classify")
    def classify() -> Response:
        req = api.parse_classify(json_body())
        started = time.perf_counter()
        predictions = classifier.classify(req.texts, req.entities)
        metrics.inference.observe(time.perf_counter() - started)
        metrics.batch.observe(len(predictions))
        for p in predictions:
            metrics.tokens.observe(p.tokens)
            metrics.predictions.labels(p.label, Relatedness.of(p.about).value).inc()
        metrics.recent.add(tweets=Counter(p.label for p in predictions), requests=1)
        metrics.observe_memory(max_age=1.0)
        results = [p.to_dict() for p in predictions]
        if req.batch:
            return jsonify({"results": results, "model": model_ref})
        return jsonify({**results[0], "model": model_ref})

    if feedback_log is not None:  # unset, /feedback is an unknown path (404) like any other

        @app.post("/feedback")
        def feedback() -> Response:
            feedback_log.append(api.parse_feedback(json_body()))
            response = Response(status=204)
            del response.headers["Content-Type"]  # no body, so no type (Flask's default would say text/html)
            return response

    return app
