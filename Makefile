# The two commands of the README, and the pieces they are made of.
# Needs only Python 3.11+ (python3 on PATH, or PYTHON=/path/to/python3.11) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# pytest-xdist workers for `make test` (2: the 2-core CI machine); 0 runs the suite in one
# process, auto one worker per core.
TEST_WORKERS ?= 2

.PHONY: demo test lint typecheck unit bench clean

demo: $(STAMP)  ## import a 5,000-contact sandbox book into a temporary SQLite database
	$(BIN)/contact-import demo

test: lint typecheck  ## every check: lint, types, then the whole test suite
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)  ## mypy --strict over src, tests and bench (pyproject's files)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)
	$(BIN)/python bench/import_throughput.py

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "contact-import needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,sandbox]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
