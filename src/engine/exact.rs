//! Exact: backprop written in predictive-coding form. One forward, one backward:
//! `ε_i = ∂ℓ/∂v̂_i` through all paths, `v_i = v̂_i − ε_i`.

use crate::engine::relax::no_relaxation;
use crate::engine::{detached, Ctx, Raw};
use crate::error::Result;
use crate::util;
use tch::Tensor;

pub(crate) fn run(ctx: &mut Ctx<'_, '_>) -> Result<Raw> {
    let n = ctx.out();
    let (h, _) = ctx.forward_chained(None)?;
    ctx.check_vinit(&h)?;
    let (loss, deltas, grads) = ctx.backprop(&h[n], &h[1..])?;
    let mut eps = vec![ctx.zero_input_error(&h[n])?];
    // v = v̂ − ε, written into one block (see `util::empty_block`).
    let hidden: Vec<&Tensor> = h[1..].iter().collect();
    let mut v = vec![ctx.x.shallow_clone()];
    for ((hi, e), out) in h[1..].iter().zip(deltas).zip(util::empty_block(&hidden)?) {
        v.push(hi.f_detach()?.f_sub_out(&out, &e)?);
        eps.push(e);
    }
    Ok(Raw {
        vhat: detached(&h)?,
        loss,
        dldy: eps[n].shallow_clone(),
        v,
        eps,
        grads,
        report: no_relaxation(ctx.settings.eta),
    })
}
