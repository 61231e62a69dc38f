//! Exact: backprop written in predictive-coding form. One forward, one backward.

use crate::err_type::ErrType;
use crate::error::Result;
use crate::infer::{check_finite_loss, check_vinit_shapes, Ctx, PcReport, Raw, StopReason};
use crate::util;
use tch::Tensor;

pub(crate) fn run(ctx: &mut Ctx<'_, '_>) -> Result<Raw> {
    let layers = ctx.layers();
    let mut h = vec![ctx.x.shallow_clone()];
    h.extend(ctx.forward_graph(1, &ctx.x, None)?);
    if let Some(v0) = &ctx.vinit {
        check_vinit_shapes(v0, &h)?;
    }
    let loss = ctx.loss(&h[layers])?;
    check_finite_loss(&loss)?;
    let mut inputs: Vec<Tensor> = h[1..].iter().map(|t| t.shallow_clone()).collect();
    inputs.extend(ctx.vars.iter().map(|v| v.shallow_clone()));
    let mut g = util::grads(std::slice::from_ref(&loss), &inputs, false)?.into_iter();
    let mut eps = vec![ctx.x.f_zeros_like()?];
    let mut v = vec![ctx.x.shallow_clone()];
    for hl in &h[1..] {
        let e = util::or_zeros(g.next().unwrap_or_default(), hl)?;
        v.push(hl.f_detach()?.f_sub(&e)?);
        eps.push(e);
    }
    let grads: Vec<Tensor> = g.collect();
    Ok(Raw {
        vhat: h
            .iter()
            .map(|t| t.f_detach())
            .collect::<std::result::Result<_, _>>()?,
        loss: loss.f_detach()?,
        dldy: eps[layers].shallow_clone(),
        v,
        eps,
        grads,
        report: PcReport {
            err_type: ErrType::Exact,
            iterations: 0,
            stop: StopReason::NoRelaxation,
            backtracks: 0,
            final_eta: ctx.eta,
            energy: Vec::new(),
            final_energy: None,
        },
    })
}
