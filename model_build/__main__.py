"""Entry point: ``python -m model_build``."""

import sys

from .cli import main

sys.exit(main())
