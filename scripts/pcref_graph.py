"""Reference implementation of predictive coding on computation graphs (DAGs).

This is the repo's own Python/PyTorch reference for the ``Graph`` model of the Rust
crate: Torch2PC's three algorithms -- Strict, FixedPred and Exact (Rosenbaum 2022) --
generalised from a chain of layers to an arbitrary directed acyclic graph of nodes. It is
used by ``gen_golden_graph.py`` to write ``tests/golden/graph_*.npz``; on a chain it
reproduces ``pcref.py`` (the seed's semantics), which the generator checks.

Graph
-----
A graph is a list of ``Node``s in topological order. Node 0 is the (clamped) input and
has no function; node ``i >= 1`` has parents ``pa(i)`` (indices ``< i``, in the order its
function takes them) and a function ``f_i`` taking the list of its parents' values. The
last node ``N`` is the output; nodes ``1..N-1`` are "hidden". ``ch(i)`` are the nodes
that list ``i`` among their parents. Parameters are given separately as a name ->
tensor dict; a parameter may be used by several nodes.

Notation: ``J_{j<-i}(u)`` is the Jacobian of ``f_j`` with respect to its parent ``i``
at parent values ``u`` (if ``i`` appears several times in ``pa(j)``, the sum over its
occurrences); ``vjp`` below computes ``J_{j<-i}^T e`` for all parents at once.

Semantics
---------
* Feed-forward: ``vhat_0 = x``, ``vhat_i = f_i(vhat_pa(i))``; ``loss = l(vhat_N, y)``,
  ``dldy = d loss / d vhat_N``.
* Exact: ``eps_i = d loss / d vhat_i`` (the total derivative, through every path),
  ``v_i = vhat_i - eps_i`` (for ``i = 1..N``); parameter updates are backprop's.
* FixedPred: ``eps_N = dldy``; ``v = vhat`` initially; ``n`` sweeps, each first setting
  ``eps_i = vhat_i - v_i`` for every hidden ``i``, then
  ``v_i <- v_i + eta (eps_i - sum_{j in ch(i)} J_{j<-i}(vhat)^T eps_j)`` with the ``eps``
  just computed (``dldy`` for ``j = N``). ``v_N`` stays ``vhat_N``.
* Strict: beliefs start at ``vinit`` (default ``vhat``; ``v_0 = x`` always, ``v_N`` stays
  at its initial value); ``n`` sweeps, each evaluating every term at the beliefs ``v`` the
  sweep starts from: ``eps_N = d l(f_N(v_pa(N)), y) / d f_N``,
  ``eps_i = f_i(v_pa(i)) - v_i`` for hidden ``i``, then, for all hidden ``i`` at once,
  ``v_i <- v_i + eta (eps_i - sum_{j in ch(i)} J_{j<-i}(v)^T eps_j)``. That is one step of
  gradient descent on ``F(v) = l(f_N(v_pa(N)), y) + 1/2 sum_hidden |f_i(v_pa(i)) - v_i|^2``.
* Parameter updates (every algorithm): ``grad theta = sum_i (d f_i(u_pa(i)) / d theta)^T eps_i``
  with ``u = vhat`` for Exact and FixedPred and ``u`` = the final beliefs for Strict, and
  ``eps`` the final errors (of the last sweep). A parameter used by several nodes gets the
  sum; a parameter used by none gets zeros.

``pc_infer_graph`` returns ``(vhat, loss, dldy, v, eps, grads)`` where ``vhat``, ``v``,
``eps`` are lists of length ``N+1`` indexed by node (``vhat[0] = v[0] = x``, ``eps[0]`` is
zeros) and ``grads`` maps parameter names to their updates. It does not touch ``.grad``.

Also here: ``fixed_pred_closed_form`` (FixedPred in closed form, as a numerical check of
the loop) and ``strict_by_energy`` (Strict as literal gradient descent on F).
"""
from dataclasses import dataclass
from math import comb
from typing import Callable, Dict, List, Sequence

import torch

ERR_TYPES = ("Strict", "FixedPred", "Exact")


@dataclass
class Node:
    """One node: its parents (node indices, in argument order) and its function, which
    takes the list of the parents' values and returns the node's value."""

    parents: Sequence[int]
    fn: Callable[[List[torch.Tensor]], torch.Tensor]


@dataclass
class GraphDef:
    """A graph: ``nodes[0]`` is the input (``Node((), None)``), the last node the output;
    ``params`` maps parameter names to the tensors the node functions use."""

    nodes: List[Node]
    params: Dict[str, torch.Tensor]

    @property
    def N(self):
        return len(self.nodes) - 1

    def children(self):
        """ch(i) for every node, each child listed once."""
        ch = [[] for _ in self.nodes]
        for j, node in enumerate(self.nodes):
            for i in dict.fromkeys(node.parents):
                ch[i].append(j)
        return ch

    def apply(self, j, values):
        """f_j evaluated at the values of its parents taken from ``values`` (by node)."""
        node = self.nodes[j]
        return node.fn([values[i] for i in node.parents])


def forward_all(g, x):
    """Feed-forward values [x, vhat_1, ..., vhat_N] (autograd graph attached)."""
    vhat = [x]
    for j in range(1, g.N + 1):
        vhat.append(g.apply(j, vhat))
    return vhat


def vjp(g, j, at, cot):
    """``{i: J_{j<-i}(at)^T cot}`` for every distinct parent i of node j, evaluated at the
    parent values ``at[i]`` (``at`` is indexed by node)."""
    distinct = list(dict.fromkeys(g.nodes[j].parents))
    leaves = {i: at[i].detach().requires_grad_(True) for i in distinct}
    out = g.nodes[j].fn([leaves[i] for i in g.nodes[j].parents])
    grads = torch.autograd.grad(out, [leaves[i] for i in distinct], grad_outputs=cot)
    return dict(zip(distinct, grads))


def param_updates(g, inputs, eps):
    """``{name: sum_i (d f_i(inputs_pa(i)) / d theta)^T eps_i}`` (zeros where unused)."""
    names = list(g.params)
    total = {name: torch.zeros_like(p) for name, p in g.params.items()}
    for i in range(1, g.N + 1):
        out = g.apply(i, [t.detach() for t in inputs])
        if not out.requires_grad:
            continue
        grads = torch.autograd.grad(
            out, [g.params[k] for k in names], grad_outputs=eps[i], allow_unused=True
        )
        for name, gr in zip(names, grads):
            if gr is not None:
                total[name] = total[name] + gr
    return total


def _exact(g, loss, x, vhat):
    N = g.N
    eps = [torch.zeros_like(x)] + list(torch.autograd.grad(loss, vhat[1:], retain_graph=True))
    v = [x] + [vhat[i].detach() - eps[i] for i in range(1, N + 1)]
    return v, eps, param_updates(g, vhat, eps)


def _fixed_pred(g, dldy, vhat, eta, n):
    N = g.N
    ch = g.children()
    vh = [t.detach() for t in vhat]
    v = [t.clone() for t in vh]
    eps = [torch.zeros_like(t) for t in vh]
    eps[N] = dldy
    for _ in range(n):
        for i in range(1, N):
            eps[i] = vh[i] - v[i]
        new = list(v)
        for i in range(1, N):
            back = torch.zeros_like(v[i])
            for j in ch[i]:
                back = back + vjp(g, j, vh, eps[j])[i]
            new[i] = v[i] + eta * (eps[i] - back)
        v = new
    return v, eps, param_updates(g, vh, eps)


def _strict(g, loss_fn, x, y, vhat, eta, n, vinit):
    N = g.N
    ch = g.children()
    start = vinit if vinit is not None else vhat
    v = [t.detach().clone() for t in start]
    v[0] = x.detach()
    eps = [torch.zeros_like(t.detach()) for t in vhat]
    for _ in range(n):
        with torch.enable_grad():
            out = g.apply(N, v).detach().requires_grad_(True)
            eps[N] = torch.autograd.grad(loss_fn(out, y), out)[0]
        with torch.no_grad():
            for i in range(1, N):
                eps[i] = g.apply(i, v) - v[i]
        new = list(v)
        for i in range(1, N):
            back = torch.zeros_like(v[i])
            for j in ch[i]:
                back = back + vjp(g, j, v, eps[j])[i]
            new[i] = v[i] + eta * (eps[i] - back)
        v = new
    return v, eps, param_updates(g, v, eps)


def pc_infer_graph(g, loss_fn, x, y, err_type, eta=0.1, n=20, vinit=None):
    """Run PC inference on graph ``g``; returns ``(vhat, loss, dldy, v, eps, grads)``
    (see the module docstring). ``vinit`` (Strict only) is a list of N+1 tensors."""
    vhat = forward_all(g, x)
    loss = loss_fn(vhat[-1], y)
    dldy = torch.autograd.grad(loss, vhat[-1], retain_graph=True)[0]
    if err_type == "Exact":
        v, eps, grads = _exact(g, loss, x, vhat)
    elif err_type == "FixedPred":
        v, eps, grads = _fixed_pred(g, dldy, vhat, eta, n)
    elif err_type == "Strict":
        v, eps, grads = _strict(g, loss_fn, x, y, vhat, eta, n, vinit)
    else:
        raise ValueError("err_type must be 'Strict', 'FixedPred' or 'Exact'")
    vhat = [t.detach() for t in vhat]
    return vhat, loss.detach(), dldy, [t.detach() for t in v], eps, grads


# ---------------------------------------------------------------------------------------
# Independent formulations, used as numerical checks of the loops above.


def binom_tail(m, p, k):
    """P(Binomial(m, p) >= k), exactly summed in float64."""
    return sum(comb(m, r) * p**r * (1 - p) ** (m - r) for r in range(max(k, 0), m + 1))


def path_adjoints(g, vhat, dldy):
    """``a[k][i]``: backprop's adjoint of node i restricted to paths of exactly k edges to
    the output (``a[0][N] = dldy``, ``a[k][i] = sum_{j in ch(i)} J_{j<-i}(vhat)^T a[k-1][j]``),
    for k = 0..N (no longer path exists)."""
    N = g.N
    vh = [t.detach() for t in vhat]
    a = [[torch.zeros_like(t) for t in vh]]
    a[0][N] = dldy
    for _ in range(N):
        prev = a[-1]
        cur = [torch.zeros_like(t) for t in vh]
        for j in range(1, N + 1):
            if prev[j].abs().max() == 0:
                continue
            for i, c in vjp(g, j, vh, prev[j]).items():
                if i > 0:
                    cur[i] = cur[i] + c
        a.append(cur)
    return a


def fixed_pred_closed_form(g, loss_fn, x, y, eta, n):
    """FixedPred without the loop: ``eps_i = sum_k P(Bin(n-1, eta) >= k) a_i^(k)`` and
    ``v_i = vhat_i - sum_k P(Bin(n, eta) >= k) a_i^(k)`` for hidden i; returns (v, eps)."""
    vhat = forward_all(g, x)
    loss = loss_fn(vhat[-1], y)
    dldy = torch.autograd.grad(loss, vhat[-1])[0]
    a = path_adjoints(g, vhat, dldy)
    N = g.N
    vh = [t.detach() for t in vhat]
    v, eps = list(vh), [torch.zeros_like(t) for t in vh]
    eps[N] = dldy
    for i in range(1, N):
        e = torch.zeros_like(vh[i])
        w = torch.zeros_like(vh[i])
        for k in range(1, len(a)):
            e = e + binom_tail(n - 1, eta, k) * a[k][i]
            w = w + binom_tail(n, eta, k) * a[k][i]
        eps[i] = e
        v[i] = vh[i] - w
    return v, eps


def strict_by_energy(g, loss_fn, x, y, eta, n, vinit=None):
    """Strict's beliefs by autograd descent on F (v <- v - eta dF/dv over the hidden v);
    returns the beliefs."""
    N = g.N
    vhat = [t.detach() for t in forward_all(g, x)]
    start = vinit if vinit is not None else vhat
    v = [t.detach().clone() for t in start]
    v[0] = x.detach()
    for _ in range(n):
        hid = [v[i].detach().requires_grad_(True) for i in range(1, N)]
        vv = [v[0]] + hid + [v[N]]
        F = loss_fn(g.apply(N, vv), y)
        for i in range(1, N):
            F = F + 0.5 * ((g.apply(i, vv) - vv[i]) ** 2).sum()
        dF = torch.autograd.grad(F, hid)
        v = [v[0]] + [h.detach() - eta * d for h, d in zip(hid, dF)] + [v[N]]
    return v


def adjoints_total(g, vhat, dldy):
    """Backprop's adjoints by reverse accumulation with ``vjp`` (sum over all paths)."""
    N = g.N
    vh = [t.detach() for t in vhat]
    adj = [torch.zeros_like(t) for t in vh]
    adj[N] = dldy
    for j in range(N, 0, -1):
        for i, c in vjp(g, j, vh, adj[j]).items():
            if i > 0:
                adj[i] = adj[i] + c
    return adj


def chain_graph(model):
    """The chain ``x -> model[0] -> model[1] -> ...`` of an ``nn.Sequential`` as a GraphDef
    (parameters named as by ``model.named_parameters()``)."""
    nodes = [Node((), None)]
    for l, layer in enumerate(model):
        nodes.append(Node((l,), lambda xs, f=layer: f(xs[0])))
    return GraphDef(nodes, dict(model.named_parameters()))


__all__ = [
    "Node",
    "GraphDef",
    "ERR_TYPES",
    "pc_infer_graph",
    "forward_all",
    "vjp",
    "param_updates",
    "binom_tail",
    "path_adjoints",
    "fixed_pred_closed_form",
    "strict_by_energy",
    "adjoints_total",
    "chain_graph",
]

