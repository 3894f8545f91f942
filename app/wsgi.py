"""WSGI entry for gunicorn: ``gunicorn -c app/gunicorn_conf.py 'app.wsgi:create()'``."""

from __future__ import annotations

import logging

from flask import Flask

from .config import Config
from .server import create_app


def create() -> Flask:
    """Build the application from environment variables (called once per worker)."""
    config = Config.from_env()
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    return create_app(config)
