#!/usr/bin/env bash
# Make sure headless Chromium and its WebDriver are on disk for the explorer's browser test
# (tests/test_explore_browser.py): the Debian packages chromium and chromium-driver put them at
# /usr/bin/chromium and /usr/bin/chromedriver. Needs root (or sudo) only when one is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "[chromium] found /usr/bin/chromium and /usr/bin/chromedriver"
  exit 0
fi
source "$(dirname "$0")/_apt.sh"
apt_install chromium chromium chromium-driver || exit 1
echo "[chromium] installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
