#!/usr/bin/env bash
# Create ./.venv with vaekit (editable) and its dev, examples and bench extras.
# Idempotent: a stamp records what was installed; re-running with nothing changed is instant.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# torch/torchvision pin used on our machines (x86_64, Python 3.11); override for others, e.g.
#   VAEKIT_TORCH="torch torchvision" bash scripts/setup.sh
VAEKIT_TORCH=${VAEKIT_TORCH:-"torch==2.14.1 torchvision==0.29.1"}

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.vaekit-stamp
want=$( (cat pyproject.toml scripts/setup.sh; echo "$VAEKIT_TORCH") | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] .venv is up to date"
  exit 0
fi
echo "[setup] installing $VAEKIT_TORCH and vaekit[dev,examples,bench] (first run: a few minutes)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet --disable-pip-version-check $VAEKIT_TORCH
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,examples,bench]"
echo "$want" > "$stamp"
echo "[setup] done"
