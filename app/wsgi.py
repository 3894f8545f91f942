"""WSGI entry for gunicorn: ``gunicorn -c app/gunicorn_conf.py 'app.wsgi:create()'``."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path

from flask import Flask
from gunicorn.arbiter import Arbiter

from .config import RESOLVED_ENV, service_settings
from .errors import AppError
from .server import create_app


def create() -> Flask:
    """Build the application (called once per worker) with the settings the gunicorn master read at start, on the
    bundle it verified (see gunicorn_conf.py) when there is one."""
    config = service_settings()[1]
    if os.environ.get(RESOLVED_ENV):
        config = dataclasses.replace(config, bundle=Path(os.environ[RESOLVED_ENV]))
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    try:
        return create_app(config)
    except AppError as exc:  # the master checked the bundle at start: it was changed since (a worker started later)
        print(f"reputation worker cannot start: {exc}", file=sys.stderr, flush=True)
        sys.exit(Arbiter.WORKER_BOOT_ERROR)  # the master stops, saying why in one line: "Worker failed to boot."
