#!/usr/bin/env bash
# Trains the MNIST example for every (error type, loss) the README reports and prints the
# README's results table (final test accuracy, median seconds per epoch, command).
# Usage: scripts/mnist_table.sh [--fashion DIR]   (Fashion-MNIST rows need the directory,
# e.g. /usr/share/datasets/fashion-mnist after `apt-get install dataset-fashion-mnist`)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet --example mnist
BIN=${CARGO_TARGET_DIR:-target}/release/examples/mnist
FASHION=""
if [ "${1:-}" = "--fashion" ]; then FASHION=$2; fi
OUT=$(mktemp -d)

row() { # dataset-label epochs args...
  local label=$1 epochs=$2; shift 2
  local args="$* --epochs $epochs --threads 2 --seed 0"
  if ! $BIN $args > "$OUT/run.txt" 2> "$OUT/err.txt"; then
    echo "| $label | \`$args\` | failed: $(tail -1 "$OUT/err.txt") | |"
    return
  fi
  local acc secs
  acc=$(tail -1 "$OUT/run.txt" | sed 's/final test accuracy: //')
  secs=$(grep '^epoch' "$OUT/run.txt" | sed -E 's/.* ([0-9.]+)s( .*)?$/\1/' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "| $label | \`$args\` | $acc | $secs |"
}

echo "| data | example arguments | final test accuracy | s/epoch (median) |"
echo "|---|---|---:|---:|"
for args in "--err-type exact" "--err-type fixedpred" "--err-type strict" "--err-type strict --on-diverge backtrack" \
            "--err-type exact --loss mse" "--err-type fixedpred --loss mse" "--err-type strict --loss mse"; do
  row "bundled (8k/2k)" 20 $args
done
if [ -n "$FASHION" ]; then
  for args in "--err-type exact" "--err-type fixedpred" "--err-type strict --on-diverge backtrack" \
              "--err-type exact --loss mse" "--err-type strict --loss mse"; do
    row "Fashion (60k/10k)" 2 --data-dir "$FASHION" $args
  done
fi
rm -rf "$OUT"
