#!/usr/bin/env bash
# Make sure Fashion-MNIST is on disk: the Debian package dataset-fashion-mnist puts it under
# /usr/share/datasets/fashion-mnist/. Needs root (or sudo) only when it is missing.
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ] && [ -f "$dir/t10k-images-idx3-ubyte.gz" ]; then
  echo "[data] Fashion-MNIST found in $dir"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "[data] Fashion-MNIST is missing and this is not root: run as root" \
         "'apt-get update && apt-get install -y dataset-fashion-mnist'" >&2
    exit 1
  fi
fi
echo "[data] installing the Debian package dataset-fashion-mnist"
log=$(mktemp)
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    dataset-fashion-mnist; } > "$log" 2>&1; then
  cat "$log" >&2
  echo "[data] failed to install dataset-fashion-mnist (apt output above)" >&2
  exit 1
fi
rm -f "$log"
echo "[data] Fashion-MNIST installed in $dir"
