# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: env demo test test-core test-vllm test-lerobot lint bench

env:
	@bash scripts/setup_env.sh $(VENV) requirements/ci.txt $(PYTHON)

demo: env
	$(BIN)/lerobot-keyframes demo

# All tiers: the main suite, then vLLM (CPU build) and lerobot 0.6.1 conformance in their own venvs.
test: test-core test-vllm test-lerobot

test-core: env
	$(BIN)/ruff check lerobot_keyframes tests examples benchmarks hub_scripts
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

test-vllm: env
	bash scripts/vllm_tier.sh

test-lerobot: env
	bash scripts/lerobot_tier.sh

lint: env
	$(BIN)/ruff check .

bench: env
	$(BIN)/python benchmarks/run_all.py
