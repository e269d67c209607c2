# Two commands on a fresh machine: `make dev` runs it, `make test` tests it.
# Both create a virtualenv in .venv and install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test lint bench clean

dev: $(VENV)/.installed
	$(BIN)/healthscore dev

test: $(VENV)/.installed-bench
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check worker tests bench
	$(BIN)/mypy

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
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
