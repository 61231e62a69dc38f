#!/usr/bin/env bash
# The Rust port against the seed's algorithm (scripts/pcref.py) on the same machine, with
# the same network, weights and batch: scripts/bench_seed.py writes them (--save-weights)
# and times the Python side; examples/bench.rs loads them (--weights) and times the Rust
# side. Prints per-error-type medians and the speedup (Python ms / Rust ms).
#
# Usage: scripts/compare_seed.sh [--reps 20] [--threads 2] [--device cpu|cuda] [--json-out FILE]
# The Python FixedPred is the seed's literal loop; the Rust side reports both its default
# closed form and the literal loop (FixedPredMode::Literal).
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=20 THREADS=2 DEVICE=cpu JSON_OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --json-out) JSON_OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

bash scripts/setup.sh
cargo build --release --example bench >&2
PY=.venv/bin/python
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
VARIANTS=("fixedpred(0.5,3)" "fixedpred(1,5)")

PYARGS=(--reps "$REPS" --threads "$THREADS" --device "$DEVICE" --save-weights "$DIR/seed.npz" --json-out "$DIR/py.json")
for v in "${VARIANTS[@]}"; do PYARGS+=(--variant "$v"); done
"$PY" scripts/bench_seed.py "${PYARGS[@]}" > /dev/null

RSARGS=(--reps "$REPS" --threads "$THREADS" --device "$DEVICE" --weights "$DIR/seed.npz" --json "$DIR/rs.json"
        --variant backprop --variant exact --variant fixedpred --variant fixedpred_literal --variant strict)
for v in "${VARIANTS[@]}"; do RSARGS+=(--variant "$v" --variant "fixedpred_literal${v#fixedpred}"); done
target/release/examples/bench "${RSARGS[@]}" > /dev/null

"$PY" - "$DIR/py.json" "$DIR/rs.json" "$JSON_OUT" <<'PYEOF'
import json, sys
py = json.load(open(sys.argv[1]))
rs = {r["variant"]: r["median_ms"] for r in json.load(open(sys.argv[2]))["results"]}
def rlabel(name):  # Python key -> Rust labels (closed form, literal)
    if name == "fixedpred":
        return "fixedpred(0.1,20)", "fixedpred_literal(0.1,20)"
    if name == "strict":
        return "strict(0.1,20)", None
    if name.startswith("fixedpred("):
        eta, n = name[len("fixedpred("):-1].split(",")
        eta = f"{float(eta)}"  # Rust prints f64 like Python's float() minus trailing ".0"
        eta = eta[:-2] if eta.endswith(".0") else eta
        return f"fixedpred({eta},{n})", f"fixedpred_literal({eta},{n})"
    return name, None
print(f"device {py['device']} | threads {py['threads']} | batch {py['batch']} | reps {py['reps']} | torch {py['torch_version']}")
print()
print("| method | Python ms | Rust ms | speedup | Rust literal ms | speedup (literal) |")
print("|---|---:|---:|---:|---:|---:|")
out = []
for key, ms in py.items():
    if not key.endswith("_ms"):
        continue
    name = key[:-3]
    a, b = rlabel(name)
    ra, rb = rs.get(a), rs.get(b) if b else None
    cell = lambda v: "" if v is None else f"{v:.2f}"
    sp = lambda v: "" if v is None else f"{ms / v:.1f}x"
    print(f"| {name} | {ms:.2f} | {cell(ra)} | {sp(ra)} | {cell(rb)} | {sp(rb)} |")
    out.append({"method": name, "python_ms": ms, "rust_ms": ra, "rust_literal_ms": rb})
if sys.argv[3]:
    json.dump({"python": py, "rust": rs, "rows": out}, open(sys.argv[3], "w"), indent=1)
PYEOF
