#!/usr/bin/env bash
# The main job: set up .venv, fetch Fashion-MNIST (Debian package), train the fmnist32 recipe
# with examples/train.py for a wall-clock budget, then write pictures, metrics.json and
# summary.md to runs/<date>-quickstart/. Under 10 minutes on 2 CPU cores from a fresh machine.
# Extra arguments go to the trainer and win over the defaults below, e.g.
#   bash scripts/quickstart.sh --minutes 1
#   bash scripts/quickstart.sh --minutes 30 --eval-limit 10000 --fid-samples 5000
set -euo pipefail
cd "$(dirname "$0")/.."
VAEKIT_EXTRAS=examples bash scripts/setup.sh  # the trainer's needs only
bash scripts/get-fashion-mnist.sh
# The recipe trains for 30 epochs; here a 3-minute budget, a 5% validation slice, and smaller
# evaluation sets keep the final metrics (and the one-time training of the FID classifier,
# cached in ~/.cache/vaekit) to about two minutes on 2 cores. After training, a LatentDiffusion
# prior is fitted on the latents (about 2.5 min): summary.md puts its samples next to N(0, I)'s
# and the reconstructions. Later options win (--fit-prior gmm:10 fits in seconds instead).
exec .venv/bin/python examples/train.py --config examples/recipes/fmnist32.json --name quickstart \
  --minutes 3 --val-fraction 0.05 --eval-limit 2000 --iwae-images 200 --fid-samples 2000 \
  --fid-train-images 20000 --fit-prior diffusion "$@"
