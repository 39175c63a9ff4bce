# xfer: `make demo` runs the whole loop on embedded defaults; `make test` runs the test suite.
# Both set everything up on a fresh machine first (venv + pinned torch from the local disk + apt).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# this machine's pip config lists local indexes that may be absent; their warnings are noise
QUIET_PIP := 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.xfer-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR ?= demo-work
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export PREFECT_LOGGING_LEVEL ?= WARNING

.PHONY: setup sysdeps venv test test-slow test-fast integration reliability demo bench figures screenshots lint clean

setup: sysdeps venv

# System packages: the real dataset (Fashion-MNIST), PostgreSQL for the MLflow integration tests and
# Chromium, the headless browser that checks the UIs (tests/integration/test_browser.py).
sysdeps:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	    || ! command -v chromium >/dev/null; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist postgresql chromium >/dev/null; \
	fi

venv: $(STAMP)

# torch/torchvision come from this machine's disk (pip only; uv/poetry would download ~3 GB).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1 $(QUIET_PIP)
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e '.[flows,server,dev]' $(QUIET_PIP)
	touch $(STAMP)

# The default suite: unit, data, model, drift, flows, integration (real servers on 127.0.0.1),
# reliability, minus the tests marked `slow`; `make test-slow` runs those (.ci/run runs both).
test: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider --timeout=900 -m "not slow" --durations=25

test-slow: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider --timeout=1200 -m slow --durations=15

test-fast: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not slow and not integration and not reliability"

integration: setup
	$(VENV)/bin/pytest -q -m integration

reliability: setup
	$(VENV)/bin/pytest -q -m reliability

demo: setup
	$(VENV)/bin/xfer demo --workdir $(DEMO_DIR)
	@echo "Open the UIs (MLflow, Evidently; Ctrl-C stops them): $(VENV)/bin/xfer ui --workdir $(DEMO_DIR)"

# Every bench script writes bench/results/<name>.json with provenance (commit, command, load);
# common.py, figures.py and render_*.py are their plumbing, not benches. Sequential on purpose:
# each ratio needs the machine to itself. Commit first: a result from a dirty tree is refused.
BENCHES := $(filter-out bench/common.py bench/figures.py $(wildcard bench/render_*.py),$(wildcard bench/*.py))
bench: setup
	for b in $(BENCHES); do echo "== $$b"; $(PY) $$b || exit 1; done
	$(PY) bench/figures.py

# README.md and docs/*.md take their figures from bench/results/*.json (marked sections).
figures: setup
	$(PY) bench/figures.py

# The README's screenshots of the UIs (docs/screenshots/*.png), made by the browser test: a quick
# demo, `xfer ui`, headless Chromium; the test checks what each page shows before it keeps the shot.
screenshots: setup
	XFER_SCREENSHOT_DIR=docs/screenshots $(VENV)/bin/pytest -q -p no:cacheprovider --timeout=1200 \
	  -m slow tests/integration/test_browser.py

lint: setup
	$(VENV)/bin/ruff check xferlib flows tests bench
	$(VENV)/bin/ruff format --check xferlib flows tests bench
	$(VENV)/bin/mypy xferlib
	$(PY) bench/figures.py --check

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
