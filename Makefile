# make serve: the edge service on the default bundle (HOST, PORT, BUNDLE, WORKERS, ... from the environment)
# make test:  everything the tests need, then the whole suite
PYTHON ?= python3
EDGE_VENV ?= .venv-edge
DEV_VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8080
export HOST PORT

.PHONY: serve test build-default bench bench-quick arm64-check clean

$(EDGE_VENV)/.installed: requirements-edge.txt
	$(PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/pip install -q --upgrade pip
	$(EDGE_VENV)/bin/pip install -q -r requirements-edge.txt
	touch $@

$(DEV_VENV)/.installed: requirements-edge.txt requirements-build.txt requirements-dev.txt
	$(PYTHON) -m venv $(DEV_VENV)
	$(DEV_VENV)/bin/pip install -q --upgrade pip
	$(DEV_VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

serve: $(EDGE_VENV)/.installed
	exec $(EDGE_VENV)/bin/gunicorn -c app/gunicorn_conf.py

test: $(DEV_VENV)/.installed $(EDGE_VENV)/.installed
	EDGE_PYTHON=$(EDGE_VENV)/bin/python $(DEV_VENV)/bin/python -m pytest -q

clean:
	rm -rf $(EDGE_VENV) $(DEV_VENV) .pytest_cache
