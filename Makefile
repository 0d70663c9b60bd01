# make setup     - install system packages (Debian 12) and the project's .venv, only what is missing
# make test      - setup, lint, then the whole test suite (PYTEST_ARGS to narrow it, e.g. PYTEST_ARGS=tests/test_hub.py):
#                  two workers, then the `timed` tests alone (scripts/run-tests.sh; TEST_WORKERS=1 for one)
# make test-fast - the tests that start no process (marker "not real"): seconds, no lint, no setup
# make lint      - ruff over the repository, mypy over edgeagent/
# make demo      - setup, then a simulated camera, a local broker and the agent (scripts/demo.sh)
# make bench     - setup, then the benchmarks (python -m benchmarks)

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= tests

.PHONY: setup test test-fast lint demo bench clean

setup:
	@scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(PY) -m mypy edgeagent

test: setup lint
	scripts/run-tests.sh $(PYTEST_ARGS)

test-fast:
	$(PY) -m pytest -q -p no:cacheprovider -m "not real" $(PYTEST_ARGS)

demo: setup
	scripts/demo.sh

bench: setup
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info demo-state
