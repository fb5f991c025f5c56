# credly-ops — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# one stamp per kind of install, named by pyproject.toml's checksum: an edit reinstalls
SUM        := $(shell cksum < pyproject.toml | cut -d' ' -f1)
RUN_STAMP  := $(VENV)/.installed-run-$(SUM)
TEST_STAMP := $(VENV)/.installed-test-$(SUM)
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: run test lint bench demo clean

# what running needs, and nothing else (no test tools)
$(RUN_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "credly-ops needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@rm -f $(VENV)/.installed-run-* $(VENV)/.installed-[0-9]*
	@touch $@

# and what testing needs on top: pytest, Playwright, ruff, mypy…
$(TEST_STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-test-*
	@touch $@

## run: set up (run dependencies only), build the demo world if absent, serve on 127.0.0.1
## (serve.py is `streamlit run streamlit_app.py` with the first paint's imports warmed up)
run: $(RUN_STAMP)
	$(BIN)/credly-ops demo --if-absent
	$(BIN)/python serve.py --server.address $(HOST) --server.port $(PORT)

## test: set up (everything), lint, and the whole test suite (browser tests when Chromium is present)
test: $(TEST_STAMP) lint
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: the benchmarks, each printing JSON (the first-paint one drives Chromium: test deps)
bench: $(TEST_STAMP)
	@for script in benchmarks/bench_*.py; do echo "# $$script"; $(BIN)/python $$script || exit 1; done

demo: $(RUN_STAMP)
	$(BIN)/credly-ops demo --fresh

clean:
	rm -rf $(VENV) data/*.duckdb data/*.duckdb.wal data/demo_world.json data/demo_credly_journal.jsonl data/demo_skilljar_journal.jsonl
