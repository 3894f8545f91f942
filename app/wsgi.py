"""WSGI entry for gunicorn: ``gunicorn -c app/gunicorn_conf.py 'app.wsgi:create()'``."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from flask import Flask

from .config import RESOLVED_ENV, Config
from .server import create_app


def create() -> Flask:
    """Build the application from environment variables (called once per worker), on the bundle
    the gunicorn master verified (see gunicorn_conf.py) when there is one."""
    config = Config.from_env()
    if os.environ.get(RESOLVED_ENV):
        config = dataclasses.replace(config, bundle=Path(os.environ[RESOLVED_ENV]))
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    return create_app(config)
