# make demo : install into .venv and run the job on the built-in sample (local Ray)
# make test : install into .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DOCS ?= 6000
DEMO_SHARDS ?= 8

.PHONY: install demo test test-heavy test-fast lint format bench clean cluster-up cluster-down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -c "import fasttext; assert hasattr(fasttext, 'train_supervised'), 'fasttext was replaced by a predict-only build'"
	$(BIN)/dedupe-at-scale compile
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/dedupe-at-scale generate --docs $(DEMO_DOCS) --shards $(DEMO_SHARDS) --output demo-input
	$(BIN)/dedupe-at-scale run --input demo-input --output demo-output --config jobs/demo.yaml --overwrite

# The report's browser test drives Debian's Chromium through Playwright (a
# browser download by Playwright cannot work without network): install it
# when missing, as root or through sudo.
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	@echo "installing Debian's chromium for the report's browser test"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null

# pytest exits 5 when it collected no tests: treat that as a failure too.
# Variants that repeat a path the suite already takes are marked heavy
# (tests/conftest.py, HEAVY) and run by `make test-heavy`.
#
# Two pytest workers (pytest-xdist), a test file each at a time: most tests
# wait on Ray starting, on subprocesses and on the servers, so two on two
# cores beat one and three (19 and 16 minutes against 13 to 15.5, when the
# suite was smaller); four overloaded a 2-core machine (load average 35,
# tests failing on timeouts).
# TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: install $(CHROMIUM)
	@$(BIN)/python -m pytest -q -p no:cacheprovider -m "not heavy" --durations=40 \
	  -n $(TEST_WORKERS) --dist loadfile; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

test-heavy: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m heavy

test-fast: install
	$(BIN)/python -m pytest -q -m "not ray"

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# A head + 2 worker nodes on this machine (cluster/README.md); WORKERS=N to change.
WORKERS ?= 2
cluster-up: install
	RAY=$(BIN)/ray PYTHON=$(BIN)/python cluster/local/start.sh --workers $(WORKERS)

cluster-down:
	RAY=$(BIN)/ray cluster/local/stop.sh

clean:
	rm -rf $(VENV) demo-input demo-output demo-output-cluster .pytest_cache .ray-local
	rm -rf chat-input chat-output curated curated-urls capped evals pref-input pref-output reward-input reward-output sft-input sft-output sample first second scaling mixed  # the README's examples
