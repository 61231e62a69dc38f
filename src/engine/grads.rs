//! Writing parameter updates into `.grad`.

use crate::error::Result;
use crate::util;
use tch::Tensor;

/// Writes `grads[k]` into the `.grad` of `vars[k]`, overwriting, for every defined
/// `grads[k]` (an undefined one means the model does not use the variable: its `.grad` is
/// left as it is). Runs in grad mode whatever the caller's mode. The only fallible step,
/// creating `.grad` where there is none yet, runs first, so that an error leaves every
/// existing `.grad` untouched.
///
/// With `hand_over = Some(held)`, the updates are the caller's to give away: an existing
/// `.grad` takes over the memory of its update (`set_data`, no copy) when nothing else can
/// see that memory: the update is dense, laid out like the variable (the layout autograd
/// gives `.grad`), of the `.grad`'s dtype and device, and shares no byte with another
/// update, a variable or a tensor of `held` (what the call returns). Any other update is
/// copied. The values in `.grad` are the same either way; only a view taken of the old
/// `.grad` before the call keeps the old values (as after PyTorch's
/// `zero_grad(set_to_none=True)` and a backward pass).
pub(crate) fn write(
    vars: &[Tensor],
    grads: &[Tensor],
    hand_over: Option<&[&Tensor]>,
) -> Result<()> {
    let mut fresh: Vec<(&Tensor, &Tensor)> = Vec::new();
    let mut existing: Vec<(Tensor, &Tensor, bool)> = Vec::new();
    let adoptable = hand_over.map(|held| adoptable(vars, grads, held));
    for (k, (v, g)) in vars.iter().zip(grads).enumerate() {
        if !g.defined() {
            continue;
        }
        let cur = v.f_grad()?;
        if cur.defined() && cur.size() == g.size() {
            let adopt = adoptable.as_ref().is_some_and(|a| a[k])
                && cur.kind() == g.kind()
                && cur.device() == g.device();
            existing.push((cur, g, adopt));
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
    // `copy_` converts the dtype where the existing .grad has another one. Neither it nor
    // `set_data` fails on a .grad of the update's shape.
    tch::no_grad(|| -> Result<()> {
        for (mut cur, g, adopt) in existing {
            if adopt {
                cur.f_set_data(g)?;
            } else {
                cur.f_copy_(g)?;
            }
        }
        Ok(())
    })
}

/// Which updates may become `.grad` without a copy (see [`write`]): dense, with the
/// variable's sizes and strides, and sharing no memory with another update, any variable
/// or any tensor of `held`. A non-empty tensor of `held` whose memory cannot be located
/// (sparse, MKL-DNN) rules out every hand-over.
fn adoptable(vars: &[Tensor], grads: &[Tensor], held: &[&Tensor]) -> Vec<bool> {
    let none = vec![false; grads.len()];
    let located = |t: &Tensor| t.defined() && t.numel() > 0 && !t.is_sparse() && !t.is_mkldnn();
    let mut taken: Vec<(usize, usize)> = Vec::new();
    for t in held.iter().copied().chain(vars) {
        if !t.defined() || t.numel() == 0 {
            continue;
        }
        if !located(t) {
            return none;
        }
        taken.extend(util::extent(t));
    }
    if grads
        .iter()
        .any(|g| g.defined() && g.numel() > 0 && !located(g))
    {
        return none;
    }
    let spans: Vec<Option<(usize, usize)>> = grads.iter().map(util::extent).collect();
    grads
        .iter()
        .zip(vars)
        .enumerate()
        .map(|(k, (g, v))| {
            let Some(span) = spans[k] else {
                return false;
            };
            !g.requires_grad()
                && g.size() == v.size()
                && g.stride() == v.stride()
                && taken.iter().all(|&t| util::disjoint(span, t))
                && spans
                    .iter()
                    .enumerate()
                    .all(|(j, o)| j == k || o.is_none_or(|o| util::disjoint(span, o)))
        })
        .collect()
}
