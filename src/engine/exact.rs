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
    // v = v̂ − ε and, for a floating input, the zeros ε_0, written into one block (see
    // `util::empty_block`), allocated before the backward pass: it then reuses memory the
    // previous call's outputs left, rather than growing the heap after the backward pass
    // has filled it (about 3% of the call on the residual network of the benchmark).
    let float_input = util::is_float(ctx.x.kind());
    let mut like: Vec<&Tensor> = h[1..].iter().collect();
    if float_input {
        like.push(&ctx.x);
    }
    let mut parts = util::empty_block(&like)?;
    let (loss, deltas, grads) = ctx.backprop(&h[n], &h[1..])?;
    let eps0 = match float_input.then(|| parts.pop()).flatten() {
        Some(mut zeros) => {
            let _ = zeros.f_zero_()?;
            zeros
        }
        None => ctx.zero_input_error(&h[n])?,
    };
    let mut eps = vec![eps0];
    let mut v = vec![ctx.x.shallow_clone()];
    for ((hi, e), out) in h[1..].iter().zip(deltas).zip(parts) {
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
