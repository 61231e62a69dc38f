#!/usr/bin/env bash
# Reproduces the README's MLP tables: skip connections (examples/resnet), depth with plain
# chains (examples/depth) and depth with residual blocks (examples/depth --skip), on the
# bundled MNIST subset and on Fashion-MNIST, with the examples' default settings (the
# tables' settings), 3 seeds each. Each run writes a CSV, a Markdown table and a PNG into
# runs/resnet/, runs/depth/ or runs/depth-skip/ (mnist*, fashion-mnist*); the tables of each
# are collected in runs/resnet.md, runs/depth.md and runs/depth-skip.md with wall times.
# Wall times measured with one libtorch thread per run and two runs sharing 2 cores: resnet
# about 4 min per dataset, depth about 13 min, depth-skip about 35 min; the three can
# run at the same time in separate shells.
#
# Usage: scripts/tables.sh [resnet|depth|depth-skip|all] [FASHION_DIR]
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
for table in resnet depth depth-skip; do
  if [ "$WHICH" != all ] && [ "$WHICH" != "$table" ]; then continue; fi
  ex=${table%-skip}
  extra=(); suffix=""
  if [ "$table" = depth-skip ]; then extra=(--skip); suffix=-residual; fi
  : > "runs/$table.md"
  for dir in "${DIRS[@]}"; do
    if [ -z "$dir" ]; then args=("${extra[@]}"); stem=mnist; else args=("${extra[@]}" --data-dir "$dir"); stem=$(basename "$dir" | tr '[:upper:]' '[:lower:]'); fi
    start=$(date +%s)
    "$TARGET/release/examples/$ex" "${args[@]}" --out "runs/$table" --quiet
    end=$(date +%s)
    {
      echo "Command: \`cargo run --release --example $ex${args[*]:+ -- ${args[*]}}\` (wall time $((end - start)) s)"
      echo
      cat "runs/$table/$stem$suffix.md"
      echo
    } >> "runs/$table.md"
  done
  echo "tables written to runs/$table.md"
done
