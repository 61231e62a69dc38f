"""Python speed baseline: the seed algorithm (scripts/pcref.py) on the seed's MNIST network.

Network (5 PC layers, 32,695 parameters), float32, CPU, 2 threads, batch 300 of random
inputs, CrossEntropyLoss. Times one call of: a plain backprop step (zero_grad, forward,
loss, backward), Exact, FixedPred (eta 0.1, n 20) and Strict (eta 0.1, n 20). The methods
are interleaved within each repetition (in rotating order) after a warm-up, and the
median per method is reported, in milliseconds, as one JSON object on stdout.

Usage:  .venv/bin/python scripts/bench_seed.py [--reps 20] [--warmup 3] [--json-out FILE]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcref import pc_infer  # noqa: E402

THREADS = 2
BATCH = 300
ETA = 0.1
N = 20


def mnist_net():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 10, 3), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(10, 5, 3), nn.ReLU(), nn.Flatten()),
        nn.Sequential(nn.Linear(605, 50), nn.ReLU()),
        nn.Sequential(nn.Linear(50, 30), nn.ReLU()),
        nn.Linear(30, 10),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions per method")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls per method first")
    ap.add_argument("--json-out", help="also write the JSON object to this file")
    args = ap.parse_args()

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    x = torch.rand(BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (BATCH,))
    model = mnist_net()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 32695, n_params
    loss_fn = nn.CrossEntropyLoss()

    def backprop():
        model.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()

    def pc(err_type):
        return lambda: pc_infer(model, loss_fn, x, y, err_type, ETA, N)

    methods = {
        "backprop": backprop,
        "exact": pc("Exact"),
        "fixedpred": pc("FixedPred"),
        "strict": pc("Strict"),
    }
    names = list(methods)
    for _ in range(args.warmup):
        for name in names:
            methods[name]()
    times = {name: [] for name in names}
    for r in range(args.reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - t0)

    result = {f"{name}_ms": 1e3 * statistics.median(times[name]) for name in names}
    result.update(
        torch_version=torch.__version__,
        threads=THREADS,
        batch=BATCH,
        reps=args.reps,
        params=n_params,
    )
    text = json.dumps(result)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
