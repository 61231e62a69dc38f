#!/usr/bin/env bash
# Trains the bundled MNIST example (installs libtorch on first use). Arguments go to the
# example: scripts/mnist.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release --quiet --example mnist -- "$@"
