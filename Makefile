# HyperSentry — two commands for a newcomer: `make run` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Typed parts checked by mypy (services, selectors, pure modules, contracts).
MYPY_PATHS ?= kernel execution/outcomes.py execution/answers.py hypersentry/celery.py hypersentry/asgi.py \
	hypersentry/management/commands/healthcheck.py execution/metrics.py \
	alpha/engine alpha/gates.py alpha/readings.py alpha/services.py alpha/selectors.py \
	execution/risk.py execution/userfeed.py execution/pnl.py execution/selectors.py execution/services \
	markets/features.py markets/quality.py markets/normalize.py markets/selectors.py markets/services.py \
	markets/hotstate.py markets/universe.py accounts/services accounts/selectors.py accounts/crypto.py accounts/siwe_rules.py

.PHONY: run run-split test chaos lint typecheck pytest bench venv venv-dev system-deps migrate clean help

help:
	@echo "make run    - install what is missing and start everything on http://$(HOST):$(PORT)"
	@echo "make run-split - the split topology (docker-compose.yml's services, from the Procfile) without Docker"
	@echo "make test   - lint, type-check and run the whole test suite (real PostgreSQL + Redis), chaos suite included"
	@echo "make chaos  - only the chaos suite: the split topology as processes, one fault at a time"
	@echo "make bench  - run the benchmarks in bench/"

venv:
	@bash scripts/ensure-venv.sh requirements.txt

venv-dev:
	@bash scripts/ensure-venv.sh requirements-dev.txt

system-deps:
	@bash scripts/ensure-system-deps.sh

migrate: venv
	@$(PY) manage.py migrate --noinput -v0

run: venv migrate
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

# Local PostgreSQL + Redis in var/split/ unless DATABASE_URL / REDIS_URL name servers you run.
run-split: venv-dev
	@bash scripts/ensure-system-deps.sh --no-browser
	$(PY) -m deploy.split run

lint: venv-dev
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports --no-cache

typecheck: venv-dev
	.venv/bin/mypy $(MYPY_PATHS)

pytest: venv-dev system-deps
	$(PY) -m pytest

test: lint typecheck pytest

# Part of `make test` too; figures land in test-artifacts/chaos.json (and are recorded in docs/runbooks.md).
chaos: venv-dev system-deps
	$(PY) -m pytest -p no:cacheprovider tests/chaos -s

# Every benchmark runs; the target fails at the end if any missed its goal (each prints figure, baseline, ratio).
bench: venv-dev system-deps
	@failed=""; for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "benchmarks that missed their goal:$$failed"; exit 1; fi

clean:
	rm -rf .venv var staticfiles test-artifacts .pytest_cache .mypy_cache .ruff_cache
