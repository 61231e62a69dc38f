//! Strict predictive coding on a graph: gradient descent on the energy
//! `F(v) = ℓ(f_N(v_pa(N)), y) + ½ Σ_{hidden i} ‖f_i(v_pa(i)) - v_i‖²`.
//!
//! A sweep evaluates every term at the beliefs it starts from, so it is one exact gradient
//! step `v_i ← v_i - η ∂F/∂v_i = v_i + η (ε_i - Σ_{j∈ch(i)} J_{j←i}(v)ᵀ ε_j)` (or the belief
//! optimizer's step along that direction). A sweep is one forward pass over the nodes whose
//! parents include a hidden node (the predictions of nodes fed by the input alone never
//! change) building `F`, and one backward pass for `∂F/∂v_i` of all nodes at once. The
//! parameter updates are computed once, at the end, from the forward pass at the final
//! beliefs. On a chain the values are those of the seed bit for bit: `∂F/∂v_l` is
//! `-(ε_l - Jᵀε_{l+1})` computed by the same kernels.

use crate::engine::relax::Relaxation;
use crate::engine::stepper::Stepper;
use crate::engine::{check_finite_loss, grads, Ctx, Raw};
use crate::err_type::ErrType;
use crate::error::{PcError, Result};
use crate::guard::{self, Caught};
use crate::options::OnDiverge;
use crate::util;
use tch::Tensor;

/// The forward half of a sweep at beliefs `v`.
struct Eval {
    /// Leaves holding `v_i` for hidden nodes, `x` at 0, undefined at `N`.
    leaves: Vec<Tensor>,
    /// `f_i(v_pa(i))`, `i = 1..=N`, with graph (index 0 undefined).
    preds: Vec<Tensor>,
    /// `ε_i = f_i(v_pa(i)) - v_i` for hidden nodes, detached (undefined elsewhere).
    diffs: Vec<Tensor>,
    /// `ℓ(f_N(v_pa(N)), y)`, with graph.
    loss: Tensor,
    /// `F(v)`.
    value: f64,
}

fn undefined(n: usize) -> Vec<Tensor> {
    (0..n).map(|_| Tensor::default()).collect()
}

/// The predictions at beliefs `v` (hidden nodes as leaves); `fixed[i]` where defined.
fn forward(ctx: &Ctx<'_, '_>, v: &[Tensor], fixed: &[Tensor]) -> Result<Eval> {
    let n = ctx.out();
    let mut leaves = undefined(n + 1);
    leaves[0] = ctx.x.shallow_clone();
    for i in ctx.topo.hidden() {
        leaves[i] = util::leaf(&v[i])?;
    }
    let mut preds = undefined(n + 1);
    for i in 1..=n {
        preds[i] = if fixed[i].defined() {
            fixed[i].shallow_clone()
        } else {
            ctx.apply(i, &ctx.graph.gather(i, &leaves))?
        };
    }
    evaluate(ctx, leaves, preds)
}

/// The loss, the prediction errors (without graph) and the energy
/// `F(v) = ℓ + ½ Σ_hidden ‖ε_i‖²`.
fn evaluate(ctx: &Ctx<'_, '_>, leaves: Vec<Tensor>, preds: Vec<Tensor>) -> Result<Eval> {
    let n = ctx.out();
    let loss = ctx.loss(&preds[n])?;
    let mut value = loss.f_double_value(&[])?;
    let mut diffs = undefined(n + 1);
    tch::no_grad(|| -> Result<()> {
        for i in ctx.topo.hidden() {
            let d = preds[i].f_sub(&leaves[i])?;
            value += 0.5 * util::sq_norm(&d)?;
            diffs[i] = d;
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

/// The backward half: `(ε, Σ_j J_{j←i}ᵀ ε_j)` (indexed by node; `ε_N = ∂ℓ/∂f_N`), all from one
/// backward pass of `ℓ(f_N(v_pa(N))) + Σ_{hidden j not fixed} ⟨f_j(v_pa(j)), ε_j⟩`.
fn backward(ctx: &Ctx<'_, '_>, ev: Eval) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let n = ctx.out();
    let mut roots = vec![ev.loss.shallow_clone()];
    for j in ctx.topo.hidden() {
        if !ctx.topo.fixed[j] && ev.preds[j].requires_grad() {
            roots.push(util::dot(&ev.preds[j], &ev.diffs[j])?);
        }
    }
    let mut inputs = vec![ev.preds[n].shallow_clone()];
    inputs.extend(ctx.topo.hidden().map(|i| ev.leaves[i].shallow_clone()));
    let mut g = util::grads(&roots, &inputs, false)?.into_iter();
    let eps_top = util::or_zeros(g.next().unwrap_or_default(), &ev.preds[n])?;
    let mut eps = ev.diffs;
    eps[n] = eps_top;
    let mut vjp = undefined(n + 1);
    for i in ctx.topo.hidden() {
        vjp[i] = util::or_zeros(g.next().unwrap_or_default(), &ev.leaves[i])?;
    }
    Ok((eps, vjp))
}

/// The predictions of the nodes fed by the input alone (with graph), undefined elsewhere.
fn fixed_predictions(ctx: &Ctx<'_, '_>) -> Result<Vec<Tensor>> {
    let n = ctx.out();
    let mut fixed = undefined(n + 1);
    let input = [ctx.x.shallow_clone()];
    for (i, slot) in fixed.iter_mut().enumerate().skip(1) {
        if ctx.topo.fixed[i] {
            *slot = ctx.apply(i, &ctx.graph.gather(i, &input))?;
        }
    }
    Ok(fixed)
}

pub(crate) fn run(ctx: &mut Ctx<'_, '_>) -> Result<Raw> {
    let n = ctx.out();
    let hidden: Vec<usize> = ctx.topo.hidden().collect();
    let mut fixed = fixed_predictions(ctx)?;
    // `dldy` comes from the first sweep's backward pass when the feed-forward pass is its
    // evaluation.
    let (vhat, loss, mut v, mut ev, mut dldy) = match &ctx.vinit {
        None if n > 1 => {
            // The feed-forward pass, on leaves, is the first sweep's evaluation (v = v̂).
            let mut leaves = undefined(n + 1);
            leaves[0] = ctx.x.shallow_clone();
            let mut preds = undefined(n + 1);
            for i in 1..=n {
                let p = if fixed[i].defined() {
                    fixed[i].shallow_clone()
                } else {
                    ctx.apply(i, &ctx.graph.gather(i, &leaves))?
                };
                if i < n {
                    leaves[i] = util::leaf(&p)?;
                }
                preds[i] = p;
            }
            ctx.feed_forward_done()?;
            let mut vhat = vec![ctx.x.shallow_clone()];
            for p in &preds[1..] {
                vhat.push(p.f_detach()?);
            }
            let ev = evaluate(ctx, leaves, preds)?;
            check_finite_loss(&ev.loss)?;
            let loss = ev.loss.f_detach()?;
            let v = vhat.iter().map(|t| t.shallow_clone()).collect();
            (vhat, loss, v, ev, None)
        }
        _ => {
            let mut vhat = vec![ctx.x.shallow_clone()];
            for (i, f) in fixed.iter().enumerate().skip(1) {
                let p = if f.defined() {
                    f.shallow_clone()
                } else {
                    ctx.apply(i, &ctx.graph.gather(i, &vhat))?
                };
                vhat.push(p.f_detach()?);
            }
            ctx.feed_forward_done()?;
            let (loss, dldy) = ctx.loss_and_grad(&vhat[n])?;
            ctx.check_vinit(&vhat)?;
            let mut v: Vec<Tensor> = match &ctx.vinit {
                // vinit[0] is ignored (the input is clamped to x): it may be undefined.
                Some(v0) => std::iter::once(Ok(ctx.x.shallow_clone()))
                    .chain(v0.iter().skip(1).map(|t| t.f_detach()))
                    .collect::<std::result::Result<_, _>>()?,
                None => vhat.iter().map(|t| t.shallow_clone()).collect(),
            };
            v[0] = ctx.x.shallow_clone();
            if n == 1 {
                return single_node(ctx, vhat, loss, dldy, v, fixed);
            }
            let ev = forward(ctx, &v, &fixed)?;
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
    let on_diverge = ctx.settings.on_diverge;
    let mut relax = Relaxation::new(ctx.settings, ctx.observer.take());
    let mut stepper = Stepper::new(ctx.settings.belief_optimizer);
    let incremental = ctx.optimizer.is_some();
    let mut last_eps: Vec<Tensor> = Vec::new();
    let mut fixed_extents: Option<Vec<(usize, usize)>> = None;
    for k in 1..=ctx.settings.n {
        let e_k = ev.value;
        let (eps, vjp) = backward(ctx, ev)?;
        if dldy.is_none() {
            dldy = Some(eps[n].shallow_clone());
        }
        let norms: Vec<f64> = if relax.observed() {
            eps[1..].iter().map(util::norm).collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        last_eps = eps;
        // The memory of the tensors that outlive every sweep (outputs and parameters), once
        // `dldy` is known (after the first backward pass).
        let held = fixed_extents.get_or_insert_with(|| {
            vhat.iter()
                .chain(dldy.as_ref())
                .chain(&ctx.vars)
                .chain(&fixed)
                .filter_map(util::extent)
                .collect::<Vec<_>>()
        });
        let mut dirs = directions(&last_eps, vjp, &v, held, &hidden)?;
        // Propose a step along -∂F/∂v; with Backtrack, halve it until F decreases.
        let consume = on_diverge == OnDiverge::Error;
        let mut halvings = 0;
        let accepted = loop {
            let (mut delta, state) = stepper
                .propose(&mut dirs, &hidden, relax.step, consume)?
                .into_parts();
            let mut next_v: Vec<Tensor> = v.iter().map(|t| t.shallow_clone()).collect();
            let (change, update) = relax.measure(&delta, &v, &hidden)?;
            for &i in &hidden {
                // The seed's v + η (ε - Jᵀε): the step added in place to the fresh (or
                // consumed) direction: the same operations, hence the same bits.
                let mut next = std::mem::take(&mut delta[i]);
                let _ = next.f_add_(&v[i])?;
                next_v[i] = next;
            }
            let next_ev = forward(ctx, &next_v, &fixed)?;
            let e = next_ev.value;
            match on_diverge {
                OnDiverge::Error => {
                    if !e.is_finite() {
                        return Err(PcError::NonFiniteBeliefs {
                            iteration: k,
                            energy: e,
                        });
                    }
                    if e > initial + ctx.settings.divergence_tolerance * initial.abs() {
                        return Err(PcError::Diverged {
                            iteration: k,
                            energy: e,
                            initial_energy: initial,
                            eta: relax.step,
                        });
                    }
                    break Some((next_v, next_ev, state, change, update));
                }
                OnDiverge::Backtrack => {
                    if e.is_finite() && e <= e_k {
                        break Some((next_v, next_ev, state, change, update));
                    }
                    halvings += 1;
                    stepper.reset();
                    if !relax.halve() {
                        break None;
                    }
                }
            }
        };
        let Some((next_v, next_ev, state, change, update)) = accepted else {
            // No step decreases F: stay at the last accepted beliefs.
            relax.step_too_small(k);
            ev = forward(ctx, &v, &fixed)?;
            break;
        };
        let state_norm = stepper.accept(state)?;
        v = next_v;
        ev = next_ev;
        relax.record(k, e_k, &norms, halvings, update, state_norm)?;
        if incremental {
            incremental_step(ctx, &ev, &last_eps)?;
            relax.param_step();
            fixed = fixed_predictions(ctx)?;
            ev = forward(ctx, &v, &fixed)?;
        }
        // Measured as if the full step η had been taken: a step that backtracking has made
        // small does not count as convergence by itself.
        if relax.converged(k, change * relax.eta / relax.step) {
            break;
        }
    }
    // Parameter updates at the final beliefs with the last sweep's errors (incremental PC
    // has applied them already, sweep by sweep).
    let final_energy = ev.value;
    let grads = if incremental {
        undefined(ctx.vars.len())
    } else {
        ctx.updates(&ev.preds, &last_eps)?
    };
    drop(ev);
    // Set by the first sweep's backward pass, which runs since n >= 1 (validated).
    let dldy = dldy.ok_or(PcError::ZeroIterations("Strict"))?;
    let mut eps = last_eps;
    eps[0] = ctx.zero_input_error(&dldy)?;
    Ok(Raw {
        vhat,
        loss,
        dldy,
        v,
        eps,
        grads,
        report: relax.report(ErrType::Strict, final_energy),
    })
}

/// Incremental PC: the parameter updates at the beliefs `ev` was computed at, with errors
/// `eps`, written into `.grad`, then one step of the user's optimizer.
fn incremental_step(ctx: &mut Ctx<'_, '_>, ev: &Eval, eps: &[Tensor]) -> Result<()> {
    let roots: Vec<Tensor> = (1..=ctx.out())
        .map(|i| util::dot(&ev.preds[i], &eps[i]))
        .collect::<Result<_>>()?;
    let g = ctx.param_grads(&roots, true)?;
    let refs: Vec<&Tensor> = g.iter().collect();
    if !util::all_finite(&refs)? {
        return Err(PcError::NonFiniteGradient(
            "a variable (incremental step)".into(),
        ));
    }
    let g: Vec<Tensor> = g
        .iter()
        .zip(&ctx.vars)
        .map(|(g, v)| {
            if g.defined() {
                Ok(g.f_detach()?.f_to_kind(v.kind())?)
            } else {
                Ok(Tensor::default())
            }
        })
        .collect::<Result<_>>()?;
    grads::write(&ctx.vars, &g)?;
    if let Some(opt) = ctx.optimizer.as_deref_mut() {
        guard::catch(|| tch::no_grad(|| opt.step())).map_err(|c| match c {
            Caught::Error(e) => e,
            Caught::Message(m) => PcError::Torch(format!("the optimizer's step failed: {m}")),
        })?;
    }
    Ok(())
}

/// The directions `ε_i - Σ_j J_{j←i}ᵀ ε_j` for the hidden nodes (undefined elsewhere), each
/// written over its `Jᵀε` when that gradient is contiguous and shares no memory with any
/// other tensor in use (`eps`, `v`, the other gradients, and `held`: the outputs, the
/// parameters and the fixed predictions). It is a fresh gradient in every ordinary model; a
/// layer returning its input makes gradients alias. One allocation fewer per node and sweep,
/// same bits.
fn directions(
    eps: &[Tensor],
    vjp: Vec<Tensor>,
    v: &[Tensor],
    held: &[(usize, usize)],
    hidden: &[usize],
) -> Result<Vec<Tensor>> {
    let held: Vec<(usize, usize)> = eps
        .iter()
        .chain(v)
        .filter_map(util::extent)
        .chain(held.iter().copied())
        .collect();
    let grads: Vec<Option<(usize, usize)>> = vjp.iter().map(util::extent).collect();
    let mut dirs = undefined(vjp.len());
    for &i in hidden {
        let (g, e) = (&vjp[i], &eps[i]);
        let apart = grads[i].is_some_and(|r| {
            held.iter().all(|&h| util::disjoint(r, h))
                && grads
                    .iter()
                    .enumerate()
                    .all(|(j, o)| j == i || o.is_none_or(|o| util::disjoint(r, o)))
        });
        let in_place = apart
            && g.is_contiguous()
            && g.kind() == e.kind()
            && g.device() == e.device()
            && g.size() == e.size();
        dirs[i] = if in_place {
            e.f_sub_out(g, g)?
        } else {
            e.f_sub(g)?
        };
    }
    Ok(dirs)
}

/// `N = 1`: no hidden beliefs; `ε_1 = ∂ℓ/∂f_1(x)` and the update is backprop's. With
/// incremental PC, `n` backprop steps.
fn single_node(
    ctx: &mut Ctx<'_, '_>,
    vhat: Vec<Tensor>,
    loss: Tensor,
    dldy: Tensor,
    v: Vec<Tensor>,
    fixed: Vec<Tensor>,
) -> Result<Raw> {
    let value = loss.f_double_value(&[])?;
    let norms = [util::norm(&dldy)?];
    let mut relax = Relaxation::new(ctx.settings, ctx.observer.take());
    let mut pred = fixed[1].shallow_clone();
    let mut err = dldy.shallow_clone();
    let mut energy = value;
    for k in 1..=ctx.settings.n {
        relax.record(k, energy, &norms, 0, 0.0, 0.0)?;
        if ctx.optimizer.is_some() {
            let ev = Eval {
                leaves: Vec::new(),
                preds: vec![Tensor::default(), pred.shallow_clone()],
                diffs: Vec::new(),
                loss: Tensor::default(),
                value: energy,
            };
            incremental_step(ctx, &ev, &[Tensor::default(), err.shallow_clone()])?;
            relax.param_step();
            pred = ctx.apply(1, &[ctx.x.shallow_clone()])?;
            let (l, g) = ctx.loss_and_grad(&pred)?;
            energy = l.f_double_value(&[])?;
            err = g;
        }
    }
    let grads = if ctx.optimizer.is_some() {
        undefined(ctx.vars.len())
    } else {
        ctx.param_grads(&[util::dot(&pred, &dldy)?], false)?
    };
    Ok(Raw {
        vhat,
        loss,
        dldy: dldy.shallow_clone(),
        v,
        eps: vec![ctx.zero_input_error(&dldy)?, dldy],
        grads,
        report: relax.report(ErrType::Strict, energy),
    })
}
