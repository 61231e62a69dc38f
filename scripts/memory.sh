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
#
# Each mode runs twice per repetition: with glibc's default malloc (which keeps freed memory
# and so lets RSS drift upwards over calls) and with GLIBC_TUNABLES setting the mmap and trim
# thresholds to 64 KiB, so that every large tensor is its own mapping, returned to the OS when
# freed: RSS then follows live memory and the steady-state increment is the transient peak of
# one call (the clean comparison). One-time costs (oneDNN kernels, thread pools) are in the
# first call, outside the steady-state measure.
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
MMAP_TUNABLES=glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=65536
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT
for rep in $(seq "$REPEAT"); do
  for mode in "${MODES[@]}"; do
    for alloc in default mmap; do
      if [ "$alloc" = mmap ]; then export GLIBC_TUNABLES=$MMAP_TUNABLES; else unset GLIBC_TUNABLES; fi
      line=$("$BIN" --memory "$mode" --iters "$ITERS" --threads "$THREADS" --device "$DEVICE" --model "$MODEL")
      echo "{\"alloc\": \"$alloc\", ${line#\{}" >> "$TMP"
    done
  done
done
unset GLIBC_TUNABLES

"$PY" - "$TMP" "$JSON_OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
modes = []
for r in rows:
    if r["mode"] not in modes:
        modes.append(r["mode"])
def med(mode, alloc, f):
    vals = [f(r) for r in rows if r["mode"] == mode and r["alloc"] == alloc]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None
cols = {
    "total": ("default", lambda r: r["peak_hwm_kb"]),
    "first": ("default", lambda r: r["first_call_hwm_kb"] - r["setup_hwm_kb"]),
    "incr": ("default", lambda r: r["increment_kb"]),
    "steady": ("mmap", lambda r: r["steady_increment_kb"]),
}
table = {m: {c: med(m, a, f) for c, (a, f) in cols.items()} for m in modes}
table["_setup_hwm_kb"] = med("backprop", "default", lambda r: r["setup_hwm_kb"])
base = table["backprop"]
r0 = rows[0]
reps = len([r for r in rows if r["mode"] == "backprop" and r["alloc"] == "default"])
print(f"model {r0['model']} | device {r0['device']} | threads {r0['threads']} | {r0['iters']} calls per process | "
      f"median of {reps} processes per mode and allocator | post-setup VmHWM {table['_setup_hwm_kb'] / 1024:.1f} MiB")
print()
print("| mode | total peak RSS (MiB) | ratio | first call over setup (MiB) | ratio | all calls over setup (MiB) | ratio | per-call peak, mmap malloc (MiB) | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
def fmt(v):
    return "n/a" if v is None else f"{v / 1024:.1f}"
def ratio(v, b):
    return "n/a" if v is None or not b else f"{v / b:.2f}"
for m in modes:
    t = table[m]
    print(f"| {m} | " + " | ".join(f"{fmt(t[c])} | {ratio(t[c], base[c])}" for c in cols) + " |")
if sys.argv[2]:
    with open(sys.argv[2], "w") as f:
        json.dump({"rows": rows, "median": table}, f, indent=1)
PYEOF
