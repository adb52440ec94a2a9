# One entry point for people and CI. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

## Verify the shipped sample tickets with the default (local) panel into out/verdicts.jsonl.
demo: $(STAMP)
	mkdir -p out
	$(BIN)/judge verify datasets/tickets.jsonl --rubric support-resolution \
		--db sqlite:///out/outcome-judge.db --out out/verdicts.jsonl

## Lint, type-check and run the whole test suite (PostgreSQL tests run when OUTCOME_JUDGE_TEST_PG_URL is set),
## in two pytest workers (most of the suite waits on processes, servers and the database).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mkdocs build --strict --quiet --site-dir $$(mktemp -d)
	$(BIN)/pytest -n 2 --durations=25

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## Run the benchmarks (each prints ratios against a baseline measured in the same run).
## bench/fault_server.py is a tool (a fault-injecting model server), not a benchmark.
## bench/bench_partitions.py is left out: it loads 10M rows (about 17 minutes, 12 GB); run it alone.
bench: $(STAMP)
	for f in bench/bench_*.py bench/replay_table.py; do \
		case $$f in bench/bench_partitions.py) continue;; esac; \
		$(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
