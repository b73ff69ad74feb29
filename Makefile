# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-scale test-drop-mode test-readme lint typecheck unit clean bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "rollbot needs Python 3.11 or newer (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo

# Tests are isolated (a database per test, port 0 everywhere), and most of their time is spent
# waiting on PostgreSQL, child processes and sockets, not computing: two workers per core (four on
# two cores) take 205 s where one per core took 278 s, with nothing gained past that.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(2 * (os.cpu_count() or 1))')
test: $(STAMP) lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not scale and not readme"

# The benchmark harness at a tiny scale (every scenario, the realistic-size one included): a
# minute of servers and CLI round trips, so CI runs it apart from `make test`.
test-scale: $(STAMP)
	$(BIN)/pytest -m scale

# The safety tests again with ROLLBOT_DROP_MODE=drop (the suite itself runs in quarantine mode).
DROP_MODE_TESTS = tests/db/test_safety.py tests/db/test_rollback.py tests/db/test_restore.py \
	tests/db/test_cascade.py tests/db/test_transaction.py
test-drop-mode: $(STAMP)
	ROLLBOT_TEST_DROP_MODE=drop $(BIN)/pytest -n $(TEST_WORKERS) $(DROP_MODE_TESTS)

# Every command of the README run as written on a fresh sample: many subprocesses, so apart.
test-readme: $(STAMP)
	$(BIN)/pytest -m readme tests/readme

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
