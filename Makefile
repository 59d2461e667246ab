# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv on first use and reinstall when pyproject.toml changes. `make demo`
# installs the default dependencies only; `make test` adds the optional extras whose tests
# would otherwise skip (silero, and local-ai: ~350 MB of offline speech models, GPL parts
# included), so CI runs them.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test test-fast lint system-deps bench-micro bench-vad clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(DEMO_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,silero,local-ai]'
	@touch $(TEST_STAMP)

# ruff (rules in pyproject.toml), then mypy: --strict on the engine, the default level elsewhere.
# `make test` runs it first: a finding fails the run before any test starts.
LINT = $(BIN)/ruff check . && $(BIN)/mypy --strict engine && $(BIN)/mypy control_plane callagent bench

demo: $(DEMO_STAMP)
	$(BIN)/callagent demo

# espeak-ng, sox and chromium (scripts/system-deps installs them as root, else says how).
system-deps:
	@sh scripts/system-deps

lint: $(DEMO_STAMP)
	$(LINT)

# The suite on PYTEST_WORKERS processes (pytest-xdist; `make test PYTEST_WORKERS=0` runs it in this
# one), each test handed to the next free worker.
PYTEST_WORKERS ?= 2
XDIST = -n $(PYTEST_WORKERS) --dist loadgroup

test: $(TEST_STAMP) system-deps
	$(LINT)
	CALLAGENT_NO_SKIPS=1 $(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

# The inner loop: everything but the tests marked slow (seconds each) or e2e (whole system).
test-fast: $(TEST_STAMP) system-deps
	$(LINT)
	CALLAGENT_NO_SKIPS=1 $(BIN)/python -m pytest -q $(XDIST) -m "not slow and not e2e" $(PYTEST_ARGS)

bench-micro: $(DEMO_STAMP)
	$(BIN)/callagent bench micro

bench-vad: $(DEMO_STAMP)
	$(BIN)/callagent bench vad

clean:
	rm -rf $(VENV)
