//! Strict predictive coding: gradient descent on the energy
//! `F(v) = ℓ(f_L(v_{L-1}), y) + ½ Σ_{l<L} ‖f_l(v_{l-1}) - v_l‖²`.
//!
//! A sweep of the seed evaluates every term at the beliefs it starts from, so it is one
//! exact gradient step `v_l ← v_l - η ∂F/∂v_l = v_l + η (ε_l - J_{l+1}(v_l)ᵀ ε_{l+1})`.
//! Here a sweep is one forward pass over layers `2..=L` (layer 1's prediction `f_1(x)` never
//! changes) building `F`, and one backward pass for `∂F/∂v_l` of all layers at once. The
//! parameter updates are computed once, at the end, from the forward pass at the final
//! beliefs. The values are those of the seed bit for bit: `∂F/∂v_l` is `-(ε_l - Jᵀε_{l+1})`
//! computed by the same kernels.

use crate::err_type::ErrType;
use crate::error::{PcError, Result};
use crate::infer::{
    check_finite_loss, check_vinit_shapes, Ctx, OnDiverge, PcReport, Raw, StopReason,
};
use crate::observer::Iteration;
use crate::util;
use tch::Tensor;

/// The forward half of a sweep at beliefs `v`.
struct Eval {
    /// Leaves holding `v_l`, `l = 1..L-1` (index `l`; index 0 unused).
    leaves: Vec<Tensor>,
    /// `f_l(v_{l-1})`, `l = 2..=L`, with graph (index `l`; 0 and 1 unused).
    preds: Vec<Tensor>,
    /// `ε_l = f_l(v_{l-1}) - v_l`, `l = 1..L-1`, detached (index 0 unused).
    diffs: Vec<Tensor>,
    /// `ℓ(f_L(v_{L-1}), y)`, with graph.
    loss: Tensor,
    /// `F(v)`.
    value: f64,
}

/// Layers `2..=L` on leaves holding `v_1..v_{L-1}`.
fn forward(ctx: &Ctx<'_, '_>, v: &[Tensor], vhat1: &Tensor) -> Result<Eval> {
    let layers = ctx.layers();
    let mut leaves = vec![Tensor::default()];
    for vl in &v[1..layers] {
        leaves.push(util::leaf(vl)?);
    }
    let mut preds = vec![Tensor::default(), Tensor::default()];
    for l in 2..=layers {
        preds.push(ctx.apply(l, &leaves[l - 1])?);
    }
    evaluate(ctx, leaves, preds, vhat1)
}

/// The loss, the prediction errors (without graph) and the energy
/// `F(v) = ℓ + ½ Σ_{l<L} ‖ε_l‖²`.
fn evaluate(
    ctx: &Ctx<'_, '_>,
    leaves: Vec<Tensor>,
    preds: Vec<Tensor>,
    vhat1: &Tensor,
) -> Result<Eval> {
    let layers = ctx.layers();
    let loss = ctx.loss(&preds[layers])?;
    let mut value = loss.f_double_value(&[])?;
    let mut diffs = vec![Tensor::default()];
    tch::no_grad(|| -> Result<()> {
        for l in 1..layers {
            let pred = if l == 1 { vhat1 } else { &preds[l] };
            let d = pred.f_sub(&leaves[l])?;
            value += 0.5 * util::sq_norm(&d)?;
            diffs.push(d);
        }
        Ok(())
    })?;
    Ok(Eval {
        leaves,
        preds,
        diffs,
        loss,
        value,
    })
}

/// The backward half: `(ε, Jᵀε)` where `ε = [0, ε_1, …, ε_L]` and `(Jᵀε)_l =
/// J_{l+1}(v_l)ᵀ ε_{l+1}` for `l = 1..L-1`, all from one backward pass of
/// `ℓ(f_L(v_{L-1})) + Σ_{2≤l<L} ⟨f_l(v_{l-1}), ε_l⟩`.
fn backward(ev: Eval, layers: usize) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let mut roots = vec![ev.loss.shallow_clone()];
    for l in 2..layers {
        if ev.preds[l].requires_grad() {
            roots.push(util::dot(&ev.preds[l], &ev.diffs[l])?);
        }
    }
    let mut inputs = vec![ev.preds[layers].shallow_clone()];
    inputs.extend(ev.leaves[1..].iter().map(|t| t.shallow_clone()));
    let mut g = util::grads(&roots, &inputs, false)?.into_iter();
    let eps_top = util::or_zeros(g.next().unwrap_or_default(), &ev.preds[layers])?;
    let mut eps = ev.diffs;
    eps.push(eps_top);
    let mut vjp = vec![Tensor::default()];
    for leaf in &ev.leaves[1..] {
        vjp.push(util::or_zeros(g.next().unwrap_or_default(), leaf)?);
    }
    Ok((eps, vjp))
}

pub(crate) fn run(ctx: &mut Ctx<'_, '_>) -> Result<Raw> {
    let layers = ctx.layers();
    // Layer 1's prediction f_1(x) never changes: computed once, with graph (reused for its
    // parameter update).
    let h1 = ctx.apply(1, &ctx.x)?;
    let vhat1 = h1.f_detach()?;
    let eta = ctx.eta;
    let mut step = eta;
    // `dldy` comes from the first sweep's backward pass when the feed-forward pass is its
    // evaluation.
    let (vhat, loss, mut v, mut ev, mut dldy) = match &ctx.vinit {
        None if layers > 1 => {
            // The feed-forward pass, on leaves, is the first sweep's evaluation (v = v̂).
            let mut leaves = vec![Tensor::default(), util::leaf(&vhat1)?];
            let mut preds = vec![Tensor::default(), Tensor::default()];
            for l in 2..=layers {
                let p = ctx.apply(l, &leaves[l - 1])?;
                if l < layers {
                    leaves.push(util::leaf(&p)?);
                }
                preds.push(p);
            }
            let mut vhat = vec![ctx.x.shallow_clone(), vhat1.shallow_clone()];
            for p in &preds[2..] {
                vhat.push(p.f_detach()?);
            }
            let ev = evaluate(ctx, leaves, preds, &vhat1)?;
            check_finite_loss(&ev.loss)?;
            let loss = ev.loss.f_detach()?;
            let v = vhat.iter().map(|t| t.shallow_clone()).collect();
            (vhat, loss, v, ev, None)
        }
        _ => {
            let mut vhat = vec![ctx.x.shallow_clone(), vhat1.shallow_clone()];
            tch::no_grad(|| -> Result<()> {
                for l in 2..=layers {
                    let out = ctx.apply(l, &vhat[l - 1])?;
                    vhat.push(out);
                }
                Ok(())
            })?;
            let (loss, dldy) = ctx.loss_and_grad(&vhat[layers])?;
            let mut v: Vec<Tensor> = match &ctx.vinit {
                Some(v0) => {
                    check_vinit_shapes(v0, &vhat)?;
                    v0.iter()
                        .map(|t| t.f_detach())
                        .collect::<std::result::Result<_, _>>()?
                }
                None => vhat.iter().map(|t| t.shallow_clone()).collect(),
            };
            v[0] = ctx.x.shallow_clone();
            if layers == 1 {
                return single_layer(ctx, vhat, loss, dldy, v, &h1);
            }
            let ev = forward(ctx, &v, &vhat1)?;
            (vhat, loss, v, ev, Some(dldy))
        }
    };
    let initial = ev.value;
    if !initial.is_finite() {
        return Err(PcError::NonFiniteBeliefs {
            iteration: 1,
            energy: initial,
        });
    }
    let mut energy = Vec::with_capacity(ctx.n);
    let mut backtracks = 0;
    let mut stop = StopReason::MaxIterations;
    let mut iterations = 0;
    let mut last_eps: Vec<Tensor> = Vec::new();
    let mut halvings_here = 0;
    let mut fixed_extents: Option<Vec<(usize, usize)>> = None;
    for k in 1..=ctx.n {
        let e_k = ev.value;
        energy.push(e_k);
        let (eps, vjp) = backward(ev, layers)?;
        if dldy.is_none() {
            dldy = Some(eps[layers].shallow_clone());
        }
        if let Some(obs) = ctx.observer.as_deref_mut() {
            let norms: Vec<f64> = eps[1..].iter().map(util::norm).collect::<Result<_>>()?;
            obs.observe(&Iteration::new(k, e_k, &norms, step, halvings_here));
        }
        last_eps = eps;
        halvings_here = 0;
        // The memory of the tensors that outlive every sweep (outputs and parameters), once
        // `dldy` is known (after the first backward pass).
        let fixed = fixed_extents.get_or_insert_with(|| {
            vhat.iter()
                .chain(dldy.as_ref())
                .chain(&ctx.vars)
                .filter_map(util::extent)
                .collect::<Vec<_>>()
        });
        let mut dirs = directions(&last_eps, vjp, &v, fixed)?;
        // Propose v + step·(ε - Jᵀε) = v - step·∂F/∂v; with Backtrack, halve the step
        // until F decreases.
        let (next_v, next_ev, change) = loop {
            let mut next_v = v.iter().map(|t| t.shallow_clone()).collect::<Vec<_>>();
            let mut change: f64 = 0.0;
            for l in 1..layers {
                // The seed's v + η (ε - Jᵀε): the direction scaled and shifted, in place
                // when the step cannot be retried (the same operations, hence the same bits).
                let mut next = match ctx.on_diverge {
                    OnDiverge::Error => dirs[l].f_mul_scalar_(step)?,
                    OnDiverge::Backtrack => dirs[l].f_mul_scalar(step)?,
                };
                if ctx.tol.is_some() {
                    change = change.max(util::rel_change(&next, &v[l])?);
                }
                let _ = next.f_add_(&v[l])?;
                next_v[l] = next;
            }
            let next_ev = forward(ctx, &next_v, &vhat[1])?;
            let e = next_ev.value;
            match ctx.on_diverge {
                OnDiverge::Error => {
                    if !e.is_finite() {
                        return Err(PcError::NonFiniteBeliefs {
                            iteration: k,
                            energy: e,
                        });
                    }
                    if e > initial + ctx.divergence_tolerance * initial.abs() {
                        return Err(PcError::Diverged {
                            iteration: k,
                            energy: e,
                            initial_energy: initial,
                            eta: step,
                        });
                    }
                    break (next_v, Some(next_ev), change);
                }
                OnDiverge::Backtrack => {
                    if e.is_finite() && e <= e_k {
                        break (next_v, Some(next_ev), change);
                    }
                    step *= 0.5;
                    backtracks += 1;
                    halvings_here += 1;
                    if step < eta * 1e-6 {
                        break (Vec::new(), None, 0.0);
                    }
                }
            }
        };
        match next_ev {
            Some(e) => {
                v = next_v;
                ev = e;
                iterations = k;
            }
            None => {
                // No step decreases F: stay at the last accepted beliefs.
                stop = StopReason::StepTooSmall { iteration: k };
                ev = forward(ctx, &v, &vhat[1])?;
                break;
            }
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
    // Parameter updates at the final beliefs with the last sweep's errors.
    let final_energy = ev.value;
    let mut roots = vec![util::dot(&h1, &last_eps[1])?];
    for (pred, e) in ev.preds.iter().zip(&last_eps).skip(2) {
        roots.push(util::dot(pred, e)?);
    }
    let grads = ctx.param_grads(&roots)?;
    drop(ev);
    // Set by the first sweep's backward pass, which runs since n >= 1 (validated).
    let dldy = dldy.ok_or(PcError::ZeroIterations("Strict"))?;
    Ok(Raw {
        vhat,
        loss,
        dldy,
        v,
        eps: {
            let mut e = last_eps;
            e[0] = ctx.x.f_zeros_like()?;
            e
        },
        grads,
        report: PcReport {
            err_type: ErrType::Strict,
            iterations,
            stop,
            backtracks,
            final_eta: step,
            energy,
            final_energy: Some(final_energy),
        },
    })
}

/// The directions `ε_l - J_{l+1}(v_l)ᵀ ε_{l+1}`, `l = 1..L-1` (index 0 unused), each
/// written over its `Jᵀε` when that gradient is contiguous and shares no memory with any
/// other tensor in use (`eps`, `v`, the other gradients, and `fixed_extents`: those of the
/// outputs and parameters). It is a fresh gradient in every ordinary model; a layer returning
/// its input makes gradients alias. One allocation fewer per layer and sweep, same bits.
fn directions(
    eps: &[Tensor],
    vjp: Vec<Tensor>,
    v: &[Tensor],
    fixed_extents: &[(usize, usize)],
) -> Result<Vec<Tensor>> {
    let held: Vec<(usize, usize)> = eps
        .iter()
        .chain(v)
        .filter_map(util::extent)
        .chain(fixed_extents.iter().copied())
        .collect();
    let grads: Vec<Option<(usize, usize)>> = vjp.iter().map(util::extent).collect();
    let mut dirs = vec![Tensor::default()];
    for (l, g) in vjp.iter().enumerate().skip(1) {
        let e = &eps[l];
        let apart = grads[l].is_some_and(|r| {
            held.iter().all(|&h| util::disjoint(r, h))
                && grads
                    .iter()
                    .enumerate()
                    .all(|(j, o)| j == l || o.is_none_or(|o| util::disjoint(r, o)))
        });
        let in_place = apart
            && g.is_contiguous()
            && g.kind() == e.kind()
            && g.device() == e.device()
            && g.size() == e.size();
        dirs.push(if in_place {
            e.f_sub_out(g, g)?
        } else {
            e.f_sub(g)?
        });
    }
    Ok(dirs)
}

/// `L = 1`: no hidden beliefs; `ε_1 = ∂ℓ/∂f_1(x)` and the update is backprop's.
fn single_layer(
    ctx: &mut Ctx<'_, '_>,
    vhat: Vec<Tensor>,
    loss: Tensor,
    dldy: Tensor,
    v: Vec<Tensor>,
    h1: &Tensor,
) -> Result<Raw> {
    let value = loss.f_double_value(&[])?;
    let norms = [util::norm(&dldy)?];
    if let Some(obs) = ctx.observer.as_deref_mut() {
        for k in 1..=ctx.n {
            obs.observe(&Iteration::new(k, value, &norms, ctx.eta, 0));
        }
    }
    let grads = ctx.param_grads(&[util::dot(h1, &dldy)?])?;
    Ok(Raw {
        vhat,
        loss,
        dldy: dldy.shallow_clone(),
        v,
        eps: vec![ctx.x.f_zeros_like()?, dldy],
        grads,
        report: PcReport {
            err_type: ErrType::Strict,
            iterations: ctx.n,
            stop: StopReason::MaxIterations,
            backtracks: 0,
            final_eta: ctx.eta,
            energy: vec![value; ctx.n],
            final_energy: Some(value),
        },
    })
}
