#!/usr/bin/env bash
# Create (or reuse) a virtualenv with everything lerobot_keyframes needs, system FFmpeg included.
# Usage: scripts/setup_env.sh VENV_DIR REQUIREMENTS_FILE [PYTHON]
# The venv is reused while REQUIREMENTS_FILE and pyproject.toml are unchanged (a stamp holds their hash);
# when they change, the same venv is brought up to date.
set -euo pipefail
venv=${1:?venv dir}
reqs=${2:?requirements file}
python=${3:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/venv_disk.sh
source "$here/scripts/venv_disk.sh"

# torchcodec loads FFmpeg's shared libraries from the system; the ffmpeg CLI backend needs the binary.
if ! command -v ffmpeg >/dev/null 2>&1 || ! ldconfig -p 2>/dev/null | grep libavcodec >/dev/null; then  # not grep -q: it exits early, ldconfig gets SIGPIPE and pipefail fails the check
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing FFmpeg (apt-get install -y ffmpeg)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "[setup] FFmpeg is missing: install it (e.g. 'sudo apt-get install -y ffmpeg' or 'conda install ffmpeg') and re-run." >&2
    exit 1
  fi
fi

stamp_value=$(cat "$here/$reqs" "$here/pyproject.toml" | sha256sum | cut -c1-16)
stamp="$venv/.lerobot_keyframes-stamp"
if venv_ready; then
  exit 0
fi
if [ -x "$venv/bin/python" ]; then
  echo "[setup] updating virtualenv $venv from $reqs"
else
  require_free_disk "$(dirname "$(realpath -m "$venv")")" 7 "the virtualenv $venv"
  echo "[setup] creating virtualenv $venv from $reqs (first time: a few minutes)"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
"$venv/bin/python" -m pip install -q -r "$here/$reqs"
"$venv/bin/python" -m pip install -q --no-deps -e "$here"
echo "$stamp_value" > "$stamp"
