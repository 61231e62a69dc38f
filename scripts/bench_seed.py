"""Python speed baseline: the seed algorithm (scripts/pcref.py) on the seed's MNIST network.

Network (5 PC layers, 32,695 parameters), float32, 2 threads, batch 300 of random
inputs, CrossEntropyLoss. Times one call of: a plain backprop step (zero_grad, forward,
loss, backward), Exact, FixedPred (eta 0.1, n 20) and Strict (eta 0.1, n 20), plus any
``--variant``. The methods are interleaved within each repetition (in rotating order) after
a warm-up, and the median per method is reported, in milliseconds, as one JSON object on
stdout (keys ``<name>_ms``). On CUDA the device is synchronised around each timed call.

Same weights and batch on both sides: ``--save-weights FILE.npz`` writes the initial
parameters (PyTorch names, ``0.0.weight`` ... ``4.bias``) and ``x``, ``y`` before timing;
``cargo run --release --example bench -- --weights FILE.npz`` loads them
(``scripts/compare_seed.sh`` does both). ``--weights FILE.npz`` loads such a file here.

Usage:  .venv/bin/python scripts/bench_seed.py [--reps 20] [--warmup 3] [--threads 2]
            [--device cpu|cuda] [--seed 0] [--save-weights FILE.npz | --weights FILE.npz]
            [--variant NAME[(eta,n)]]... [--json-out FILE]
"""
import argparse
import json
import os
import re
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcref import pc_infer  # noqa: E402

THREADS = 2
BATCH = 300
ETA = 0.1
N = 20
ERR = {"exact": "Exact", "fixedpred": "FixedPred", "strict": "Strict"}


def mnist_net():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 10, 3), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(10, 5, 3), nn.ReLU(), nn.Flatten()),
        nn.Sequential(nn.Linear(605, 50), nn.ReLU()),
        nn.Sequential(nn.Linear(50, 30), nn.ReLU()),
        nn.Linear(30, 10),
    )


def parse_variant(text):
    """``backprop``, ``exact``, ``fixedpred``, ``strict``, optionally with ``(eta,n)``."""
    m = re.fullmatch(r"(\w+)(?:\(([^,()]+),(\d+)\))?", text.strip())
    if not m or m.group(1) not in ("backprop", *ERR):
        raise argparse.ArgumentTypeError(f"bad variant {text!r}")
    name = m.group(1)
    eta = float(m.group(2)) if m.group(2) else ETA
    n = int(m.group(3)) if m.group(3) else N
    label = name if (m.group(2) is None or name in ("backprop", "exact")) else f"{name}({m.group(2)},{n})"
    return label, name, eta, n


def save_weights(path, model, x, y):
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    arrays["x"] = x.cpu().numpy()
    arrays["y"] = y.cpu().numpy().astype(np.int64)
    np.savez(path, **arrays)


def load_weights(path, model, device):
    data = np.load(path)
    state = {k: torch.from_numpy(data[k]) for k in model.state_dict()}
    model.load_state_dict(state)
    x = torch.from_numpy(data["x"]).to(device)
    y = torch.from_numpy(data["y"]).long().to(device)
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions per method")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls per method first")
    ap.add_argument("--threads", type=int, default=THREADS, help="intra-op threads (default 2)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--seed", type=int, default=0, help="torch.manual_seed for weights and batch")
    ap.add_argument("--save-weights", metavar="FILE", help="write parameters, x and y (.npz) first")
    ap.add_argument("--weights", metavar="FILE", help="load parameters, x and y from this .npz")
    ap.add_argument("--variant", action="append", type=parse_variant, default=[],
                    help="extra method, e.g. 'fixedpred(0.5,3)' (repeatable)")
    ap.add_argument("--json-out", help="also write the JSON object to this file")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device available")
    torch.manual_seed(args.seed)
    x = torch.rand(BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (BATCH,))
    model = mnist_net()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 32695, n_params
    if args.save_weights:
        save_weights(args.save_weights, model, x, y)
    if args.weights:
        x, y = load_weights(args.weights, model, device)
    model = model.to(device)
    x, y = x.to(device), y.to(device)
    loss_fn = nn.CrossEntropyLoss()

    def backprop():
        model.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()

    def pc(err_type, eta, n):
        return lambda: pc_infer(model, loss_fn, x, y, err_type, eta, n)

    variants = [parse_variant(v) for v in ("backprop", "exact", "fixedpred", "strict")]
    variants += [v for v in args.variant if v[0] not in {w[0] for w in variants}]
    methods = {}
    for label, name, eta, n in variants:
        methods[label] = backprop if name == "backprop" else pc(ERR[name], eta, n)
    names = list(methods)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        for name in names:
            methods[name]()
    times = {name: [] for name in names}
    for r in range(args.reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            sync()
            t0 = time.perf_counter()
            methods[name]()
            sync()
            times[name].append(time.perf_counter() - t0)

    result = {f"{name}_ms": 1e3 * statistics.median(times[name]) for name in names}
    result.update(
        torch_version=torch.__version__,
        threads=args.threads,
        device=args.device,
        batch=BATCH,
        reps=args.reps,
        params=n_params,
        weights=args.weights or args.save_weights,
    )
    text = json.dumps(result)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
