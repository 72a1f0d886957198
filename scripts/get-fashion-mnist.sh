#!/usr/bin/env bash
# Make sure Fashion-MNIST is on disk: the Debian package dataset-fashion-mnist puts it under
# /usr/share/datasets/fashion-mnist/. Needs root (or sudo) only when it is missing.
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ] && [ -f "$dir/t10k-images-idx3-ubyte.gz" ]; then
  echo "[data] Fashion-MNIST found in $dir"
  exit 0
fi
source "$(dirname "$0")/_apt.sh"
apt_install data dataset-fashion-mnist || exit 1
echo "[data] Fashion-MNIST installed in $dir"
