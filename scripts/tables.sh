#!/usr/bin/env bash
# Reproduces the README's two MLP tables: skip connections (examples/resnet) and depth
# (examples/depth), on the bundled MNIST subset and on Fashion-MNIST, with the examples'
# default settings (the tables' settings), 3 seeds each. Each run writes a CSV, a Markdown
# table and a PNG into runs/resnet/ or runs/depth/ (mnist.*, fashion-mnist.*); the tables
# of each example are collected in runs/resnet.md and runs/depth.md with wall times.
# On 2 shared cores (one libtorch thread per run): resnet about 10-15 min, depth about
# 25-35 min; `resnet` and `depth` can run at the same time in two shells.
#
# Usage: scripts/tables.sh [resnet|depth|all] [FASHION_DIR]
#   FASHION_DIR defaults to /usr/share/datasets/fashion-mnist
#   (Debian: `apt-get install dataset-fashion-mnist`); if it is missing, only MNIST runs.
# Long: run it in the background, e.g. `nohup scripts/tables.sh > runs/tables.log 2>&1 &`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
WHICH=${1:-all}
FASHION=${2:-/usr/share/datasets/fashion-mnist}
cargo build --release --quiet --example resnet --example depth
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p runs
DIRS=("")
if [ -d "$FASHION" ]; then
  DIRS+=("$FASHION")
else
  echo "tables.sh: $FASHION not found; Fashion-MNIST skipped" >&2
fi
for ex in resnet depth; do
  if [ "$WHICH" != all ] && [ "$WHICH" != "$ex" ]; then continue; fi
  : > "runs/$ex.md"
  for dir in "${DIRS[@]}"; do
    if [ -z "$dir" ]; then args=(); stem=mnist; else args=(--data-dir "$dir"); stem=$(basename "$dir" | tr '[:upper:]' '[:lower:]'); fi
    start=$(date +%s)
    "$TARGET/release/examples/$ex" "${args[@]}" --out "runs/$ex" --quiet
    end=$(date +%s)
    {
      echo "Command: \`cargo run --release --example $ex${args[*]:+ -- ${args[*]}}\` (wall time $((end - start)) s)"
      echo
      cat "runs/$ex/$stem.md"
      echo
    } >> "runs/$ex.md"
  done
  echo "tables written to runs/$ex.md"
done
