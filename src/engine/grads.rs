//! Writing parameter updates into `.grad`.

use crate::error::Result;
use crate::util;
use tch::Tensor;

/// Writes `grads[k]` into the `.grad` of `vars[k]`, overwriting, for every defined
/// `grads[k]` (an undefined one means the model does not use the variable: its `.grad` is
/// left as it is). Runs in grad mode whatever the caller's mode. The only fallible step,
/// creating `.grad` where there is none yet, runs first, so that an error leaves every
/// existing `.grad` untouched.
pub(crate) fn write(vars: &[Tensor], grads: &[Tensor]) -> Result<()> {
    let mut fresh: Vec<(&Tensor, &Tensor)> = Vec::new();
    let mut existing: Vec<(Tensor, &Tensor)> = Vec::new();
    for (v, g) in vars.iter().zip(grads) {
        if !g.defined() {
            continue;
        }
        let cur = v.f_grad()?;
        if cur.defined() && cur.size() == g.size() {
            existing.push((cur, g));
        } else {
            fresh.push((v, g));
        }
    }
    if !fresh.is_empty() {
        tch::with_grad(|| -> Result<()> {
            // Variables with no .grad (or one of another shape, which autograd then refuses
            // before anything is written): let autograd create it with value g (the backward
            // of <v, g> is g · 1, exactly).
            let mut total: Option<Tensor> = None;
            for (v, g) in &fresh {
                let term = util::dot(v, &g.f_to_kind(v.kind())?)?;
                total = Some(match total {
                    None => term,
                    Some(t) => t.f_add(&term)?,
                });
            }
            if let Some(t) = total {
                t.f_backward()?;
            }
            Ok(())
        })?;
    }
    // `copy_` converts the dtype where the existing .grad has another one.
    tch::no_grad(|| -> Result<()> {
        for (mut cur, g) in existing {
            cur.f_copy_(g)?;
        }
        Ok(())
    })
}
