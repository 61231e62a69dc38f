"""Markdown tables from the criterion results of `cargo bench --bench pc`.

Reads target/criterion/<group>/.../new/{benchmark,estimates}.json and prints the median
time per benchmark (ms) for the groups seed_network, scaling_n and scaling_depth, with
ratios to the backprop step and, for scaling_n, a least-squares line t = a + b*n.

Usage: python3 scripts/criterion_table.py [TARGET_DIR/criterion]
"""
import json
import os
import sys


def load(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            b = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            e = json.load(f)
        med = e["median"]
        out[(b["group_id"], b.get("function_id"), b.get("value_str"))] = (
            med["point_estimate"] / 1e6,
            med["confidence_interval"]["lower_bound"] / 1e6,
            med["confidence_interval"]["upper_bound"] / 1e6,
        )
    return out


def fit(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "target", "criterion")
    r = load(root)
    if not r:
        sys.exit(f"no criterion results under {root}")

    seed = {k[2] or k[1]: v for k, v in r.items() if k[0] == "seed_network"}
    if seed:
        base = seed.get("backprop", (float("nan"),))[0]
        print("### seed_network (median ms [95% CI], ratio to backprop)\n")
        print("| variant | median ms | 95% CI | ratio |")
        print("|---|---:|---:|---:|")
        for name in ("backprop", "exact", "fixedpred", "fixedpred_literal", "strict"):
            if name in seed:
                m, lo, hi = seed[name]
                print(f"| {name} | {m:.2f} | {lo:.2f}–{hi:.2f} | {m / base:.2f} |")
        print()

    sn = {(k[1], int(k[2])): v[0] for k, v in r.items() if k[0] == "scaling_n"}
    if sn:
        ns = sorted({n for _, n in sn})
        fns = [f for f in ("fixedpred", "fixedpred_literal", "strict") if any((f, n) in sn for n in ns)]
        base = seed.get("backprop", (float("nan"),))[0]
        print("### scaling_n, seed network, eta 0.1 (median ms; ratio to backprop in brackets)\n")
        print("| n | " + " | ".join(fns) + " |")
        print("|---:|" + "---:|" * len(fns))
        for n in ns:
            cells = []
            for f in fns:
                t = sn.get((f, n))
                cells.append("" if t is None else f"{t:.2f} ({t / base:.2f}x)")
            print(f"| {n} | " + " | ".join(cells) + " |")
        print()
        for f in fns:
            pts = [(n, sn[(f, n)]) for n in ns if (f, n) in sn]
            if len(pts) >= 2:
                a, b, r2 = fit([p[0] for p in pts], [p[1] for p in pts])
                print(f"- {f}: t ≈ {a:.2f} ms + {b:.3f} ms × n (R² = {r2:.4f})")
        print()

    sd = {(k[1], int(k[2])): v[0] for k, v in r.items() if k[0] == "scaling_depth"}
    if sd:
        ds = sorted({d for _, d in sd})
        fns = [f for f in ("backprop", "exact", "fixedpred", "strict") if any((f, d) in sd for d in ds)]
        print("### scaling_depth, MLP width 256, tanh, batch 300, eta 0.1, n 20 (median ms; ratio to backprop)\n")
        print("| depth | " + " | ".join(fns) + " |")
        print("|---:|" + "---:|" * len(fns))
        for d in ds:
            base = sd.get(("backprop", d), float("nan"))
            cells = []
            for f in fns:
                t = sd.get((f, d))
                cells.append("" if t is None else (f"{t:.2f}" if f == "backprop" else f"{t:.2f} ({t / base:.2f}x)"))
            print(f"| {d} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()
