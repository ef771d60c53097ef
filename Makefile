# The same commands people and CI run. Everything lives in .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed
DEV := $(VENV)/.installed-dev
# the video extra where vpdq can be built (FFmpeg's development libraries, README: Video);
# without it the demo says it has no video part
VIDEO := $(shell pkg-config --exists libavcodec libavformat libavutil libswscale 2>/dev/null && echo '[video]')

.PHONY: demo review-demo screenshots test lint format bench constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --constraint constraints.txt --editable ".$(VIDEO)"
	touch $@

$(DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --constraint constraints.txt --editable ".[dev]"
	touch $@ $(RUNTIME)

## demo: install, generate a benign corpus and demo bank in ./demo, scan it, show what was found
demo: $(RUNTIME)
	$(BIN)/hashguard demo --dir demo

## review-demo: the demo, then the review UI on http://127.0.0.1:8080/ui/login with demo accounts (Ctrl-C stops)
review-demo: $(RUNTIME)
	$(BIN)/hashguard demo --dir demo --serve

## screenshots: docs/img/review-*.png of the review UI on the demo's cases, taken in Debian's chromium
screenshots: $(DEV)
	$(BIN)/python docs/screenshots.py

## test: the whole suite, on SQLite and on a throwaway PostgreSQL from the local binaries
test: $(DEV)
	$(BIN)/pytest -n 2 --dist loadfile -m 'not serial and not ray'
	$(BIN)/pytest -m 'serial or ray'   # ray: a 2-CPU Ray cluster needs both cores

## lint: formatting, lint rules, strict typing
lint: $(DEV)
	$(BIN)/ruff format --check src tests bench docs/screenshots.py
	$(BIN)/ruff check src tests bench docs/screenshots.py
	$(BIN)/mypy src bench docs/screenshots.py

format: $(DEV)
	$(BIN)/ruff format src tests bench docs/screenshots.py
	$(BIN)/ruff check --fix src tests bench docs/screenshots.py

## bench: throughput against HMA's path and list import, measured in one run (BENCH_SCALE=full for the large corpus)
bench: $(DEV)
	$(BIN)/python -m bench

## constraints: re-pin constraints.txt from a fresh venv with the newest allowed versions
constraints:
	rm -rf build/constraints-venv && $(PYTHON) -m venv build/constraints-venv
	build/constraints-venv/bin/pip install --quiet --editable ".[dev]"
	{ sed -n '1,3p' constraints.txt; build/constraints-venv/bin/pip freeze --exclude-editable | grep -v '^-e'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf build/constraints-venv

clean:
	rm -rf $(VENV) demo bench/out .pytest_cache .mypy_cache .ruff_cache .hypothesis
