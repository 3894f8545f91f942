"""Decoding of request bodies, the parsed /classify request, and the API error for bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import AppError


class ApiError(AppError):
    """A client-visible error: HTTP status, a stable code and a message (never the tweet text)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ClassifyRequest:
    """The tweets of one /classify call, in order; ``batch`` when they came as a list."""

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
    except ValueError:  # an integer over Python's 4,300 digits
        raise ApiError(400, "invalid_json", "a number in the JSON is too long") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "JSON nested too deeply") from None
