#!/usr/bin/env bash
# Create ./.venv with vaekit (editable) and its extras: VAEKIT_EXTRAS, default dev,examples,bench
# (tests, examples, benchmark peers); the Quickstart asks only for examples.
# Idempotent: a stamp records what was installed; re-running with nothing changed is instant.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# torch/torchvision pin used on our machines (x86_64, Python 3.11); override for others, e.g.
#   VAEKIT_TORCH="torch torchvision" bash scripts/setup.sh
VAEKIT_TORCH=${VAEKIT_TORCH:-"torch==2.14.1 torchvision==0.29.1"}
VAEKIT_EXTRAS=${VAEKIT_EXTRAS:-dev,examples,bench}

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.vaekit-stamp
want=$( (cat pyproject.toml scripts/setup.sh; echo "$VAEKIT_TORCH $VAEKIT_EXTRAS") | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] .venv is up to date"
  exit 0
fi
echo "[setup] installing $VAEKIT_TORCH and vaekit[$VAEKIT_EXTRAS] (first run: a few minutes)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet --disable-pip-version-check $VAEKIT_TORCH
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$VAEKIT_EXTRAS]"
echo "$want" > "$stamp"
echo "[setup] done"
