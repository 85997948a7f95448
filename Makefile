# Two commands on a fresh machine: `make serve` and `make test`.
# Each sets up .venv (once; later runs skip it) and prepares the default model.

VENV      ?= .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.wrapserve-installed
MODEL     ?= smollm2-135m-instruct
PYTEST_ARGS ?=
# make bench BENCH_ARGS=--quick (see python -m benchmarks.run --help)
BENCH_ARGS ?=

.PHONY: serve test lint bench setup model clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) ./scripts/bootstrap.sh
	touch $@

model: setup
	$(BIN)/wrapserve models prepare $(MODEL)

serve: model
	$(BIN)/wrapserve serve

test: model
	PYTHONPATH=$(VENV)/test-extras $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check server wrappers models tests benchmarks
	$(BIN)/ruff format --check server wrappers models tests benchmarks
	$(BIN)/mypy

bench: model
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
