"""The environment-variable parsers, one variable at a time."""

import os
from pathlib import Path

import pytest

from app.config import Config, ServerConfig
from app.errors import AppError

INT_VARS = [
    ("TFLITE_THREADS", "threads", 1, 64),
    ("MAX_TWEETS", "max_tweets", 1, 4096),
    ("MAX_BODY_BYTES", "max_body_bytes", 1024, 1 << 30),
    ("MAX_TEXT_CHARS", "max_text_chars", 1, 1 << 20),
    ("LENGTH_BUCKET", "length_bucket", 1, 128),
    ("INFERENCE_BATCH", "inference_batch", 1, 256),
    ("FEEDBACK_MAX_BYTES", "feedback_max_bytes", 1024, 1 << 40),
]


def test_defaults():
    config = Config.from_env({})
    assert config == Config()
    assert config.auth_token is None and config.metrics_dir is None
    assert config.bundle.name == "default"


@pytest.mark.parametrize("name, field, low, high", INT_VARS)
def test_integer_variables(name, field, low, high):
    assert getattr(Config.from_env({name: str(high)}), field) == high
    assert getattr(Config.from_env({name: f" {low} "}), field) == low
    for bad in ("abc", "1.5", str(low - 1), str(high + 1)):
        with pytest.raises(AppError, match=name):
            Config.from_env({name: bad})


def test_bundle_and_metrics_dir():
    config = Config.from_env({"BUNDLE": "/srv/b", "PROMETHEUS_MULTIPROC_DIR": "/run/m"})
    assert config.bundle == Path("/srv/b") and config.metrics_dir == Path("/run/m")


def test_log_level():
    assert Config.from_env({"LOG_LEVEL": "debug"}).log_level == "DEBUG"
    with pytest.raises(AppError, match="LOG_LEVEL"):
        Config.from_env({"LOG_LEVEL": "chatty"})


def test_feedback_file(tmp_path):
    assert Config.from_env({"FEEDBACK_FILE": " "}).feedback_file is None
    path = tmp_path / "feedback.jsonl"
    assert Config.from_env({"FEEDBACK_FILE": str(path)}).feedback_file == path
    assert path.read_bytes() == b"" and path.stat().st_mode & 0o777 == 0o600  # created, private
    (tmp_path / "dir.jsonl").mkdir()
    for bad, reason in ((tmp_path / "absent" / "f.jsonl", "No such file or directory"),
                        (tmp_path / "dir.jsonl", "Is a directory"), (tmp_path / "feedback.csv", "must end in .jsonl")):
        with pytest.raises(AppError, match=f"^FEEDBACK_FILE .*{reason}"):
            Config.from_env({"FEEDBACK_FILE": str(bad)})
    assert not (tmp_path / "feedback.csv").exists()
    fifo = tmp_path / "fifo.jsonl"  # it would take the lines, or block the start where nothing reads it
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(AppError, match=rf"^FEEDBACK_FILE {fifo}: a FIFO \(named pipe\), not a file$"):
            Config.from_env({"FEEDBACK_FILE": str(fifo)})
    finally:
        os.close(reader)
    with pytest.raises(AppError, match=rf"^FEEDBACK_FILE {fifo}: a FIFO \(named pipe\), not a file$"):
        Config.from_env({"FEEDBACK_FILE": str(fifo)})


def test_auth_token_sources(tmp_path):
    assert Config.from_env({"AUTH_TOKEN": "s3cret-token-0123456789"}).auth_token == "s3cret-token-0123456789"
    (tmp_path / "token").write_text("file-token-0123456789\n")
    assert Config.from_env({"AUTH_TOKEN_FILE": str(tmp_path / "token")}).auth_token == "file-token-0123456789"
    (tmp_path / "auth_token").write_text("cred-token-0123456789")
    assert Config.from_env({"CREDENTIALS_DIRECTORY": str(tmp_path)}).auth_token == "cred-token-0123456789"
    with pytest.raises(AppError, match="^AUTH_TOKEN must hold at least 16"):
        Config.from_env({"AUTH_TOKEN": "short"})
    with pytest.raises(AppError, match="^AUTH_TOKEN must hold at least 16 printable ASCII"):  # curl sends UTF-8,
        Config.from_env({"AUTH_TOKEN": "p\u00e4sswort-geheim-1234"})  # the server reads headers as latin-1
    with pytest.raises(AppError, match="^AUTH_TOKEN_FILE .*missing: No such file"):
        Config.from_env({"AUTH_TOKEN_FILE": str(tmp_path / "missing")})
    (tmp_path / "token").write_text("short\n")
    with pytest.raises(AppError, match="^AUTH_TOKEN_FILE .*token must hold at least 16"):
        Config.from_env({"AUTH_TOKEN_FILE": str(tmp_path / "token")})
    (tmp_path / "token").write_bytes(b"\xff" * 20)
    with pytest.raises(AppError, match="^AUTH_TOKEN_FILE .*token is not UTF-8 text"):
        Config.from_env({"AUTH_TOKEN_FILE": str(tmp_path / "token")})
    (tmp_path / "auth_token").write_text("\x00" * 20)
    with pytest.raises(AppError, match="^systemd credential auth_token .* must hold at least 16 printable"):
        Config.from_env({"CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_server_defaults_and_variables():
    assert ServerConfig.from_env({}).bind == "127.0.0.1:8080"
    assert ServerConfig.from_env({"HOST": "::1", "PORT": "9000"}).bind == "[::1]:9000"
    with pytest.raises(AppError, match="HOST"):
        ServerConfig.from_env({"HOST": "a b"})


@pytest.mark.parametrize("name, field, low, high", [
    ("PORT", "port", 1, 65535), ("WORKERS", "workers", 1, 64), ("THREADS", "threads", 1, 64),
    ("TIMEOUT", "timeout", 1, 3600), ("GRACEFUL_TIMEOUT", "graceful_timeout", 1, 3600),
    ("KEEPALIVE", "keepalive", 0, 300), ("READ_TIMEOUT", "read_timeout", 1, 300),
])
def test_server_integer_variables(name, field, low, high):
    assert getattr(ServerConfig.from_env({name: str(low)}), field) == low
    for bad in ("x", str(high + 1)):
        with pytest.raises(AppError, match=name):
            ServerConfig.from_env({name: bad})


def test_access_log():
    assert ServerConfig.from_env({}).access_log is False
    assert ServerConfig.from_env({"ACCESS_LOG": "1"}).access_log is True
    assert ServerConfig.from_env({"ACCESS_LOG": "0"}).access_log is False
    with pytest.raises(AppError, match="ACCESS_LOG"):
        ServerConfig.from_env({"ACCESS_LOG": "yes"})
