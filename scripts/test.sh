#!/usr/bin/env bash
# Runs every test: unit, integration (golden files, backprop equivalences, bad input,
# relaxation), doctests and the examples' builds. Installs libtorch on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo test --release "$@"
