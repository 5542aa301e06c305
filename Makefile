# Tiandi developer and CI entry points. `make test` works on a fresh Debian machine as root.
SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.8
# Server binaries the tests start for real, and the Debian packages that bring them.
TEST_PACKAGES := influxdb postgresql snmpd snmp victoria-metrics prometheus-snmp-exporter

.PHONY: test test-deps lint demo $(VENV)

# `make .venv`: the virtualenv, synced with the committed lock.
$(VENV): $(VENV)/.synced

$(VENV)/bin/uv:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Re-synced whenever the dependencies or the lock change.
$(VENV)/.synced: $(VENV)/bin/uv pyproject.toml uv.lock
	$(VENV)/bin/uv sync --frozen
	touch $@

# Install the servers the tests run (as root, when one is missing); otherwise say what is missing.
# Debian's postgresql package may create and start a cluster on 5432: harmless, the tests run
# their own server on a free port with its socket in a temp directory and never touch it.
test-deps:
	@missing=$$(for p in $(TEST_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done | xargs); \
	if [ -z "$$missing" ]; then \
		echo "test-deps: $(TEST_PACKAGES) are installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "test-deps: installing $$missing"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "test-deps: missing $$missing; as root run:"; \
		echo "  apt-get install -y --no-install-recommends $$missing"; \
		echo "test-deps: the tests that need them are skipped here (and fail under CI=true)"; \
	fi

test: $(VENV) test-deps
	$(VENV)/bin/pytest --durations=15

lint: $(VENV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

demo: $(VENV)
	$(VENV)/bin/python -m tiandi.demo
