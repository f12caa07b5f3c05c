#!/usr/bin/env bash
# Make headless Chromium and its WebDriver available for the review browser test (tests/test_review.py).
# Exit 0: both present (installed from Debian's `chromium` and `chromium-driver` when missing and root).
# Exit 3: missing and not root (the test skips with this script's message).
set -euo pipefail
have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
if have; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium/chromedriver missing and not root with apt-get: install them (sudo apt-get install -y chromium chromium-driver)" >&2
  exit 3
fi
echo "[ensure_chromium] apt-get install -y chromium chromium-driver" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || {
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
}
have || { echo "chromium/chromedriver still missing after apt-get install" >&2; exit 1; }
