# Sourced by setup_env.sh and the tier scripts. Each virtualenv holds a CUDA build of torch (5-7 GB), so a
# full disk is the likeliest way for `make test` to fail on a fresh machine: check before building, keep one
# venv per tier in the cache, and never remove one a test run is using.

# require_free_disk DIR GB WHAT: exit 1 with an actionable message when DIR's filesystem has < GB free.
require_free_disk() {
  local dir=$1 need_gb=$2 what=$3 probe free_kb
  probe=$dir
  while [ ! -d "$probe" ]; do probe=$(dirname "$probe"); done
  free_kb=$(df -Pk "$probe" | awk 'NR==2 {print $4}')
  if [ "$free_kb" -lt $((need_gb * 1024 * 1024)) ]; then
    echo "[setup] not enough disk for $what: it needs about ${need_gb} GB in $probe, which has" \
      "$((free_kb / 1024)) MB free. Free some space (old virtualenvs under" \
      "${LEROBOT_KEYFRAMES_CACHE:-$HOME/.cache/lerobot_keyframes}/venvs, old clones) and re-run." >&2
    exit 1
  fi
}

# prune_tier_venvs CACHE NAME KEEP: remove CACHE/venvs/NAME-* other than KEEP (made for another
# pyproject/requirements hash, so never used again). One that another run holds its lock on is left alone.
prune_tier_venvs() {
  local cache=$1 name=$2 keep=$3 old lock
  for old in "$cache"/venvs/"$name"-*; do
    [ -d "$old" ] && [ "$old" != "$keep" ] || continue
    lock="$cache/venvs/.$(basename "$old").lock"
    if ( exec 8>"$lock"; flock -n 8 ); then
      echo "[$name-tier] removing the outdated $old"
      rm -rf "$old" "$lock"
    fi
  done
}

# use_tier_venv LOCK: with $venv, $stamp and $stamp_value set and build_venv defined by the caller, build the
# venv unless its stamp is current, and leave fd 9 holding LOCK shared. Test runs hold it shared (pytest
# inherits fd 9), a builder exclusive: one builder at a time, and prune_tier_venvs never removes a venv in use.
use_tier_venv() {
  exec 9>"$1"
  flock -s 9
  if ! venv_ready; then
    flock 9
    venv_ready || build_venv
    flock -s 9
  fi
}

# venv_ready: $venv has a python and its stamp file $stamp holds $stamp_value (built for these requirements).
venv_ready() { [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_value" ]; }
