"""Service settings: a typed config and its parser from environment variables."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from .errors import AppError
from .feedback import check_file

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's multiprocess mode: its files' directory
RESOLVED_ENV = "REPUTATION_RESOLVED_BUNDLE"  # the bundle the gunicorn master verified, for its workers to load

DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "bundles" / "default"


@dataclass(frozen=True)
class Config:
    bundle: Path = DEFAULT_BUNDLE
    threads: int = 2
    max_tweets: int = 64
    max_body_bytes: int = 1 << 20
    max_text_chars: int = 4000
    length_bucket: int = 8
    inference_batch: int = 16
    auth_token: str | None = None
    metrics_dir: Path | None = None
    log_level: str = "INFO"
    feedback_file: Path | None = None  # unset: no POST /feedback, nothing stored
    feedback_max_bytes: int = 16 << 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        """Read ``BUNDLE``, ``TFLITE_THREADS``, ``MAX_TWEETS``, ``MAX_BODY_BYTES``, ``MAX_TEXT_CHARS``,
        ``LENGTH_BUCKET``, ``INFERENCE_BATCH``, ``AUTH_TOKEN`` / ``AUTH_TOKEN_FILE`` (or the systemd
        credential ``auth_token``), ``PROMETHEUS_MULTIPROC_DIR``, ``LOG_LEVEL``, ``FEEDBACK_FILE`` and
        ``FEEDBACK_MAX_BYTES``."""
        env = os.environ if env is None else env
        default = cls()
        return cls(
            bundle=Path(env.get("BUNDLE") or default.bundle),
            threads=_int(env, "TFLITE_THREADS", default.threads, 1, 64),
            max_tweets=_int(env, "MAX_TWEETS", default.max_tweets, 1, 4096),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", default.max_body_bytes, 1024, 1 << 30),
            max_text_chars=_int(env, "MAX_TEXT_CHARS", default.max_text_chars, 1, 1 << 20),
            length_bucket=_int(env, "LENGTH_BUCKET", default.length_bucket, 1, 128),
            inference_batch=_int(env, "INFERENCE_BATCH", default.inference_batch, 1, 256),
            auth_token=_auth_token(env),
            metrics_dir=Path(env[MULTIPROC_ENV]) if env.get(MULTIPROC_ENV) else None,
            log_level=_choice(env, "LOG_LEVEL", default.log_level, ("DEBUG", "INFO", "WARNING", "ERROR"), str.upper),
            feedback_file=_feedback_file(env),
            feedback_max_bytes=_int(env, "FEEDBACK_MAX_BYTES", default.feedback_max_bytes, 1024, 1 << 40),
        )

    @classmethod
    def offline_from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        """The settings the offline commands use (``BUNDLE``, ``TFLITE_THREADS``, ``MAX_TEXT_CHARS``, ``LENGTH_BUCKET``,
        ``INFERENCE_BATCH``, ``LOG_LEVEL``); server, request and token settings are not read."""
        env = os.environ if env is None else env
        return cls.from_env({k: env[k] for k in OFFLINE_VARIABLES if k in env})


OFFLINE_VARIABLES = ("BUNDLE", "TFLITE_THREADS", "MAX_TEXT_CHARS", "LENGTH_BUCKET", "INFERENCE_BATCH", "LOG_LEVEL")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise AppError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise AppError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...],
            normalise: Callable[[str], str]) -> str:
    raw = normalise(env.get(name, "").strip()) or default
    if raw not in allowed:
        raise AppError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


def _auth_token(env: Mapping[str, str]) -> str | None:
    """The bearer token: AUTH_TOKEN, else the file AUTH_TOKEN_FILE, else systemd's credential."""
    if env.get("AUTH_TOKEN"):
        token, source = env["AUTH_TOKEN"], "AUTH_TOKEN"
    else:
        path = env.get("AUTH_TOKEN_FILE") or (
            str(Path(env["CREDENTIALS_DIRECTORY"]) / "auth_token") if env.get("CREDENTIALS_DIRECTORY") else ""
        )
        if not path:
            return None
        source = f"AUTH_TOKEN_FILE {path}" if env.get("AUTH_TOKEN_FILE") else f"systemd credential auth_token ({path})"
        try:
            token = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise AppError(f"{source}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise AppError(f"{source} is not UTF-8 text") from None
    token = token.strip()
    if len(token) < 16 or not token.isprintable() or not token.isascii():  # HTTP header values are ASCII in practice
        raise AppError(f"{source} must hold at least 16 printable ASCII characters")
    return token


def _feedback_file(env: Mapping[str, str]) -> Path | None:
    """FEEDBACK_FILE, checked by opening it for appending (so a start that could not store corrections fails)."""
    raw = env.get("FEEDBACK_FILE", "").strip()
    if not raw:
        return None
    why = check_file(Path(raw))
    if why:
        raise AppError(f"FEEDBACK_FILE {why}")
    return Path(raw)


@dataclass(frozen=True)
class ServerConfig:
    """gunicorn settings: ``HOST``, ``PORT``, ``WORKERS``, ``THREADS``, ``TIMEOUT``, ``GRACEFUL_TIMEOUT``,
    ``KEEPALIVE``, ``READ_TIMEOUT`` (seconds a request may take to arrive, headers and body) and ``ACCESS_LOG``
    (1: one line per request; off by default, the metrics count every request)."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    threads: int = 8
    timeout: int = 30
    graceful_timeout: int = 20
    keepalive: int = 5
    read_timeout: int = 10
    access_log: bool = False

    @property
    def bind(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ServerConfig":
        env = os.environ if env is None else env
        default = cls()
        host = env.get("HOST", "").strip() or default.host
        if any(c.isspace() for c in host) or "/" in host:
            raise AppError(f"HOST must be an address or host name, got {host!r}")
        return cls(
            host=host,
            port=_int(env, "PORT", default.port, 1, 65535),
            workers=_int(env, "WORKERS", default.workers, 1, 64),
            threads=_int(env, "THREADS", default.threads, 1, 64),
            timeout=_int(env, "TIMEOUT", default.timeout, 1, 3600),
            graceful_timeout=_int(env, "GRACEFUL_TIMEOUT", default.graceful_timeout, 1, 3600),
            keepalive=_int(env, "KEEPALIVE", default.keepalive, 0, 300),
            read_timeout=_int(env, "READ_TIMEOUT", default.read_timeout, 1, 300),
            access_log=_choice(env, "ACCESS_LOG", "0", ("0", "1"), str.strip) == "1",
        )


@functools.cache
def service_settings() -> tuple[ServerConfig, Config]:
    """The service's settings, read from the environment once per process: the gunicorn master reads them at start,
    and its workers (forked from it, a replacement for a dead one too) and its reloads (SIGHUP runs gunicorn_conf.py
    again) keep them. So a token or feedback file changed or removed later counts from the next restart, for every
    worker alike, and never stops a worker from starting; a reload switches only the bundle."""
    return ServerConfig.from_env(), Config.from_env()
