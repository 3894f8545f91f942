"""Validation of /classify request bodies into (text, entity) pairs, with API errors for bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """A client-visible error: HTTP status, a stable code and a message (never the tweet text)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ClassifyRequest:
    texts: list[str]
    entities: list[str | None]
    batch: bool


def _reject_constant(name: str) -> Any:
    raise ApiError(400, "invalid_json", f"{name} is not valid JSON")


def parse_json_body(raw: bytes, content_type: str | None) -> Any:
    """Decode a JSON body strictly: UTF-8 only, no NaN or Infinity."""
    mimetype = (content_type or "").split(";")[0].strip().lower()
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_encoding", "the body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"malformed JSON at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "JSON nested too deeply") from None


def _string(obj: dict, key: str, where: str, max_chars: int, required: bool) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if value is None:
        raise ApiError(400, "missing_field", f"{where}'{key}' is required")
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", f"{where}'{key}' must be a string")
    if not value.strip():
        raise ApiError(400, "empty_field", f"{where}'{key}' must not be empty")
    if len(value) > max_chars:
        raise ApiError(413, "text_too_long", f"{where}'{key}' is longer than {max_chars} characters")
    return value


def parse_classify(body: Any, max_tweets: int, max_chars: int) -> ClassifyRequest:
    """A single tweet ``{"text", "entity"?}`` or a batch ``{"tweets": [...]}``."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    if ("text" in body) == ("tweets" in body):
        raise ApiError(400, "missing_field", "send either 'text' (one tweet) or 'tweets' (a list), not both")
    if "text" in body:
        text = _string(body, "text", "", max_chars, required=True)
        return ClassifyRequest([text], [_string(body, "entity", "", max_chars, required=False)], batch=False)
    tweets = body["tweets"]
    if not isinstance(tweets, list) or not tweets:
        raise ApiError(400, "invalid_field", "'tweets' must be a non-empty list of objects")
    if len(tweets) > max_tweets:
        raise ApiError(413, "batch_too_large", f"'tweets' holds {len(tweets)} items; the limit is {max_tweets}")
    texts, entities = [], []
    for i, item in enumerate(tweets):
        where = f"tweets[{i}]."
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_field", f"tweets[{i}] must be an object")
        texts.append(_string(item, "text", where, max_chars, required=True))
        entities.append(_string(item, "entity", where, max_chars, required=False))
    return ClassifyRequest(texts, entities, batch=True)
