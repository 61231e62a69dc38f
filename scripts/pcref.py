"""Reference implementation of the seed algorithm (PCInfer) for this repository.

This is the repo's own Python/PyTorch implementation of the three predictive-coding
inference algorithms -- Strict, FixedPred and Exact -- of Rosenbaum (2022), "On the
relationship between predictive coding and backpropagation" (Torch2PC / TorchSeq2PC).
It is used to generate the golden files in ``tests/golden`` (see ``gen_golden.py``)
and as the Python speed baseline (see ``bench_seed.py``). The Rust crate does not
depend on it at build or test time.

Conventions (mirrored by the Rust port):
  * ``model`` is a sequence of L layers; index 0 is the input, layers are 1..L and
    ``model[l-1]`` maps ``v[l-1]`` to ``v[l]``.
  * ``pc_infer`` returns ``(vhat, loss, dldy, v, eps)``; ``vhat``, ``v`` and ``eps``
    are lists of length L+1 with ``vhat[0] = v[0] = x`` and ``eps[0] = None``.
  * After the call, every parameter's ``.grad`` holds the PC parameter update
    (d f_l(input_{l-1}) / d theta_l)^T eps_l, overwritten (not accumulated).
  * Strict honours ``vinit`` (beliefs 1..L start there instead of at vhat; v[0] is
    always x). FixedPred keeps v[0] = x (the input belief is not relaxed).

The operation order matches the published implementation exactly so that, in float64,
results are bit-identical to it.
"""
import torch

ERR_TYPES = ("Strict", "FixedPred", "Exact")


def forward_all(model, x):
    """Feed-forward pass; returns [x, f_1(x), f_2(f_1(x)), ...] (graph attached)."""
    vhat = [x]
    for layer in model:
        vhat.append(layer(vhat[-1]))
    return vhat


def vjp(layer, at, cot):
    """(d layer(a) / d a)^T cot, evaluated at a = at."""
    a = at.detach().requires_grad_(True)
    out = layer(a)
    return torch.autograd.grad(out, a, grad_outputs=cot)[0]


def set_grads(model, inputs, eps):
    """Set p.grad = (d f_l(inputs[l-1]) / d p)^T eps[l] for every layer l with parameters."""
    for l, layer in enumerate(model, start=1):
        params = list(layer.parameters())
        if not params:
            continue
        out = layer(inputs[l - 1].detach())
        grads = torch.autograd.grad(out, params, grad_outputs=eps[l], allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = g


def _exact(model, loss, x, vhat):
    L = len(model)
    eps = [None] + list(torch.autograd.grad(loss, vhat[1:], retain_graph=True))
    v = [x] + [vhat[l] - eps[l] for l in range(1, L + 1)]
    set_grads(model, vhat, eps)
    return v, eps


def _fixed_pred(model, dldy, vhat, eta, n):
    L = len(model)
    v = [t.detach().clone() for t in vhat]
    eps = [None] * (L + 1)
    eps[L] = dldy
    for _ in range(n):
        for l in range(L - 1, 0, -1):
            eps[l] = vhat[l].detach() - v[l]
            v[l] = v[l] + eta * (eps[l] - vjp(model[l], vhat[l], eps[l + 1]))
    set_grads(model, vhat, eps)
    return v, eps


def _strict(model, loss_fn, x, y, vhat, eta, n, vinit):
    L = len(model)
    start = vinit if vinit is not None else vhat
    v = [t.detach().clone() for t in start]
    v[0] = x.detach()
    eps = [None] * (L + 1)
    for _ in range(n):
        a = v[L - 1].detach().requires_grad_(True)
        out = model[L - 1](a)
        eps[L] = torch.autograd.grad(loss_fn(out, y), out)[0]
        for l in range(L - 1, 0, -1):
            with torch.no_grad():
                pred = model[l - 1](v[l - 1])
            eps[l] = pred - v[l]
            v[l] = v[l] + eta * (eps[l] - vjp(model[l], v[l], eps[l + 1]))
    set_grads(model, v, eps)
    return v, eps


def pc_infer(model, loss_fn, x, y, err_type, eta=0.1, n=20, vinit=None):
    """Run PC inference and set parameter gradients.

    Returns ``(vhat, loss, dldy, v, eps)``; see the module docstring.
    """
    vhat = forward_all(model, x)
    loss = loss_fn(vhat[-1], y)
    dldy = torch.autograd.grad(loss, vhat[-1], retain_graph=True)[0]
    if err_type == "Exact":
        v, eps = _exact(model, loss, x, vhat)
    elif err_type == "FixedPred":
        v, eps = _fixed_pred(model, dldy, vhat, eta, n)
    elif err_type == "Strict":
        v, eps = _strict(model, loss_fn, x, y, vhat, eta, n, vinit)
    else:
        raise ValueError("err_type must be 'Strict', 'FixedPred' or 'Exact'")
    return vhat, loss, dldy, v, eps
