"""The OpenAPI document as served: its limits and labels taken from the running configuration and bundle, and
the /classify and /feedback request schemas it states used to validate request bodies, so the document and the
checks agree."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .feedback import Correction
from .text import visible, visible_class
from .validation import ApiError, ClassifyRequest, ErrorCode

TEMPLATE = resources.files(__package__).joinpath("openapi.json")  # read from a zip too (bulk's executors)


@dataclass(frozen=True)
class ApiSchema:
    """The served document and the validators of its request bodies (one tweet, a batch, a correction)."""

    document: dict
    _tweet: Draft202012Validator
    _batch: Draft202012Validator
    _feedback: Draft202012Validator

    @classmethod
    def build(cls, max_tweets: int, max_text_chars: int, labels: tuple[str, ...], related: bool,
              pair_input: bool, feedback: bool) -> ApiSchema:
        """``related``: the bundle has the relatedness head; a pair model gives it only for tweets with an entity.
        ``feedback``: POST /feedback is served (FEEDBACK_FILE), else left out of the document."""
        document = json.loads(TEMPLATE.read_text(encoding="utf-8"))
        if not feedback:
            del document["paths"]["/feedback"]
        schemas = document["components"]["schemas"]
        for field in schemas["Tweet"]["properties"].values():
            field["maxLength"] = max_text_chars
        schemas["Tweet"]["properties"]["text"]["pattern"] = f"[{visible_class()}]"
        schemas["Batch"]["properties"]["tweets"]["maxItems"] = max_tweets
        for name in ("Result", "SingleResult"):
            schemas[name]["properties"]["label"]["enum"] = list(labels)
            for field in ("related", "about"):
                if related and not pair_input:
                    schemas[name]["required"].append(field)
                elif not related:
                    del schemas[name]["properties"][field]
                    schemas[name]["dependentRequired"].pop(field)
        schemas["Scores"]["required"] = list(labels)
        schemas["Feedback"]["properties"]["label"]["enum"] = [*labels, None]  # null: only with related false
        root = {"components": copy.deepcopy(document["components"])}
        return cls(document, *(Draft202012Validator({**root, "$ref": f"#/components/schemas/{name}"})
                               for name in ("Tweet", "Batch", "Feedback")))

    def parse_classify(self, body: Any) -> ClassifyRequest:
        """A single tweet ``{"text", "entity"?}`` or a batch ``{"tweets": [...]}``, checked against the document."""
        if not isinstance(body, dict):
            raise ApiError(400, ErrorCode.INVALID_BODY, "the body must be a JSON object")
        if "text" in body and "tweets" in body:
            raise ApiError(400, ErrorCode.INVALID_BODY, "send either 'text' (one tweet) or 'tweets' (a list), not both")
        if "text" not in body and "tweets" not in body:
            raise ApiError(400, ErrorCode.MISSING_FIELD, "'text' (one tweet) or 'tweets' (a list) is required")
        batch = "tweets" in body
        if batch and "entity" in body:  # else silently ignored: every tweet would be read without its entity
            raise ApiError(400, ErrorCode.INVALID_BODY, "'entity' goes in each of 'tweets' ({\"text\": ..., "
                                                        "\"entity\": ...}), not beside them")
        error = next((self._batch if batch else self._tweet).iter_errors(body), None)
        if error is not None:
            raise _api_error(error)
        tweets = body["tweets"] if batch else [body]
        for i, tweet in enumerate(tweets):
            _check_visible(tweet["text"], ["tweets", i, "text"] if batch else ["text"])
        return ClassifyRequest([t["text"] for t in tweets], [t.get("entity") for t in tweets], batch)

    def parse_feedback(self, body: Any) -> Correction:
        """A correction ``{"text", "entity", "label"?, "related"?}`` (no label only with related false), checked
        against the document."""
        if not isinstance(body, dict):
            raise ApiError(400, ErrorCode.INVALID_BODY, "the body must be a JSON object")
        # A missing label is reported last: a 'related' that is not a boolean says more than its else branch does.
        error = min(self._feedback.iter_errors(body), key=lambda e: "else" in e.schema_path, default=None)
        if error is not None:
            raise _api_error(error)
        for field in ("text", "entity"):
            _check_visible(body[field], [field])
        return Correction(body["text"], body["entity"], body.get("label"), body.get("related"))


def _where(path) -> str:
    """``'tweets[3].text'`` for the path (tweets, 3, text)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return f"'{out}'"


def _check_visible(text: str, path: list) -> None:
    """A text that the schema let through and preprocessing leaves empty: only an HTML entity can hide its one visible
    character from the pattern (``&#8203;``), so no other text is scanned again."""
    if "&" in text and not visible(text):
        raise _empty(_where(path), text)


def _empty(where: str, text: str) -> ApiError:
    invisible = ": it holds only invisible or control characters, which the model does not read" if text.strip() else ""
    return ApiError(400, ErrorCode.EMPTY_FIELD, f"{where} must not be empty{invisible}")


def _api_error(error: ValidationError) -> ApiError:
    """The API's error code for a schema violation; the message names the field, never its value."""
    rule, path = error.validator, list(error.absolute_path)
    where = _where(path)
    if rule == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        unless = " unless 'related' is false" if missing == "label" and "else" in error.schema_path else ""
        return ApiError(400, ErrorCode.MISSING_FIELD, f"{_where([*path, missing])} is required{unless}")
    if rule == "type" and error.instance is None and "else" in error.schema_path:  # a null label, related not false
        return ApiError(400, ErrorCode.MISSING_FIELD, f"{where} is required unless 'related' is false")
    if rule == "type" and error.instance is None and path[-1:] == ["text"]:
        return ApiError(400, ErrorCode.MISSING_FIELD, f"{where} is required")
    if rule in ("minLength", "pattern"):
        return _empty(where, error.instance)
    if rule == "maxLength":
        return ApiError(413, ErrorCode.TEXT_TOO_LONG, f"{where} is longer than {error.validator_value} characters")
    if rule == "maxItems":
        return ApiError(413, ErrorCode.BATCH_TOO_LARGE,
                        f"'tweets' holds {len(error.instance)} items; the limit is {error.validator_value}")
    if path == ["tweets"]:
        return ApiError(400, ErrorCode.INVALID_FIELD, "'tweets' must be a non-empty list of objects")
    if rule == "type":
        return ApiError(400, ErrorCode.INVALID_FIELD, f"{where} must be of type {' or '.join(_types(error.validator_value))}")
    if rule == "enum":  # a label: null (not about the entity) is not named
        named = ", ".join(str(v) for v in error.validator_value if v is not None)
        return ApiError(400, ErrorCode.INVALID_FIELD, f"{where} must be one of {named}")
    return ApiError(400, ErrorCode.INVALID_FIELD, f"{where} breaks the schema's '{rule}' rule")


def _types(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
