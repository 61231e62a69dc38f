//! FixedPred: predictive coding under the fixed prediction assumption, on any graph.
//!
//! With Jacobians fixed at the feed-forward values, one sweep maps the prediction errors
//! linearly: `ε_i^{(k+1)} = (1-η) ε_i^{(k)} + η Σ_{j∈ch(i)} J_{j←i}(v̂)ᵀ ε_j^{(k)}`,
//! `ε_N = ∂ℓ/∂v̂_N`, `ε_i^{(1)} = 0`. Expanding over paths,
//! `ε_i^{(k)} = Σ_m c_m^{(k)} a_i^{(m)}`, where `a_i^{(m)}` is backprop's adjoint of node `i`
//! restricted to paths of exactly `m` edges to the output
//! (`a_N^{(0)} = ∂ℓ/∂v̂_N`, `a_i^{(m)} = Σ_{j∈ch(i)} J_{j←i}ᵀ a_j^{(m-1)}`) and the scalars
//! `c_m^{(k)}` obey the chain's recursion, `c_m^{(k)} = P(Binomial(k-1, η) ≥ m)` for `η ≤ 1`
//! (zero for `m ≥ k`). The seed returns `ε^{(n)}`, the beliefs `v_i = v̂_i - ε_i^{(n+1)}`,
//! and the updates `Σ_i (∂f_i/∂θ)ᵀ ε_i^{(n)}`.
//!
//! * [`scaled`]: every node has one path length `d_i` (chains): one forward and one backward
//!   pass whose gradient is multiplied by `c_{d_i}/c_{d_i-1}` on leaving node `i`.
//! * [`graded`]: any graph: adjoints per (node, path length `m < n`), one vector-Jacobian
//!   product each, in one reverse sweep.
//! * [`literal`]: the seed's loop of `n` sweeps, one backward pass per sweep (also with
//!   `tol` or a belief optimizer).

use crate::coefficients::path_coefficients;
use crate::engine::relax::{check_room, Relaxation};
use crate::engine::stepper::Stepper;
use crate::engine::{detached, Ctx, Raw};
use crate::err_type::ErrType;
use crate::error::Result;
use crate::options::{BeliefOptimizer, FixedPredMode};
use crate::util;
use std::collections::BTreeMap;
use tch::Tensor;

/// FixedPred in the mode the settings ask for (the closed forms choose by cost).
pub(crate) fn run(ctx: &mut Ctx<'_, '_>) -> Result<Raw> {
    let s = ctx.settings;
    if s.tol.is_some() || s.belief_optimizer != BeliefOptimizer::Plain {
        return literal(ctx);
    }
    if s.fixed_pred != FixedPredMode::Literal {
        // The closed forms record all n sweeps' energies: refuse an n they cannot hold.
        check_room(s.n)?;
    }
    match s.fixed_pred {
        FixedPredMode::Literal => literal(ctx),
        FixedPredMode::Graded => graded(ctx),
        FixedPredMode::ClosedForm => {
            let lengths = ctx.topo.path_lengths();
            if lengths[1..].iter().all(|l| l.len() == 1) {
                let depth: Vec<usize> = lengths
                    .iter()
                    .map(|l| l.last().copied().unwrap_or(0))
                    .collect();
                scaled(ctx, &depth)
            } else if graded_cost(ctx, &lengths) <= s.n.saturating_mul(ctx.out()) {
                graded(ctx)
            } else {
                literal(ctx)
            }
        }
    }
}

/// The number of vector-Jacobian products of the graded form: one per node `j` with a
/// hidden parent and path length `m < n` of `j` (`lengths`: every node's path lengths).
fn graded_cost(ctx: &Ctx<'_, '_>, lengths: &[Vec<usize>]) -> usize {
    let n = ctx.settings.n;
    (1..=ctx.out())
        .filter(|&j| ctx.topo.parents[j].iter().any(|&p| p != 0))
        .map(|j| lengths[j].iter().filter(|&&m| m < n).count())
        .sum()
}

/// Records sweeps `1..=n` of a closed form: for each hidden node `i`, `grams[i]` holds
/// `(m, m', ⟨a_i^(m), a_i^(m')⟩)`, so `‖ε_i^{(k)}‖² = Σ c_m^{(k)} c_{m'}^{(k)} ⟨a^(m), a^(m')⟩`;
/// `top` is `‖∂ℓ/∂v̂_N‖`. Returns the energy after the last sweep (with `c^{(n+1)}`).
fn record_closed_form(
    relax: &mut Relaxation<'_>,
    n: usize,
    eta: f64,
    loss: f64,
    grams: &[Vec<(usize, usize, f64)>],
    top: f64,
    max_len: usize,
) -> Result<f64> {
    let at = |c: &[f64]| -> (f64, Vec<f64>) {
        let mut norms: Vec<f64> = grams
            .iter()
            .skip(1)
            .map(|g| {
                g.iter()
                    .map(|&(m, k, v)| c[m] * c[k] * v)
                    .sum::<f64>()
                    .max(0.0)
                    .sqrt()
            })
            .collect();
        let energy = loss + 0.5 * norms.iter().map(|x| x * x).sum::<f64>();
        norms.push(top);
        (energy, norms)
    };
    let mut c = path_coefficients(1, eta, max_len);
    for k in 1..=n {
        let (e, norms) = at(&c);
        relax.record(k, e, &norms, 0, f64::NAN, f64::NAN)?;
        crate::coefficients::sweep_in_place(&mut c, eta);
    }
    Ok(at(&c).0)
}

/// The closed form for graphs whose nodes each have one path length `d_i` to the output:
/// `ε_i = c_{d_i}^{(n)} δ_i` with `δ_i = ∂ℓ/∂v̂_i`, from one backward pass in which the
/// gradient leaving node `i` is multiplied by `c_{d_i}/c_{d_i-1}` (0 where `c_{d_i-1} = 0`:
/// the nodes below get zero updates, but their variables still get a `.grad`).
fn scaled(ctx: &mut Ctx<'_, '_>, depth: &[usize]) -> Result<Raw> {
    let n_out = ctx.out();
    let (eta, n) = (ctx.settings.eta, ctx.settings.n);
    let max_len = depth[1..].iter().copied().max().unwrap_or(0);
    let cn = path_coefficients(n, eta, max_len);
    let cm = crate::coefficients::sweep(&cn, eta);
    // Supported when a zero coefficient is never followed by a non-zero one (always for
    // η ≤ 1); otherwise the graded form handles any η.
    if (1..=max_len).any(|m| cn[m - 1] == 0.0 && (cn[m] != 0.0 || cm[m] != 0.0)) {
        return graded(ctx);
    }
    let mut scales = vec![1.0; n_out + 1];
    for i in ctx.topo.hidden() {
        let d = depth[i];
        scales[i] = if cn[d - 1] != 0.0 {
            cn[d] / cn[d - 1]
        } else {
            0.0
        };
    }
    let (h, u) = ctx.forward_chained(Some(&scales))?;
    let vhat = detached(&h)?;
    ctx.check_vinit(&vhat)?;
    // Boundary nodes: zero error but a moving belief; their adjoint is read before scaling.
    let boundary: Vec<usize> = ctx
        .topo
        .hidden()
        .filter(|&i| cn[depth[i]] == 0.0 && cm[depth[i]] != 0.0)
        .collect();
    let mut wrt: Vec<Tensor> = h[1..].iter().map(|t| t.shallow_clone()).collect();
    wrt.extend(boundary.iter().map(|&b| u[b].shallow_clone()));
    let (loss, mut g, grads) = ctx.backprop(&h[n_out], &wrt)?;
    let at_boundary = g.split_off(n_out);
    let mut eps = vec![ctx.zero_input_error(&vhat[n_out])?];
    let mut v = vec![ctx.x.shallow_clone()];
    let mut grams = vec![Vec::new(); n_out];
    for (i, e) in (1..=n_out).zip(g) {
        let d = depth[i];
        if i == n_out || cn[d] == 0.0 {
            v.push(vhat[i].shallow_clone());
        } else {
            let norm = util::norm(&e)? / cn[d];
            grams[i] = vec![(d, d, norm * norm)];
            v.push(vhat[i].f_sub(&e.f_mul_scalar(cm[d] / cn[d])?)?);
        }
        eps.push(e);
    }
    for (&b, gb) in boundary.iter().zip(at_boundary) {
        let d = depth[b];
        let delta = gb.f_div_scalar(cn[d - 1])?;
        let norm = util::norm(&delta)?;
        grams[b] = vec![(d, d, norm * norm)];
        v[b] = vhat[b].f_sub(&delta.f_mul_scalar(cm[d])?)?;
    }
    let mut relax = Relaxation::new(ctx.settings, ctx.observer.take());
    let top = util::norm(&eps[n_out])?;
    let loss_value = loss.f_double_value(&[])?;
    let final_energy = record_closed_form(&mut relax, n, eta, loss_value, &grams, top, max_len)?;
    Ok(Raw {
        vhat,
        loss,
        dldy: eps[n_out].shallow_clone(),
        v,
        eps,
        grads,
        report: relax.report(ErrType::FixedPred, final_energy),
    })
}

/// The graded closed form for any graph: adjoints `a_i^(m)` by path length `m ≤ n`, from
/// one reverse sweep with one vector-Jacobian product per node `j` and length `m < n`, then
/// `ε_i = Σ_m c_m^{(n)} a_i^(m)` and `v_i = v̂_i - Σ_m c_m^{(n+1)} a_i^(m)`.
fn graded(ctx: &mut Ctx<'_, '_>) -> Result<Raw> {
    let n_out = ctx.out();
    let (eta, n) = (ctx.settings.eta, ctx.settings.n);
    let (h, u) = ctx.forward_leaves()?;
    let vhat = detached(&h)?;
    ctx.check_vinit(&vhat)?;
    let (loss, dldy) = ctx.loss_and_grad(&vhat[n_out])?;
    let mut adj: Vec<BTreeMap<usize, Tensor>> = (0..=n_out).map(|_| BTreeMap::new()).collect();
    adj[n_out].insert(0, dldy.shallow_clone());
    for j in (1..=n_out).rev() {
        let ps: Vec<usize> = {
            let mut ps: Vec<usize> = ctx.topo.parents[j]
                .iter()
                .copied()
                .filter(|&p| p != 0)
                .collect();
            ps.sort_unstable();
            ps.dedup();
            ps
        };
        if ps.is_empty() || !h[j].requires_grad() {
            continue;
        }
        let leaves: Vec<Tensor> = ps.iter().map(|&p| u[p].shallow_clone()).collect();
        let terms: Vec<(usize, Tensor)> = adj[j]
            .iter()
            .filter(|(&m, _)| m < n)
            .map(|(&m, a)| (m, a.shallow_clone()))
            .collect();
        for (m, a) in terms {
            let g = util::grads(&[util::dot(&h[j], &a)?], &leaves, true)?;
            for (&p, gp) in ps.iter().zip(g) {
                if !gp.defined() {
                    continue;
                }
                let sum = match adj[p].remove(&(m + 1)) {
                    Some(prev) => prev.f_add(&gp)?,
                    None => gp,
                };
                adj[p].insert(m + 1, sum);
            }
        }
    }
    // Only the path lengths that occur matter (and none beyond n: their coefficients are 0).
    let max_len = adj
        .iter()
        .flat_map(|a| a.keys().copied())
        .max()
        .unwrap_or(0);
    let cn = path_coefficients(n, eta, max_len + 1);
    let cm = crate::coefficients::sweep(&cn, eta);
    let mut eps = vec![ctx.zero_input_error(&vhat[n_out])?];
    let mut v = vec![ctx.x.shallow_clone()];
    let mut grams = vec![Vec::new(); n_out];
    for i in 1..n_out {
        if adj[i].is_empty() {
            // No path to the output: no error, no move.
            v.push(vhat[i].shallow_clone());
            eps.push(vhat[i].f_zeros_like()?);
            continue;
        }
        // The adjoints a^(m) as the rows of A (M × D): ε = cnᵀA, Δv = cmᵀA and the Gram
        // matrix A Aᵀ (for the energies) in three matrix products and one synchronisation.
        let lens: Vec<usize> = adj[i].keys().copied().collect();
        let rows: Vec<Tensor> = adj[i]
            .values()
            .map(|a| a.f_reshape([1, -1]))
            .collect::<std::result::Result<_, _>>()?;
        let a = Tensor::f_cat(&rows, 0)?;
        // Rows whose coefficients are both 0 are left out (0 · a would turn a non-finite
        // adjoint into NaN where the sum has no such term).
        let used: Vec<usize> = (0..lens.len())
            .filter(|&x| cn[lens[x]] != 0.0 || cm[lens[x]] != 0.0)
            .collect();
        let coef: Vec<f64> = used
            .iter()
            .map(|&x| cn[lens[x]])
            .chain(used.iter().map(|&x| cm[lens[x]]))
            .collect();
        let coef = Tensor::f_from_slice(&coef)?
            .f_to_device(a.device())?
            .f_to_kind(a.kind())?
            .f_reshape([2, used.len() as i64])?;
        let r = if used.len() == lens.len() {
            coef.f_mm(&a)?
        } else {
            let idx: Vec<i64> = used.iter().map(|&x| x as i64).collect();
            let idx = Tensor::f_from_slice(&idx)?.f_to_device(a.device())?;
            coef.f_mm(&a.f_index_select(0, &idx)?)?
        };
        let shape = vhat[i].size();
        let e = r.f_select(0, 0)?.f_reshape(shape.as_slice())?;
        let dv = r.f_select(0, 1)?.f_reshape(shape.as_slice())?;
        let gram = a
            .f_mm(&a.f_tr()?)?
            .f_to_kind(tch::Kind::Double)?
            .f_flatten(0, -1)?;
        let gram = Vec::<f64>::try_from(&gram)?;
        for (x, &m) in lens.iter().enumerate() {
            for (y, &k) in lens.iter().enumerate() {
                grams[i].push((m, k, gram[x * lens.len() + y]));
            }
        }
        v.push(vhat[i].f_sub(&dv)?);
        eps.push(e);
    }
    v.push(vhat[n_out].shallow_clone());
    eps.push(dldy.shallow_clone());
    let grads = ctx.updates(&h, &eps)?;
    let mut relax = Relaxation::new(ctx.settings, ctx.observer.take());
    let top = util::norm(&dldy)?;
    let final_energy = record_closed_form(
        &mut relax,
        n,
        eta,
        loss.f_double_value(&[])?,
        &grams,
        top,
        max_len + 1,
    )?;
    Ok(Raw {
        vhat,
        loss,
        dldy,
        v,
        eps,
        grads,
        report: relax.report(ErrType::FixedPred, final_energy),
    })
}

/// The seed's literal loop on a graph: `n` sweeps; in each, `ε_i = v̂_i - v_i` for every
/// hidden node, then `v_i ← v_i + η(ε_i - Σ_j J_{j←i}(v̂)ᵀ ε_j)` (or the belief optimizer's
/// step), all vector-Jacobian products from one backward pass through per-node graphs.
fn literal(ctx: &mut Ctx<'_, '_>) -> Result<Raw> {
    let n_out = ctx.out();
    let eta = ctx.settings.eta;
    let (h, u) = ctx.forward_leaves()?;
    let vhat = detached(&h)?;
    ctx.check_vinit(&vhat)?;
    let (loss, dldy) = ctx.loss_and_grad(&vhat[n_out])?;
    let loss_value = loss.f_double_value(&[])?;
    let hidden: Vec<usize> = ctx.topo.hidden().collect();
    let leaves: Vec<Tensor> = hidden.iter().map(|&i| u[i].shallow_clone()).collect();
    // Nodes whose value depends on a hidden belief: their <h_j, ε_j> terms carry the
    // vector-Jacobian products.
    let readers: Vec<usize> = (1..=n_out)
        .filter(|&j| ctx.topo.parents[j].iter().any(|&p| p != 0) && h[j].requires_grad())
        .collect();
    let mut v: Vec<Tensor> = vhat.iter().map(|t| t.shallow_clone()).collect();
    let mut eps: Vec<Tensor> = vhat
        .iter()
        .map(|t| t.f_zeros_like())
        .collect::<std::result::Result<_, _>>()?;
    eps[0] = ctx.zero_input_error(&vhat[n_out])?;
    eps[n_out] = dldy.shallow_clone();
    let mut relax = Relaxation::new(ctx.settings, ctx.observer.take());
    let mut stepper = Stepper::new(ctx.settings.belief_optimizer);
    for k in 1..=ctx.settings.n {
        for &i in &hidden {
            eps[i] = vhat[i].f_sub(&v[i])?;
        }
        let roots: Vec<Tensor> = readers
            .iter()
            .map(|&j| util::dot(&h[j], &eps[j]))
            .collect::<Result<_>>()?;
        let mut vjp = util::grads(&roots, &leaves, true)?.into_iter();
        let mut dirs: Vec<Tensor> = (0..=n_out).map(|_| Tensor::default()).collect();
        for &i in &hidden {
            let g = util::or_zeros(vjp.next().unwrap_or_default(), &v[i])?;
            dirs[i] = eps[i].f_sub(&g)?;
        }
        let (delta, state) = stepper.propose(&mut dirs, &hidden, eta, true)?.into_parts();
        let state_norm = stepper.accept(state)?;
        let (change, update_norm) = relax.measure(&delta, &v, &hidden)?;
        for &i in &hidden {
            v[i] = v[i].f_add(&delta[i])?;
        }
        let norms: Vec<f64> = (1..=n_out)
            .map(|i| util::norm(&eps[i]))
            .collect::<Result<_>>()?;
        let e = loss_value + 0.5 * norms[..n_out - 1].iter().map(|x| x * x).sum::<f64>();
        relax.record(k, e, &norms, 0, update_norm, state_norm)?;
        if relax.converged(k, change) {
            break;
        }
    }
    let final_norms: Vec<f64> = hidden
        .iter()
        .map(|&i| util::norm(&vhat[i].f_sub(&v[i])?))
        .collect::<Result<_>>()?;
    let final_energy = loss_value + 0.5 * final_norms.iter().map(|x| x * x).sum::<f64>();
    let grads = ctx.updates(&h, &eps)?;
    Ok(Raw {
        vhat,
        loss,
        dldy,
        v,
        eps,
        grads,
        report: relax.report(ErrType::FixedPred, final_energy),
    })
}
