# Every target sets up .venv first (only when missing or older than pyproject.toml).
PY        := .venv/bin/python
VENV_STAMP := .venv/.installed
PYTEST_ARGS ?=

.PHONY: setup services train test test-fast test-gpu bench bench-gpu sweep sweep-workers ui clean

setup: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(VENV_STAMP)

## Train the default CRNN on the built-in synthetic data, logged to ./mlflow.db
train: setup
	$(PY) -m genre_lab.train $(ARGS)

## PostgreSQL server binaries for tests/tracking/test_scaleout.py (Debian's `postgresql`; installed
## only when missing; the test starts its own throwaway server, never the system one).
services:
	@if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else echo "services: no apt-get here; install PostgreSQL's server (initdb, pg_ctl) for tests/tracking/test_scaleout.py"; fi

## The whole test suite (what CI runs)
test: setup services
	$(PY) -m pytest -q $(PYTEST_ARGS)

## Only the fast tests (no end-to-end training)
test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

## The GPU pass: the `gpu` tests (CUDA against the CPU); skipped on a machine without CUDA
test-gpu: setup
	$(PY) -m pytest -q -m gpu $(PYTEST_ARGS)

## Benchmarks (features, train, tag), logged to the MLflow experiment "benchmarks".
## `tag` needs real songs: Debian's music packages are installed here (never committed).
MUSIC_PKGS := wesnoth-1.16-music singularity-music
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
bench: setup
	dpkg -s $(MUSIC_PKGS) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(MUSIC_PKGS); }
	$(PY) -m genre_lab.bench $(ARGS)

## The GPU pass on a CUDA machine, from a fresh clone (creates .venv first): front ends on CUDA
## vs librosa, AMP training per model with its data-loading share, tagging; logged to MLflow
## `benchmarks`, then prints the GPU table of docs/benchmarks.md. Without CUDA it says so and skips those parts.
bench-gpu: setup
	$(PY) -m genre_lab.bench gpu $(ARGS)

## Optuna sweep: make sweep ARGS="sweep=crnn sweep.n_trials=20"
sweep: setup
	$(PY) -m genre_lab.sweep $(ARGS)

## N worker processes on one study: make sweep-workers N=2 ARGS="sweep=crnn"
## (distinct sweep.worker_id each, so their random start-up draws differ)
N ?= 2
sweep-workers: setup
	for i in $$(seq $(N)); do $(PY) -m genre_lab.sweep $(ARGS) sweep.worker_id=$$i & done; wait

## MLflow UI on http://127.0.0.1:5000 (one worker)
ui: setup
	@echo 'In the UI open the experiment and click "Headline view" in its banner (runs table, scores as columns, their charts)'
	.venv/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000 --workers 1

clean:
	rm -rf outputs multirun .pytest_cache
