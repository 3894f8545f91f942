"""Decoding of request bodies, the parsed /classify request, and the API error for bad input."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .errors import AppError


class ErrorCode(str, Enum):
    """The stable ``code`` of an error response, as the API documents it (and the errors counter labels those the
    application answers: not the protocol errors gunicorn answers itself, which never reach it)."""

    INVALID_JSON = "invalid_json"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_BODY = "invalid_body"
    MISSING_FIELD = "missing_field"
    EMPTY_FIELD = "empty_field"
    INVALID_FIELD = "invalid_field"
    MALFORMED_REQUEST = "malformed_request"
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    PRECONDITION_FAILED = "precondition_failed"
    BODY_TOO_LARGE = "body_too_large"
    TEXT_TOO_LONG = "text_too_long"
    BATCH_TOO_LARGE = "batch_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    HTTP_ERROR = "http_error"  # any other status the web framework answers
    INTERNAL = "internal"
    STORAGE_ERROR = "storage_error"
    FEEDBACK_FULL = "feedback_full"
    INSUFFICIENT_STORAGE = "insufficient_storage"
    # answered by gunicorn (app/gunicorn_worker.py), not counted
    FORBIDDEN = "forbidden"
    REQUEST_LINE_TOO_LONG = "request_line_too_long"
    EXPECTATION_FAILED = "expectation_failed"
    HEADERS_TOO_LARGE = "headers_too_large"
    NOT_IMPLEMENTED = "not_implemented"

    @property
    def counted(self) -> bool:
        """Whether the application answers it (so the errors counter can count it)."""
        return self not in _GUNICORN_ONLY


_GUNICORN_ONLY = frozenset({ErrorCode.FORBIDDEN, ErrorCode.REQUEST_LINE_TOO_LONG, ErrorCode.EXPECTATION_FAILED,
                            ErrorCode.HEADERS_TOO_LARGE, ErrorCode.NOT_IMPLEMENTED})


class ApiError(AppError):
    """A client-visible error: HTTP status, a stable code and a message (never the tweet text)."""

    def __init__(self, status: int, code: ErrorCode, message: str):
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
    raise ApiError(400, ErrorCode.INVALID_JSON, f"{name} is not valid JSON")


def parse_json_body(raw: bytes, content_type: str | None) -> Any:
    """Decode a JSON body strictly: UTF-8 only (a byte order mark before it is ignored), no NaN or Infinity."""
    mimetype = (content_type or "").split(";")[0].strip().lower()
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
    try:
        text = raw.removeprefix(codecs.BOM_UTF8).decode("utf-8")  # a leading BOM ignored, as RFC 8259 allows
    except UnicodeDecodeError:
        raise ApiError(400, ErrorCode.INVALID_ENCODING, "the body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(400, ErrorCode.INVALID_JSON, f"malformed JSON at line {exc.lineno} column {exc.colno}") from None
    except ValueError:  # an integer over Python's 4,300 digits
        raise ApiError(400, ErrorCode.INVALID_JSON, "a number in the JSON is too long") from None
    except RecursionError:
        raise ApiError(400, ErrorCode.INVALID_JSON, "JSON nested too deeply") from None
