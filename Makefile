# credly-ops — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: run test lint bench e2e demo clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "credly-ops needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

## run: set up, build the demo world if absent, and serve the app on 127.0.0.1
run: $(STAMP)
	$(BIN)/credly-ops demo --if-absent
	$(BIN)/streamlit run streamlit_app.py --server.address $(HOST) --server.port $(PORT)

## test: lint and the whole test suite (browser tests included when Chromium is present)
test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: the benchmarks, each printing JSON
bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do echo "# $$script"; $(BIN)/python $$script || exit 1; done

demo: $(STAMP)
	$(BIN)/credly-ops demo --fresh

clean:
	rm -rf $(VENV) data/*.duckdb data/*.duckdb.wal data/demo_world.json data/demo_credly_journal.jsonl
