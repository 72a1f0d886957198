#!/usr/bin/env bash
# Create ./.venv with vaekit (editable) and its extras: VAEKIT_EXTRAS, default
# dev,examples,bench,explore,lightning (tests, examples, benchmark peers, the explorer, the
# Lightning/Hydra/TensorBoard example); the Quickstart asks only for examples.
# Idempotent: a stamp records what was installed; re-running with nothing changed is instant.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# torch/torchvision pin used on our machines (x86_64, Python 3.11); override for others, e.g.
#   VAEKIT_TORCH="torch torchvision" bash scripts/setup.sh
VAEKIT_TORCH=${VAEKIT_TORCH:-"torch==2.14.1 torchvision==0.29.1"}
VAEKIT_EXTRAS=${VAEKIT_EXTRAS:-dev,examples,bench,explore,lightning}

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
# pip's and setuptools' chatter goes to a log, shown only when a step fails
log=.venv/setup.log
: > "$log"
pip_install() {
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" >> "$log" 2>&1; then
    cat "$log" >&2
    echo "[setup] failed: pip install $* (full log above, also in $log)" >&2
    exit 1
  fi
}
pip_install --upgrade pip
# shellcheck disable=SC2086
pip_install $VAEKIT_TORCH
pip_install -e ".[$VAEKIT_EXTRAS]"
echo "$want" > "$stamp"
echo "[setup] done"
