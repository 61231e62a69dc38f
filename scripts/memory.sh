#!/usr/bin/env bash
# Peak resident memory of one training call per mode, each mode in its own process.
#
# Runs `examples/bench.rs --memory MODE` (release) for backprop, exact, fixedpred,
# fixedpred_literal and strict (eta 0.1, n 20) on the seed's network (or --model), and prints
# a markdown table of:
#   * total peak RSS (VmHWM at the end of the process) and its ratio to backprop's;
#   * the increment over the post-setup baseline (VmHWM after building the model and batch
#     and one no-grad forward pass): peak - baseline, and its ratio to backprop's;
#   * the steady-state increment: the peak over calls 2..N above the RSS after call 1
#     (high-water mark reset through /proc/self/clear_refs), and its ratio.
#
# Usage: scripts/memory.sh [--iters 10] [--threads 2] [--device cpu|cuda] [--model seed|mlp:D]
#                          [--repeat 3] [--json-out FILE]
# With --repeat R each mode runs R times (separate processes) and the median is taken.
set -euo pipefail
cd "$(dirname "$0")/.."

ITERS=10 THREADS=2 DEVICE=cpu MODEL=seed REPEAT=3 JSON_OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --iters) ITERS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --json-out) JSON_OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

bash scripts/setup.sh
cargo build --release --example bench >&2
BIN=target/release/examples/bench
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3

MODES=(backprop exact fixedpred fixedpred_literal strict)
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT
for rep in $(seq "$REPEAT"); do
  for mode in "${MODES[@]}"; do
    "$BIN" --memory "$mode" --iters "$ITERS" --threads "$THREADS" --device "$DEVICE" --model "$MODEL" >> "$TMP"
  done
done

"$PY" - "$TMP" "$JSON_OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
modes = []
for r in rows:
    if r["mode"] not in modes:
        modes.append(r["mode"])
def med(mode, key):
    vals = [r[key] for r in rows if r["mode"] == mode and r[key] is not None]
    return statistics.median(vals) if vals else None
keys = ("setup_hwm_kb", "peak_hwm_kb", "increment_kb", "steady_increment_kb")
table = {m: {k: med(m, k) for k in keys} for m in modes}
base = table["backprop"]
r0 = rows[0]
print(f"model {r0['model']} | device {r0['device']} | threads {r0['threads']} | {r0['iters']} calls per process | "
      f"median of {len([r for r in rows if r['mode'] == 'backprop'])} processes per mode")
print()
print("| mode | baseline (MiB) | total peak (MiB) | ratio | increment (MiB) | ratio | steady increment (MiB) | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
def fmt(v):
    return "n/a" if v is None else f"{v / 1024:.1f}"
def ratio(v, b):
    return "n/a" if v is None or not b else f"{v / b:.2f}"
for m in modes:
    t = table[m]
    print(f"| {m} | {fmt(t['setup_hwm_kb'])} | {fmt(t['peak_hwm_kb'])} | {ratio(t['peak_hwm_kb'], base['peak_hwm_kb'])} | "
          f"{fmt(t['increment_kb'])} | {ratio(t['increment_kb'], base['increment_kb'])} | "
          f"{fmt(t['steady_increment_kb'])} | {ratio(t['steady_increment_kb'], base['steady_increment_kb'])} |")
if sys.argv[2]:
    with open(sys.argv[2], "w") as f:
        json.dump({"rows": rows, "median": table}, f, indent=1)
PYEOF
