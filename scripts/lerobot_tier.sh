#!/usr/bin/env bash
# Conformance tier: create (or reuse) a Python 3.12 virtualenv with lerobot[dataset]==0.6.1 and
# lerobot_keyframes installed side by side, then run `pytest tests/conformance` in it.
# Usage: scripts/lerobot_tier.sh [extra pytest args]
#
# The venv lives in ${LEROBOT_KEYFRAMES_CACHE:-$HOME/.cache/lerobot_keyframes}/venvs/lerobot-<hash>,
# keyed by requirements/lerobot.txt + pyproject.toml + the interpreter version, and is reused while they
# are unchanged (a stamp file written last holds the hash). lerobot_keyframes goes in WITH its
# dependencies in the same pip resolve as lerobot: a successful install (and `pip check`) proves our
# ranges allow lerobot's pins. pip's constraint file on these machines (/etc/xdg/pip/constraints.txt,
# torch<=2.14.1) applies as usual.
# Inside this script a missing lerobot is an error, never a skip. Exit status is pytest's.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/venv_disk.sh
source "$here/scripts/venv_disk.sh"
python=${LEROBOT_TIER_PYTHON:-}
if [ -z "$python" ]; then
  if command -v pyenv >/dev/null 2>&1 && [ -x "$(pyenv root)/versions/3.12.1/bin/python3.12" ]; then
    python="$(pyenv root)/versions/3.12.1/bin/python3.12"
  elif command -v python3.12 >/dev/null 2>&1; then
    python=python3.12
  else
    echo "[lerobot-tier] Python 3.12 not found (lerobot needs >= 3.12): install it or set LEROBOT_TIER_PYTHON" >&2
    exit 1
  fi
fi
reqs="$here/requirements/lerobot.txt"
cache=${LEROBOT_KEYFRAMES_CACHE:-$HOME/.cache/lerobot_keyframes}
stamp_value=$( (cat "$reqs" "$here/pyproject.toml"; "$python" -c 'import sys; print(sys.version_info[:2])') \
  | sha256sum | cut -c1-16)
venv="$cache/venvs/lerobot-$stamp_value"
stamp="$venv/.lerobot_keyframes-stamp"
mkdir -p "$cache/venvs"

build_venv() {
  echo "[lerobot-tier] creating $venv (first time: a few minutes, ~5 GB)"
  rm -rf "$venv"
  prune_tier_venvs "$cache" lerobot "$venv"   # older tier venvs (another hash) are ~5 GB each
  require_free_disk "$cache/venvs" 6 "the lerobot tier virtualenv"
  "$python" -m venv "$venv"
  local pip=("$venv/bin/python" -m pip)
  "${pip[@]}" install -q --upgrade pip
  # One resolve for lerobot, the test tools and our package with its dependencies.
  "${pip[@]}" install -q -r "$reqs" -e "$here"
  "${pip[@]}" check
  "$venv/bin/python" -c 'import lerobot, datasets, huggingface_hub, lerobot_keyframes; print("[lerobot-tier] lerobot", lerobot.__version__, "datasets", datasets.__version__, "huggingface_hub", huggingface_hub.__version__)'
  echo "$stamp_value" > "$stamp"
}

use_tier_venv "$cache/venvs/.lerobot-$stamp_value.lock"   # builds it when missing or outdated
# The editable install points at the checkout it was made from; re-point it when run from another clone.
if ! "$venv/bin/python" -c 'import lerobot_keyframes, os, sys; sys.exit(os.path.dirname(os.path.dirname(os.path.abspath(lerobot_keyframes.__file__))) != sys.argv[1])' "$here" 2>/dev/null; then
  "$venv/bin/python" -m pip install -q --no-deps -e "$here"
fi

# cheap presence check here; tests/conformance/conftest.py turns a broken import into an error (never a skip)
"$venv/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("lerobot") is None)' \
  || { echo "[lerobot-tier] lerobot is not installed in $venv: delete it and re-run" >&2; exit 1; }
cd "$here"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
export LEROBOT_KEYFRAMES_LEROBOT_TIER=1   # tests/conformance/conftest.py: a missing lerobot is an error here
exec "$venv/bin/python" -m pytest -q -ra -p no:cacheprovider tests/conformance "$@"
