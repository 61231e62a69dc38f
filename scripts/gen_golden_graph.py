"""Generate the graph golden files tests/golden/graph_*.npz from pcref_graph.py.

Usage:  .venv/bin/python scripts/gen_golden_graph.py [outdir]   (default: tests/golden)

Same conventions as gen_golden.py: every graph is seeded (torch.manual_seed, by graph),
computed in float64 on CPU with one thread, and written as an uncompressed .npz with
fixed zip timestamps, so running this twice gives byte-identical files. The graphs and
the key layout are documented in tests/golden/README.md ("Graph cases").

Before writing anything it checks the reference (and fails if a check fails):
  * on chains (the mlp, cnn and pfree models of gen_golden.py), pcref_graph equals the
    seed's pcref.py for every case of gen_golden.py (max abs difference <= 1e-12);
  * on every graph, FixedPred's loop equals its closed form
    eps_i = sum_k P(Bin(n-1, eta) >= k) a_i^(k), v_i = vhat_i - sum_k P(Bin(n, eta) >= k) a_i^(k)
    for eta in {0.1, 0.5, 1} and n in {1, 2, 3, 5, 20} (max abs error <= 1e-13; the
    relative error is printed too);
  * on every graph, Strict's beliefs equal gradient descent on the energy F by autograd,
    Exact's errors equal reverse accumulation of the vjp's, and Exact's parameter
    updates equal loss.backward()'s (relative error <= 1e-12).
"""
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_golden  # noqa: E402
import pcref  # noqa: E402
from gen_golden import save_npz  # noqa: E402
from pcref_graph import (  # noqa: E402
    GraphDef,
    Node,
    adjoints_total,
    chain_graph,
    fixed_pred_closed_form,
    forward_all,
    pc_infer_graph,
    strict_by_energy,
)

SEEDS = {"res": 11, "fan": 12, "concat": 13, "rescnn": 14, "tied": 15}


def _params(**mods):
    """name -> parameter for named modules, as tch's VarStore names them ("h1.weight")."""
    return {f"{m}.{k}": p for m, mod in mods.items() for k, p in mod.named_parameters()}


def build(name):
    """Seeded graph, loss, input and target; returns (GraphDef, loss_fn, x, y).

    Node functions take the list of their parents' values, in the order listed."""
    torch.manual_seed(SEEDS[name])
    inp = Node((), None)
    if name == "res":
        h1, h2, h3, out = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        nodes = [
            inp,
            Node((0,), lambda xs: torch.tanh(h1(xs[0]))),  # 1 h1
            Node((1,), lambda xs: torch.tanh(h2(xs[0]))),  # 2 h2
            Node((1, 2), lambda xs: xs[0] + xs[1]),  # 3 s = h1 + h2
            Node((3,), lambda xs: torch.tanh(h3(xs[0]))),  # 4 h3
            Node((3, 4), lambda xs: xs[0] + xs[1]),  # 5 s2 = s + h3
            Node((5,), lambda xs: out(xs[0])),  # 6 out
        ]
        params = _params(h1=h1, h2=h2, h3=h3, out=out)
        x, y = torch.randn(4, 5), torch.randn(4, 3)
        loss_fn = nn.MSELoss()
    elif name == "fan":
        h, a, b, c = nn.Linear(5, 6), nn.Linear(6, 4), nn.Linear(6, 4), nn.Linear(6, 4)
        out = nn.Linear(12, 3)
        nodes = [
            inp,
            Node((0,), lambda xs: torch.tanh(h(xs[0]))),  # 1 h
            Node((1,), lambda xs: torch.tanh(a(xs[0]))),  # 2 a
            Node((1,), lambda xs: torch.sigmoid(b(xs[0]))),  # 3 b
            Node((1,), lambda xs: c(xs[0])),  # 4 c
            Node((2, 3, 4), lambda xs: out(torch.cat(xs, 1))),  # 5 out = out(cat(a, b, c))
        ]
        params = _params(h=h, a=a, b=b, c=c, out=out)
        x, y = torch.randn(4, 5), torch.randn(4, 3)
        loss_fn = nn.MSELoss()
    elif name == "concat":
        h1, h2, out = nn.Linear(4, 6), nn.Linear(10, 5), nn.Linear(11, 3)
        nodes = [
            inp,
            Node((0,), lambda xs: torch.tanh(h1(xs[0]))),  # 1 h1
            Node((1, 0), lambda xs: torch.tanh(h2(torch.cat(xs, 1)))),  # 2 h2(cat(h1, x))
            Node((2, 1), lambda xs: out(torch.cat(xs, 1))),  # 3 out(cat(h2, h1))
        ]
        params = _params(h1=h1, h2=h2, out=out)
        x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
        loss_fn = nn.CrossEntropyLoss()
    elif name == "rescnn":
        c1 = nn.Conv2d(1, 2, 3, padding=1)
        c2 = nn.Conv2d(2, 2, 3, padding=1)
        c3 = nn.Conv2d(2, 2, 3, padding=1)
        out = nn.Linear(50, 3)
        nodes = [
            inp,
            Node((0,), lambda xs: torch.relu(c1(xs[0]))),  # 1 c1
            Node((1,), lambda xs: torch.relu(c2(xs[0]))),  # 2 c2
            Node((2,), lambda xs: c3(xs[0])),  # 3 c3
            Node((1, 3), lambda xs: torch.relu(xs[0] + xs[1])),  # 4 s = relu(c1 + c3)
            Node((4,), lambda xs: out(torch.flatten(xs[0], 1))),  # 5 out(flatten(s))
        ]
        params = _params(c1=c1, c2=c2, c3=c3, out=out)
        x, y = torch.randn(3, 1, 5, 5), torch.randint(0, 3, (3,))
        loss_fn = nn.CrossEntropyLoss()
    elif name == "tied":
        h1, sh, out = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        nodes = [
            inp,
            Node((0,), lambda xs: torch.tanh(h1(xs[0]))),  # 1 h1
            Node((1,), lambda xs: torch.tanh(sh(xs[0]))),  # 2 h2 = tanh(sh(h1))
            Node((2,), lambda xs: torch.tanh(sh(xs[0]))),  # 3 h3 = tanh(sh(h2)), same sh
            Node((3, 1), lambda xs: out(xs[0] + xs[1])),  # 4 out(h3 + h1)
        ]
        params = _params(h1=h1, sh=sh, out=out)
        x, y = torch.randn(4, 5), torch.randn(4, 3)
        loss_fn = nn.MSELoss()
    else:
        raise ValueError(name)
    return GraphDef(nodes, params), loss_fn, x, y


ALGOS = ("Strict", "FixedPred", "Exact")
# (file stem, graph, err_type, eta, n, with_vinit)
CASES = [
    (f"graph_{g}_{e.lower()}", g, e, 0.1, 20, False) for g in SEEDS for e in ALGOS
] + [
    ("graph_res_fixedpred_eta05_n3", "res", "FixedPred", 0.5, 3, False),
    ("graph_res_strict_vinit", "res", "Strict", 0.1, 20, True),
]


def _np(t):
    return t.detach().cpu().numpy().copy()


def make_vinit(g, x):
    """vinit = [x] + [vhat_i + 0.1 randn_like(vhat_i) for i = 1..N], drawn in that order."""
    with torch.no_grad():
        vhat = forward_all(g, x)
    return [x] + [vhat[i] + 0.1 * torch.randn_like(vhat[i]) for i in range(1, g.N + 1)]


def run_case(graph, err_type, eta, n, with_vinit):
    """Compute one case; returns an ordered dict of numpy arrays (the npz contents)."""
    g, loss_fn, x, y = build(graph)
    N = g.N
    vinit = make_vinit(g, x) if with_vinit else None
    out = {
        "x": _np(x),
        "y": _np(y),
        "eta": np.array(eta, dtype=np.float64),
        "n": np.array(n, dtype=np.float64),
        "N": np.array(N, dtype=np.float64),
    }
    for name, p in g.params.items():
        out[f"param.{name}"] = _np(p)
    if vinit is not None:
        for i in range(N + 1):
            out[f"vinit.{i}"] = _np(vinit[i])
    vhat, loss, dldy, v, eps, grads = pc_infer_graph(g, loss_fn, x, y, err_type, eta, n, vinit)
    for i in range(1, N + 1):
        out[f"vhat.{i}"] = _np(vhat[i])
        out[f"v.{i}"] = _np(v[i])
        out[f"eps.{i}"] = _np(eps[i])
    out["loss"] = _np(loss)
    out["dldy"] = _np(dldy)
    for name in g.params:
        out[f"grad.{name}"] = _np(grads[name])
    return out


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def check_chain_equals_seed():
    """pcref_graph on chains vs pcref.py on every case of gen_golden.py; max abs diff."""
    worst = 0.0
    for stem, model_name, err_type, eta, n, with_vinit in gen_golden.CASES:
        res = []
        for impl in ("seed", "graph"):
            model, loss_fn, x, y = gen_golden.build(model_name)
            L = len(model)
            vinit = None
            if with_vinit:
                with torch.no_grad():
                    h = [x]
                    for f in model:
                        h.append(f(h[-1]))
                vinit = [x] + [h[l] + 0.1 * torch.randn_like(h[l]) for l in range(1, L + 1)]
            if impl == "seed":
                vhat, loss, dldy, v, eps = pcref.pc_infer(
                    model, loss_fn, x, y, err_type, eta, n, vinit
                )
                eps = [torch.zeros_like(x)] + list(eps[1:])
                grads = {k: p.grad for k, p in model.named_parameters()}
            else:
                vhat, loss, dldy, v, eps, grads = pc_infer_graph(
                    chain_graph(model), loss_fn, x, y, err_type, eta, n, vinit
                )
            res.append((vhat, loss, dldy, v, eps, grads))
        (a, b) = res
        a = [[t.detach() for t in e] if isinstance(e, list) else e for e in a]
        a[1] = a[1].detach()
        diffs = [float((a[1] - b[1]).abs()), float((a[2] - b[2]).abs().max())]
        for k in (0, 3, 4):
            diffs += [float((s - t).abs().max()) for s, t in zip(a[k], b[k])]
        diffs += [float((a[5][k] - b[5][k]).abs().max()) for k in a[5]]
        d = max(diffs)
        assert d <= 1e-12, (stem, d)
        worst = max(worst, d)
    return worst


def check_closed_form(graph):
    """FixedPred's loop vs its closed form over eta, n: (max abs error, max relative error),
    over every node's v and eps (relative to max|closed form| of that tensor)."""
    worst_abs = worst_rel = 0.0
    for eta in (0.1, 0.5, 1.0):
        for n in (1, 2, 3, 5, 20):
            g, loss_fn, x, y = build(graph)
            _, _, _, v, eps, _ = pc_infer_graph(g, loss_fn, x, y, "FixedPred", eta, n)
            g, loss_fn, x, y = build(graph)
            vc, epsc = fixed_pred_closed_form(g, loss_fn, x, y, eta, n)
            for i in range(1, g.N + 1):
                for a, b in ((v[i], vc[i]), (eps[i], epsc[i])):
                    e_abs = float((a - b).abs().max())
                    e_rel = e_abs / float(b.abs().max()) if e_abs > 0 else 0.0
                    assert e_abs <= 1e-13, (graph, eta, n, i, e_abs)
                    worst_abs, worst_rel = max(worst_abs, e_abs), max(worst_rel, e_rel)
    return worst_abs, worst_rel


def check_strict_energy(graph):
    """Max relative error of Strict's loop vs autograd descent on F (plain and vinit)."""
    worst = 0.0
    for with_vinit, eta, n in ((False, 0.1, 20), (True, 0.1, 20), (False, 0.3, 7)):
        g, loss_fn, x, y = build(graph)
        vinit = make_vinit(g, x) if with_vinit else None
        _, _, _, v, _, _ = pc_infer_graph(g, loss_fn, x, y, "Strict", eta, n, vinit)
        ve = strict_by_energy(g, loss_fn, x, y, eta, n, vinit)
        for i in range(1, g.N + 1):
            e = _rel(v[i], ve[i])
            assert e <= 1e-12, (graph, i, e)
            worst = max(worst, e)
    return worst


def check_exact(graph):
    """Max relative error of Exact's eps vs vjp reverse accumulation, and of its parameter
    updates vs loss.backward()."""
    g, loss_fn, x, y = build(graph)
    vhat, _, dldy, _, eps, grads = pc_infer_graph(g, loss_fn, x, y, "Exact")
    adj = adjoints_total(g, vhat, dldy)
    worst = max(_rel(eps[i], adj[i]) for i in range(1, g.N + 1))
    for p in g.params.values():
        p.grad = None
    loss_fn(forward_all(g, x)[-1], y).backward()
    for name, p in g.params.items():
        worst = max(worst, _rel(grads[name], p.grad))
    assert worst <= 1e-12, (graph, worst)
    return worst


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = argv[1] if len(argv) > 1 else os.path.join(here, "..", "tests", "golden")
    os.makedirs(outdir, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)

    print(f"chain (gen_golden.py's cases) vs pcref.py: max abs diff {check_chain_equals_seed():.3g}")
    print("FixedPred loop vs closed form (abs, rel), Strict loop vs descent on F (rel),")
    print("Exact vs reverse accumulation and backprop (rel); max over nodes and cases:")
    print(f"{'graph':<8} {'cf abs':>10} {'cf rel':>10} {'strict/F':>10} {'exact/bp':>10}")
    for graph in SEEDS:
        (ca, cr), se, ex = check_closed_form(graph), check_strict_energy(graph), check_exact(graph)
        print(f"{graph:<8} {ca:>10.3g} {cr:>10.3g} {se:>10.3g} {ex:>10.3g}")

    print(f"{'file':<36} {'max|grad|':>12} {'loss':>12}")
    for stem, graph, err_type, eta, n, with_vinit in CASES:
        arrays = run_case(graph, err_type, eta, n, with_vinit)
        for k, a in arrays.items():
            assert a.dtype in (np.float64, np.int64), (stem, k, a.dtype)
        save_npz(os.path.join(outdir, stem + ".npz"), arrays)
        gmax = max(float(np.abs(a).max()) for k, a in arrays.items() if k.startswith("grad."))
        print(f"{stem + '.npz':<36} {gmax:>12.6g} {float(arrays['loss']):>12.6g}")


if __name__ == "__main__":
    main(sys.argv)
