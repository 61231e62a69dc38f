"""Markdown table from one or more JSON files of `examples/bench.rs --json FILE`.

Each file is one process (one run of interleaved repetitions). Prints, per variant, the
median time of every run, its ratio to the backprop step in that run, and the median of
those ratios over the runs.

With --summary, prints instead one row per variant with the number of runs and the
minimum, median and maximum of the per-run ratios (for many runs).

Usage: python3 scripts/ratio_table.py [--summary] RUN1.json [RUN2.json ...]
"""
import json
import statistics
import sys


def summary(runs, names):
    print("| variant | runs | min ratio | median ratio | max ratio |")
    print("|---|---:|---:|---:|---:|")
    for n in names:
        ra = [x["ratio"] for r in runs for x in r["results"] if x["variant"] == n]
        print(f"| {n} | {len(ra)} | {min(ra):.2f} | **{statistics.median(ra):.2f}** | {max(ra):.2f} |")


def main():
    args = sys.argv[1:]
    brief = "--summary" in args
    files = [a for a in args if a != "--summary"]
    if not files:
        sys.exit(__doc__)
    runs = [json.load(open(f)) for f in files]
    names = [r["variant"] for r in runs[0]["results"]]
    r0 = runs[0]
    print(f"model {r0['model']} | device {r0['device']} | threads {r0['threads']} | "
          f"{len(runs)} runs of {r0['reps']} interleaved repetitions (+{r0['warmup']} warm-up)\n")
    if brief:
        summary(runs, names)
        return
    print("| variant | median ms (per run) | ratio to backprop (per run) | median ratio |")
    print("|---|---|---|---:|")
    for n in names:
        rows = [next((x for x in r["results"] if x["variant"] == n), None) for r in runs]
        rows = [x for x in rows if x is not None]
        ms = ", ".join(f"{x['median_ms']:.1f}" for x in rows)
        ra = [x["ratio"] for x in rows]
        print(f"| {n} | {ms} | {', '.join(f'{x:.2f}' for x in ra)} | **{statistics.median(ra):.2f}** |")


if __name__ == "__main__":
    main()
