"""The edge service. An empty PROMETHEUS_MULTIPROC_DIR means unset, as app.config reads it: prometheus_client
would otherwise switch to multiprocess mode and write its files into the working directory."""

import os

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
