# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: env demo test lint bench

env:
	@bash scripts/setup_env.sh $(VENV) requirements/ci.txt $(PYTHON)

demo: env
	$(BIN)/lerobot-keyframes demo

test: env
	$(BIN)/ruff check lerobot_keyframes tests examples benchmarks hub_scripts
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

lint: env
	$(BIN)/ruff check .

bench: env
	$(BIN)/python benchmarks/run_all.py
