#!/usr/bin/env bash
# The main job: set up .venv, fetch Fashion-MNIST (Debian package), train the fmnist32 preset
# and write samples/reconstructions to runs/<date>-quickstart/. Extra arguments go to the
# trainer, e.g. `bash scripts/quickstart.sh --minutes 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/get-fashion-mnist.sh
exec .venv/bin/python examples/quickstart.py "$@"
