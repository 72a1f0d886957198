#!/usr/bin/env bash
# Set up .venv and run the whole test suite (lint, unit/property tests, doctests, docs code).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k blocks`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/get-fashion-mnist.sh  # real data for the docs pages, notebooks and trainer tests
bash scripts/get-chromium.sh  # headless Chromium + chromedriver for the explorer's browser test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
