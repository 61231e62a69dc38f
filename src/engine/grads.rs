//! Writing parameter updates into `.grad`.

use crate::error::{PcError, Result};
use crate::util;
use tch::Tensor;

/// Writes `grads[k]` into the `.grad` of `vars[k]`, overwriting, for every defined
/// `grads[k]` (an undefined one means the model does not use the variable: its `.grad` is
/// left as it is). Runs in grad mode whatever the caller's mode.
///
/// * An existing `.grad` of the update's shape gets the update copied in (in the `.grad`'s
///   own dtype).
/// * An existing `.grad` of another shape (a user resized it) is replaced: its data become
///   a copy of the update (`set_data`, in the `.grad`'s dtype), never added to with
///   broadcasting.
/// * A variable with no `.grad` gets one from autograd (the backward pass of `<v, g>`).
///
/// Everything that can fail (creating the `.grad`s, the replacements' copies) runs before
/// any existing `.grad` changes, so that an error leaves them untouched.
pub(crate) fn write(vars: &[Tensor], grads: &[Tensor]) -> Result<()> {
    let mut fresh: Vec<(&Tensor, &Tensor)> = Vec::new();
    let mut existing: Vec<(Tensor, &Tensor)> = Vec::new();
    let mut replaced: Vec<(Tensor, Tensor)> = Vec::new();
    for (v, g) in vars.iter().zip(grads) {
        if !g.defined() {
            continue;
        }
        let cur = v.f_grad()?;
        if !cur.defined() {
            fresh.push((v, g));
        } else if cur.size() == g.size() {
            existing.push((cur, g));
        } else {
            // A copy of its own in the .grad's dtype (one op, converting or not).
            let data = tch::no_grad(|| g.f_to_dtype(cur.kind(), false, true))?;
            if !cur.f_internal_has_compatible_shallow_copy_type(&data)? {
                return Err(PcError::InvalidConfig(format!(
                    "a trainable variable of shape {:?} has a .grad of shape {:?} that cannot \
                     be replaced by a dense one (a sparse .grad?); set it to none (the \
                     optimizer's zero_grad) before the call",
                    v.size(),
                    cur.size()
                )));
            }
            replaced.push((cur, data));
        }
    }
    if !fresh.is_empty() {
        tch::with_grad(|| -> Result<()> {
            // Variables with no .grad: let autograd create it with value g (the backward of
            // <v, g> is g · 1, exactly).
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
        for (mut cur, data) in replaced {
            cur.f_set_data(&data)?;
        }
        for (mut cur, g) in existing {
            cur.f_copy_(g)?;
        }
        Ok(())
    })
}
