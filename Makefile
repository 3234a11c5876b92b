# Sentinance: `make run` (main job on embedded defaults) and `make test` (whole suite).
# Both create the virtualenv if missing and install the locked dependency set.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK_HASH := $(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
DEPS_STAMP := $(VENV)/.deps-$(LOCK_HASH)
PKG_STAMP := $(VENV)/.pkg-$(shell echo "$(CURDIR)" | sha256sum | cut -c1-16)-$(LOCK_HASH)
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install run test lint serve docs browser servers prometheus lock clean-state

$(DEPS_STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=24"
	$(PIP) install --no-deps -r requirements.lock
	$(PY) -m pip check
	rm -f $(VENV)/.deps-* $(VENV)/.pkg-*
	touch $@

$(PKG_STAMP): $(DEPS_STAMP)
	$(PIP) install --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.pkg-*
	touch $@

install: $(PKG_STAMP)

run: install
	$(VENV)/bin/sentinance run

test: install browser servers prometheus lint
	$(PY) -m pytest

# ruff (lint and format) on the Python and the notebooks, sqlfluff on the dbt project: the whole tree, clean
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/sqlfluff lint dbt

serve: install
	$(VENV)/bin/sentinance serve $(SERVE_ARGS)

docs: install
	$(VENV)/bin/sentinance ui dbt-docs

# Debian's headless browser and its driver for the UI tests (tests/test_ui_browser.py); needs root.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver >/dev/null; }

# Debian's servers for the engines tier (tests/engines): PostgreSQL, Redis, and docker-compose to validate
# infra/compose (no Docker engine runs); needs root. The tests start and stop each server on 127.0.0.1.
servers:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v redis-server >/dev/null \
	  && command -v docker-compose >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    postgresql redis-server docker-compose >/dev/null; }

# Debian's Prometheus and promtool for the monitoring tests (tests/integration/test_monitoring.py); needs root.
# The tests start their own server on a free loopback port, whatever Debian does with its service.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus >/dev/null; }

# Re-resolve the pinned set after changing dependencies in pyproject.toml (needs uv).
lock:
	uv pip compile pyproject.toml --extra test --python-version 3.11 --find-links /opt/wheels \
	  --index-strategy unsafe-best-match --no-header --emit-find-links -o requirements.lock

clean-state:
	rm -rf .sentinance
