//! Exact: backprop written in predictive-coding form. One forward, one backward.

use crate::err_type::ErrType;
use crate::error::Result;
use crate::infer::{check_vinit_shapes, Ctx, PcReport, Raw, StopReason};

pub(crate) fn run(ctx: &mut Ctx<'_, '_>) -> Result<Raw> {
    let layers = ctx.layers();
    let mut h = vec![ctx.x.shallow_clone()];
    h.extend(ctx.forward_graph(1, &ctx.x, None)?);
    if let Some(v0) = &ctx.vinit {
        check_vinit_shapes(v0, &h)?;
    }
    let (loss, deltas, grads) = ctx.backprop(&h[layers], &h[1..])?;
    let mut eps = vec![ctx.x.f_zeros_like()?];
    let mut v = vec![ctx.x.shallow_clone()];
    for (hl, e) in h[1..].iter().zip(deltas) {
        v.push(hl.f_detach()?.f_sub(&e)?);
        eps.push(e);
    }
    Ok(Raw {
        vhat: h
            .iter()
            .map(|t| t.f_detach())
            .collect::<std::result::Result<_, _>>()?,
        loss,
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
