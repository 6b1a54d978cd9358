# Two commands set everything up on a fresh machine: `make train` and `make test`.
# Each creates .venv and installs the package (editable, with the dev extra) when it is missing
# or older than pyproject.toml or constraints.txt, then runs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install --constraint constraints.txt
HYPOTHESIS_PROFILE ?= dev
PYTEST_WORKERS ?= 2

.PHONY: install test lint train bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# torch first and pinned, so no resolver step can reach for a newer build.
	$(PIP) torch==2.13.0
	$(PIP) --editable '.[dev]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -p no:cacheprovider

train: $(STAMP)
	$(BIN)/checked-rl train --preset default --log data/rl/ppo_cartpole_trainlog.json \
		--checkpoint data/rl/ppo_cartpole.pt

# Every benchmark twice: quiet, then with one busy process per core (--load).
bench: $(STAMP)
	$(PIP) --editable '.[dev,bench]'
	for script in env_throughput gae sessions ppo_cartpole; do \
		$(BIN)/python benchmarks/$$script.py || exit 1; \
		$(BIN)/python benchmarks/$$script.py --load || exit 1; \
	done

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

clean:
	rm -rf $(VENV) site .pytest_cache .ruff_cache .hypothesis
