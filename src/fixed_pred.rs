//! FixedPred: predictive coding under the fixed prediction assumption.
//!
//! With Jacobians fixed at the feed-forward values, one sweep maps the prediction errors
//! linearly: `ε_l^{(k+1)} = (1-η) ε_l^{(k)} + η J_{l+1}(v̂_l)ᵀ ε_{l+1}^{(k)}`,
//! `ε_L = ∂ℓ/∂v̂_L`, `ε_l^{(1)} = 0`. Hence `ε_l^{(k)} = c_l^{(k)} δ_l` with
//! `δ_l = ∂ℓ/∂v̂_l` (backprop's error) and scalar coefficients obeying the same recursion,
//! `c_l^{(k)} = P(Binomial(k-1, η) ≥ L-l)` for `η ≤ 1`. The seed returns `ε^{(n)}` and the
//! beliefs `v_l = v̂_l - ε_l^{(n+1)}`; the updates are `c_l^{(n)}` times backprop's.

use crate::err_type::ErrType;
use crate::error::Result;
use crate::infer::{check_vinit_shapes, Ctx, PcReport, Raw, StopReason};
use crate::observer::Iteration;
use crate::util;
use tch::Tensor;

/// One sweep of the coefficient recursion.
fn sweep(c: &[f64], eta: f64) -> Vec<f64> {
    let layers = c.len() - 1;
    let mut next = vec![0.0; layers + 1];
    for l in 1..layers {
        next[l] = (1.0 - eta) * c[l] + eta * c[l + 1];
    }
    next[layers] = 1.0;
    next
}

/// The coefficients `c^{(k)}_l`, `l = 0..=L` (index 0 unused, always 0), for `k = 1..=n+1`.
///
/// `coefficients(eta, n, L)[k-1][l] = c_l^{(k)}`; `c_l^{(n)}` scales the returned errors and
/// the updates, `c_l^{(n+1)}` the belief corrections.
pub fn coefficients(eta: f64, n: usize, layers: usize) -> Vec<Vec<f64>> {
    let mut c = vec![0.0; layers + 1];
    c[layers] = 1.0;
    let mut all = Vec::with_capacity(n + 1);
    for _ in 0..=n {
        let next = sweep(&c, eta);
        all.push(c);
        c = next;
    }
    all
}

/// `P(Binomial(n, p) ≥ k) = Σ_{j=k}^{n} C(n, j) p^j (1-p)^{n-j}`: with `n-1` sweeps and
/// `p = η ≤ 1`, the factor by which FixedPred scales backprop's error at layer `L-k`
/// (Rosenbaum 2022). Computed directly from the sum, independently of the recursion that
/// [`coefficients`] and `pc_infer` use.
///
/// ```
/// use tch2pc::binomial_tail;
/// assert_eq!(binomial_tail(3, 0.5, 0), 1.0);
/// assert!((binomial_tail(3, 0.5, 2) - 0.5).abs() < 1e-15);
/// assert_eq!(binomial_tail(1, 0.3, 2), 0.0); // more layers than sweeps: exactly zero
/// let c = tch2pc::fixed_pred_coefficients(0.3, 4, 5);
/// assert!((c[3][2] - binomial_tail(3, 0.3, 3)).abs() < 1e-15); // c_2 after 4 sweeps
/// ```
pub fn binomial_tail(n: usize, p: f64, k: usize) -> f64 {
    (k..=n)
        .map(|j| {
            let c: f64 = (0..j).map(|i| (n - i) as f64 / (i + 1) as f64).product();
            c * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32)
        })
        .sum()
}

/// The closed form: one forward, one backward with rescaled gradients.
pub(crate) fn closed_form(ctx: &mut Ctx<'_, '_>) -> Result<Raw> {
    let layers = ctx.layers();
    let eta = ctx.eta;
    let n = ctx.n;
    // c^{(n)} and c^{(n+1)} without keeping the whole history.
    let mut cn = vec![0.0; layers + 1];
    cn[layers] = 1.0;
    for _ in 1..n {
        cn = sweep(&cn, eta);
    }
    let cm = sweep(&cn, eta);
    // Layers lo..=L carry a non-zero coefficient; below, errors and updates are exactly 0.
    let mut lo = layers;
    while lo > 1 && cn[lo - 1] != 0.0 {
        lo -= 1;
    }
    let boundary = lo - 1; // the layer whose belief moves although its error is still 0
    let supported = (1..lo).all(|l| cn[l] == 0.0) && (1..boundary).all(|l| cm[l] == 0.0);
    if !supported {
        // Coefficients with interior zeros (possible for special η > 1): use the loop.
        return literal(ctx);
    }
    let need_boundary = boundary >= 1 && cm[boundary] != 0.0;

    // Forward: no graph below `lo`; a leaf at the boundary; rescaling nodes above.
    let mut vhat = vec![ctx.x.shallow_clone()];
    let mut input = ctx.x.shallow_clone();
    let mut boundary_leaf = None;
    for l in 1..lo {
        let out = tch::no_grad(|| ctx.apply(l, &input))?;
        input = if need_boundary && l == boundary {
            let leaf = util::leaf(&out)?;
            boundary_leaf = Some(leaf.shallow_clone());
            leaf
        } else {
            out.shallow_clone()
        };
        vhat.push(out);
    }
    let mut scales = vec![1.0; layers + 1];
    for l in lo..layers {
        scales[l] = cn[l] / cn[l + 1];
    }
    let upper = ctx.forward_graph(lo, &input, Some(&scales))?;
    vhat.extend(upper.iter().map(|t| t.shallow_clone()));
    if let Some(v0) = &ctx.vinit {
        check_vinit_shapes(v0, &vhat)?;
    }
    let mut wrt: Vec<Tensor> = upper.iter().map(|t| t.shallow_clone()).collect();
    wrt.extend(boundary_leaf.iter().map(|b| b.shallow_clone()));
    let (loss, mut deltas, grads) = ctx.backprop(&vhat[layers], &wrt)?;
    let boundary_grad = if boundary_leaf.is_some() {
        deltas.pop()
    } else {
        None
    };

    let mut eps = vec![ctx.x.f_zeros_like()?];
    let mut v = vec![ctx.x.shallow_clone()];
    let mut delta_norm = vec![0.0; layers + 1];
    let mut scaled = deltas.into_iter();
    for l in 1..=layers {
        let h = vhat[l].f_detach()?;
        if l < lo {
            eps.push(h.f_zeros_like()?);
            v.push(h);
            continue;
        }
        let e = scaled.next().unwrap_or_default();
        delta_norm[l] = util::norm(&e)? / cn[l];
        let vl = if l == layers {
            h
        } else {
            h.f_sub(&e.f_mul_scalar(cm[l] / cn[l])?)?
        };
        eps.push(e);
        v.push(vl);
    }
    if let Some(gb) = boundary_grad {
        delta_norm[boundary] = util::norm(&gb)? / cn[lo];
        v[boundary] = vhat[boundary]
            .f_detach()?
            .f_sub(&gb.f_mul_scalar(cm[boundary] / cn[lo])?)?;
    }

    // Energies and error norms per sweep, from the closed form.
    let loss_value = loss.f_double_value(&[])?;
    let energy_of = |c: &[f64]| {
        loss_value
            + 0.5
                * (1..layers)
                    .map(|l| (c[l] * delta_norm[l]).powi(2))
                    .sum::<f64>()
    };
    let mut energy = Vec::with_capacity(n);
    let mut c = vec![0.0; layers + 1];
    c[layers] = 1.0;
    for k in 1..=n {
        let e = energy_of(&c);
        energy.push(e);
        if let Some(obs) = ctx.observer.as_deref_mut() {
            let norms: Vec<f64> = (1..=layers).map(|l| c[l] * delta_norm[l]).collect();
            obs.observe(&Iteration::new(k, e, &norms, eta, 0));
        }
        c = sweep(&c, eta);
    }
    let final_energy = energy_of(&cm);
    Ok(Raw {
        vhat: vhat
            .iter()
            .map(|t| t.f_detach())
            .collect::<std::result::Result<_, _>>()?,
        loss,
        dldy: eps[layers].shallow_clone(),
        v,
        eps,
        grads,
        report: PcReport {
            err_type: ErrType::FixedPred,
            iterations: n,
            stop: StopReason::MaxIterations,
            backtracks: 0,
            final_eta: eta,
            energy,
            final_energy: Some(final_energy),
        },
    })
}

/// The seed's literal loop: `n` sweeps, one vector-Jacobian product per layer and sweep.
pub(crate) fn literal(ctx: &mut Ctx<'_, '_>) -> Result<Raw> {
    let layers = ctx.layers();
    let eta = ctx.eta;
    // Per-layer graphs: h_l = f_l(u_{l-1}) with u_l a leaf holding v̂_l.
    let mut u = vec![ctx.x.shallow_clone()];
    let mut h = vec![ctx.x.shallow_clone()];
    for l in 1..=layers {
        let out = ctx.apply(l, &u[l - 1])?;
        u.push(util::leaf(&out)?);
        h.push(out);
    }
    let vhat: Vec<Tensor> = h
        .iter()
        .map(|t| t.f_detach())
        .collect::<std::result::Result<_, _>>()?;
    if let Some(v0) = &ctx.vinit {
        check_vinit_shapes(v0, &vhat)?;
    }
    let (loss, dldy) = ctx.loss_and_grad(&vhat[layers])?;
    let loss_value = loss.f_double_value(&[])?;
    let mut v: Vec<Tensor> = vhat.iter().map(|t| t.shallow_clone()).collect();
    let mut eps: Vec<Tensor> = vhat
        .iter()
        .map(|t| t.f_zeros_like())
        .collect::<std::result::Result<_, _>>()?;
    eps[layers] = dldy.shallow_clone();
    let mut energy = Vec::new();
    let mut stop = StopReason::MaxIterations;
    let mut iterations = 0;
    for k in 1..=ctx.n {
        let mut change: f64 = 0.0;
        for l in (1..layers).rev() {
            eps[l] = vhat[l].f_sub(&v[l])?;
            let vjp = if h[l + 1].requires_grad() {
                let g = util::grads(
                    &[util::dot(&h[l + 1], &eps[l + 1])?],
                    &[u[l].shallow_clone()],
                    true,
                )?;
                util::or_zeros(g.into_iter().next().unwrap_or_default(), &v[l])?
            } else {
                v[l].f_zeros_like()?
            };
            let dv = eps[l].f_sub(&vjp)?.f_mul_scalar(eta)?;
            if ctx.tol.is_some() {
                change = change.max(util::rel_change(&dv, &v[l])?);
            }
            v[l] = v[l].f_add(&dv)?;
        }
        iterations = k;
        let norms: Vec<f64> = (1..=layers)
            .map(|l| util::norm(&eps[l]))
            .collect::<Result<_>>()?;
        let e = loss_value + 0.5 * norms[..layers - 1].iter().map(|x| x * x).sum::<f64>();
        energy.push(e);
        if let Some(obs) = ctx.observer.as_deref_mut() {
            obs.observe(&Iteration::new(k, e, &norms, eta, 0));
        }
        if let Some(tol) = ctx.tol {
            if change < tol {
                stop = StopReason::Converged {
                    iteration: k,
                    change,
                };
                break;
            }
        }
    }
    let final_norms: Vec<f64> = (1..layers)
        .map(|l| util::norm(&vhat[l].f_sub(&v[l])?))
        .collect::<Result<_>>()?;
    let final_energy = loss_value + 0.5 * final_norms.iter().map(|x| x * x).sum::<f64>();
    let roots: Vec<Tensor> = (1..=layers)
        .filter(|&l| h[l].requires_grad())
        .map(|l| util::dot(&h[l], &eps[l]))
        .collect::<Result<_>>()?;
    let grads = ctx.param_grads(&roots)?;
    Ok(Raw {
        vhat,
        loss,
        dldy,
        v,
        eps,
        grads,
        report: PcReport {
            err_type: ErrType::FixedPred,
            iterations,
            stop,
            backtracks: 0,
            final_eta: eta,
            energy,
            final_energy: Some(final_energy),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_are_binomial_tails() {
        for &eta in &[0.1, 0.5, 1.0] {
            for n in 1..12 {
                let c = coefficients(eta, n, 5);
                for (l, &got) in c[n - 1].iter().enumerate().skip(1) {
                    let want = binomial_tail(n - 1, eta, 5 - l);
                    assert!(
                        (got - want).abs() < 1e-14,
                        "eta {eta} n {n} l {l}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
