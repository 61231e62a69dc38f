"""Generate the golden files in tests/golden from the reference implementation (pcref.py).

Usage:  .venv/bin/python scripts/gen_golden.py [outdir]      (default: tests/golden)

Every case is seeded (torch.manual_seed, by model) and computed in float64 on CPU with
one thread, and the .npz files are written with fixed zip timestamps, so running this
twice produces byte-identical files. See tests/golden/README.md for the key layout.
"""
import os
import sys
import zipfile

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcref import pc_infer  # noqa: E402

SEEDS = {"mlp": 1, "cnn": 2, "pfree": 3}


def build(model_name):
    """Seeded model, loss, input and target for one model; returns (model, loss_fn, x, y)."""
    torch.manual_seed(SEEDS[model_name])
    if model_name == "mlp":
        model = nn.Sequential(
            nn.Sequential(nn.Linear(5, 8), nn.Tanh()),
            nn.Sequential(nn.Linear(8, 6), nn.Tanh()),
            nn.Linear(6, 3),
        )
        x = torch.randn(4, 5)
        y = torch.randn(4, 3)
        loss_fn = nn.MSELoss()
    elif model_name == "cnn":
        model = nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2)),
            nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten()),
            nn.Linear(8, 4),
        )
        x = torch.randn(5, 1, 10, 10)
        y = torch.randint(0, 4, (5,))
        loss_fn = nn.CrossEntropyLoss()
    elif model_name == "pfree":
        model = nn.Sequential(
            nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.Sigmoid(), nn.Linear(6, 3)
        )
        x = torch.randn(6, 5)
        y = torch.randint(0, 3, (6,))
        loss_fn = nn.CrossEntropyLoss()
    else:
        raise ValueError(model_name)
    return model, loss_fn, x, y


# (file stem, model, err_type, eta, n, with_vinit)
CASES = [
    (f"{m}_{e.lower()}", m, e, 0.1, 20, False)
    for m in ("mlp", "cnn", "pfree")
    for e in ("Strict", "FixedPred", "Exact")
] + [
    ("mlp_strict_vinit", "mlp", "Strict", 0.1, 20, True),
    ("mlp_fixedpred_eta05_n2", "mlp", "FixedPred", 0.5, 2, False),
    ("pfree_strict_eta03_n7", "pfree", "Strict", 0.3, 7, False),
]


def _np(t):
    return t.detach().cpu().numpy().copy()


def run_case(model_name, err_type, eta, n, with_vinit):
    """Compute one case; returns an ordered dict of numpy arrays (the npz contents)."""
    model, loss_fn, x, y = build(model_name)
    L = len(model)
    vinit = None
    if with_vinit:
        with torch.no_grad():
            h = [x]
            for f in model:
                h.append(f(h[-1]))
        vinit = [x] + [h[l] + 0.1 * torch.randn_like(h[l]) for l in range(1, L + 1)]

    out = {
        "x": _np(x),
        "y": _np(y),
        "eta": np.array(eta, dtype=np.float64),
        "n": np.array(n, dtype=np.float64),
        "L": np.array(L, dtype=np.float64),
    }
    named = list(model.named_parameters())
    for name, p in named:
        out[f"param.{name}"] = _np(p)
    if vinit is not None:
        for l in range(L + 1):
            out[f"vinit.{l}"] = _np(vinit[l])

    vhat, loss, dldy, v, eps = pc_infer(model, loss_fn, x, y, err_type, eta, n, vinit)

    for l in range(1, L + 1):
        out[f"vhat.{l}"] = _np(vhat[l])
        out[f"v.{l}"] = _np(v[l])
        out[f"eps.{l}"] = _np(eps[l])
    out["loss"] = _np(loss)
    out["dldy"] = _np(dldy)
    for name, p in named:
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        out[f"grad.{name}"] = _np(g)
    return out


def save_npz(path, arrays):
    """Like numpy.savez (uncompressed, '<key>.npy' members, zip64 forced) but with a fixed
    timestamp, so the output is byte-for-byte reproducible."""
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_STORED) as zf:
        for key, val in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, np.asarray(val, order="C"), allow_pickle=False)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = argv[1] if len(argv) > 1 else os.path.join(here, "..", "tests", "golden")
    os.makedirs(outdir, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)

    print(f"{'file':<32} {'max|grad|':>12} {'loss':>12}")
    for stem, model_name, err_type, eta, n, with_vinit in CASES:
        arrays = run_case(model_name, err_type, eta, n, with_vinit)
        for k, a in arrays.items():
            assert a.dtype in (np.float64, np.int64), (stem, k, a.dtype)
        path = os.path.join(outdir, stem + ".npz")
        save_npz(path, arrays)
        gmax = max(float(np.abs(a).max()) for k, a in arrays.items() if k.startswith("grad."))
        print(f"{stem + '.npz':<32} {gmax:>12.6g} {float(arrays['loss']):>12.6g}")


if __name__ == "__main__":
    main(sys.argv)
