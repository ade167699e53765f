# OpenMemory: the two commands are `make run` and `make test`. Each installs what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Never download a Python build: use the machine's python3 (3.11-3.13).
export UV_PYTHON_DOWNLOADS := never
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
ARGS ?=
LOCOMO ?= ../shared/bench/locomo/locomo_dev.json
SCALE_SIZES ?= 10000,100000
#: The benches' candidate caches (they hold the conversations' text, so never inside the repository)
BENCH_CACHE ?= /tmp/openmemory-bench-cache

.PHONY: help install run test lint format deploy-check bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

# --inexact: the deploy tools (below) stay installed when the main sync runs again.
$(VENV)/.synced: pyproject.toml uv.lock packages/*/pyproject.toml services/*/pyproject.toml bench/pyproject.toml | $(UV)
	$(UV) sync --frozen --quiet --inexact
	@touch $@

$(VENV)/.synced-deploy: $(VENV)/.synced
	$(UV) sync --frozen --quiet --inexact --group deploy
	@touch $@

install: $(VENV)/.synced  ## install everything into .venv (only what is missing)

run: install  ## start the whole system with embedded defaults (ARGS="--data-dir DIR" etc.)
	$(VENV)/bin/openmemory run $(ARGS)

test: install  ## run the whole test suite (installs Debian's chromium for the dashboard's browser tests)
	@test -x /usr/bin/chromium || { echo "installing chromium (Debian package; needs root) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	  || echo "could not install chromium: the browser tests will be skipped"; }
	$(VENV)/bin/pytest $(ARGS)

lint: install  ## ruff (lint + format check), mypy (strict), and the layout rules (scripts/check_layout.py)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict --ignore-missing-imports deploy/check.py deploy/manifests.py deploy/image.py deploy/registry.py scripts/check_layout.py
	$(VENV)/bin/python scripts/check_layout.py

format: install  ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

deploy-check: $(VENV)/.synced-deploy  ## validate compose, Helm (both modes), Kubernetes schemas, Prometheus, dashboards
	@command -v promtool >/dev/null || { echo "installing promtool (Debian package prometheus; needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	$(VENV)/bin/python deploy/check.py

bench: install  ## LoCoMo retrieval held out and in sample (LOCOMO=path), retrieval on MCP-style facts and on chats written blind, search latency at 10k/100k over MCP (SCALE_SIZES=10000), the extractor, ingest cost, pulling a command, the keyword step, the write guard, consolidation, knowledge updates, load
	rm -rf $(BENCH_CACHE) && mkdir -p $(BENCH_CACHE)
	$(VENV)/bin/openmemory bench locomo --data $(LOCOMO) --cv --cv-cache $(BENCH_CACHE)/locomo --out bench/results-locomo-cv.json
	$(VENV)/bin/python -m openmemory_bench.learned --cv-cache $(BENCH_CACHE)/locomo --nested --without particular --out bench/results-learned-particular.json
	$(VENV)/bin/openmemory bench locomo --data $(LOCOMO) --out bench/results-locomo.json
	$(VENV)/bin/openmemory bench locomo --data $(LOCOMO) --infer --out bench/results-locomo-infer.json
	$(VENV)/bin/openmemory bench scale --sizes $(SCALE_SIZES) --out bench/results-scale.json
	$(VENV)/bin/python bench/extraction.py --locomo $(LOCOMO) --out bench/results-extraction.json
	$(VENV)/bin/openmemory bench ingest-cost --memories 3000 --out bench/results-ingest-cost.json
	$(VENV)/bin/openmemory bench pull-cost --out bench/results-pull-cost.json
	$(VENV)/bin/openmemory bench keyword-step --out bench/results-keyword-step.json
	$(VENV)/bin/openmemory bench updates --out bench/results-updates.json
	$(VENV)/bin/openmemory bench facts --out bench/results-facts.json
	$(VENV)/bin/openmemory bench locomo --data bench/data/chat_eval.json --out bench/results-chats.json
	$(VENV)/bin/openmemory bench locomo --data bench/data/chat_eval2.json --out bench/results-chats2.json
	$(VENV)/bin/openmemory bench locomo --data bench/data/chat_eval3.json --out bench/results-chats3.json
	for set in chat_eval chat_eval2 chat_eval3; do \
	  $(VENV)/bin/openmemory bench locomo --data bench/data/$$set.json --cv --cv-cache $(BENCH_CACHE)/$$set --out bench/results-$$set-cv.json && \
	  $(VENV)/bin/python -m openmemory_bench.learned --cv-cache $(BENCH_CACHE)/locomo --test-cache $(BENCH_CACHE)/$$set --without particular --out bench/results-$$set-transfer.json || exit 1; \
	done
	$(VENV)/bin/python -m openmemory_bench.crossenc --cv-cache $(BENCH_CACHE)/locomo --nested --out bench/results-crossenc-nested.json
	$(VENV)/bin/python -m openmemory_bench.crossenc --cv-cache $(BENCH_CACHE)/locomo --nested --shipped-pair --out bench/results-crossenc-nested-shipped.json
	$(VENV)/bin/python -m openmemory_bench.crossenc --cv-cache $(BENCH_CACHE)/locomo --test-cache $(BENCH_CACHE)/chat_eval3 --test-cache $(BENCH_CACHE)/chat_eval --test-cache $(BENCH_CACHE)/chat_eval2 --out bench/results-crossenc-blind.json
	$(VENV)/bin/python bench/secrets.py --json > bench/results-secrets.json
	$(VENV)/bin/openmemory bench near-duplicates --out bench/results-near-duplicates.json
	$(VENV)/bin/openmemory bench near-duplicates --held-out --out bench/results-near-duplicates-heldout.json
	$(VENV)/bin/openmemory bench consolidate --memories 5000 --out bench/results-consolidate.json
	$(VENV)/bin/openmemory bench load --clients 50 --seconds 60 --out bench/results-load.json
