# Cards API: every task is a target here. `make serve` and `make test` work on a fresh clone
# with nothing but Python 3.11: the first run creates .tools/ (a pinned uv) and .venv/ (the
# locked dependencies), later runs reuse them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
SYNCED := $(VENV)/.synced
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

# `make serve` keeps its embedded database inside the clone unless told otherwise.
CARDS_DATA_DIR ?= $(CURDIR)/.data
HOST ?= 127.0.0.1
PORT ?= 8002
WORKERS ?= 1

.PHONY: help install serve migrate test lint typecheck pytest fmt bench eval clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --python $(PYTHON) --quiet --compile-bytecode
	@touch $@

install: $(SYNCED)  ## create .venv with the locked dependencies

serve: install  ## run the API on http://127.0.0.1:8002 with an embedded PostgreSQL
	CARDS_DATA_DIR=$(CARDS_DATA_DIR) $(BIN)/cards-api serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

migrate: install  ## apply pending migrations
	CARDS_DATA_DIR=$(CARDS_DATA_DIR) $(BIN)/cards-api migrate

test: lint typecheck pytest  ## every check: ruff, mypy --strict, the whole pytest suite

lint: install  ## ruff lint and format check
	$(BIN)/ruff check src tests bench eval
	$(BIN)/ruff format --check src tests bench eval

typecheck: install  ## mypy --strict
	$(BIN)/mypy

pytest: install  ## unit, integration and end-to-end tests on a real PostgreSQL
	$(BIN)/pytest $(PYTEST_ARGS)

fmt: install  ## format and fix what ruff can
	$(BIN)/ruff format src tests bench eval
	$(BIN)/ruff check --fix src tests bench eval

# The benchmark needs Debian's wrk (a C load generator) and the bench dependency group (the
# LangGraph peer, py-spy). QUICK=1 runs short, single repetitions in under two minutes.
bench: $(UV)  ## measure R, U, B, Q, L against the database limit and a peer (QUICK=1: short)
	@command -v wrk >/dev/null || { \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
	$(UV) sync --locked --python $(PYTHON) --quiet --compile-bytecode --group bench
	@touch $(SYNCED)
	$(BIN)/python -m bench $(if $(QUICK),--quick)

# Retrieval quality on a collection folder (docs.jsonl, queries.jsonl, qrels.tsv), e.g.
# make eval COLLECTION=../shared/eval/cranfield
eval: install  ## nDCG@10, recall@10, MRR@10 per search mode beside BM25 (COLLECTION=folder)
	@test -n "$(COLLECTION)" || { echo "usage: make eval COLLECTION=path/to/collection"; exit 2; }
	$(BIN)/python -m eval $(COLLECTION)

clean:  ## remove the virtualenvs and caches (not .data)
	rm -rf $(TOOLS) $(VENV) .pytest_cache .mypy_cache .ruff_cache
