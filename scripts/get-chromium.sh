#!/usr/bin/env bash
# Make sure headless Chromium and its WebDriver are on disk for the explorer's browser test
# (tests/test_explore_browser.py): the Debian packages chromium and chromium-driver put them at
# /usr/bin/chromium and /usr/bin/chromedriver. Needs root (or sudo) only when one is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "[chromium] found /usr/bin/chromium and /usr/bin/chromedriver"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "[chromium] chromium or chromedriver is missing and this is not root: run as root" \
         "'apt-get update && apt-get install -y chromium chromium-driver'" >&2
    exit 1
  fi
fi
echo "[chromium] installing the Debian packages chromium and chromium-driver"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
echo "[chromium] installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
