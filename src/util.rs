//! Small tensor helpers shared by the algorithms. All fallible, all dtype- and
//! device-generic.

use crate::error::Result;
use tch::{Kind, Tensor};

/// A detached copy of `t` that is a leaf requiring grad (shares storage with `t`).
pub(crate) fn leaf(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_detach()?.f_requires_grad_(true)?)
}

/// `Σ a ⊙ b`: the scalar whose gradient with respect to `a` is `b` (exactly: the backward
/// pass of `dot` multiplies `b` by the incoming gradient 1). One read of each, no temporary.
pub(crate) fn dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(a.f_flatten(0, -1)?.f_dot(&b.f_flatten(0, -1)?)?)
}

/// Gradients of the sum of the scalar `roots` with respect to `inputs`; undefined tensors
/// for inputs that the roots do not depend on.
pub(crate) fn grads(roots: &[Tensor], inputs: &[Tensor], keep_graph: bool) -> Result<Vec<Tensor>> {
    if inputs.is_empty() || roots.is_empty() {
        return Ok(Vec::new());
    }
    Ok(Tensor::f_run_backward(roots, inputs, keep_graph, false)?)
}

/// `g`, or zeros shaped like `like` when `g` is undefined.
pub(crate) fn or_zeros(g: Tensor, like: &Tensor) -> Result<Tensor> {
    if g.defined() {
        Ok(g)
    } else {
        Ok(like.f_zeros_like()?)
    }
}

/// An identity whose backward pass multiplies the gradient by `r`:
/// `u = h.detach() + r (h - h.detach())`. The forward value is `h` bit for bit.
pub(crate) fn scale_grad(h: &Tensor, r: f64) -> Result<Tensor> {
    if r == 1.0 {
        return Ok(h.shallow_clone());
    }
    let d = h.f_detach()?;
    Ok(d.f_add(&h.f_sub(&d)?.f_mul_scalar(r)?)?)
}

/// Euclidean norm of all elements, as f64.
pub(crate) fn norm(t: &Tensor) -> Result<f64> {
    if t.numel() == 0 {
        return Ok(0.0);
    }
    Ok(t.f_detach()?.f_norm()?.f_double_value(&[])?)
}

/// `‖t‖²` (sum of squared elements) as f64: one BLAS dot for float and double tensors
/// (a single pass, no square root), the square of the norm otherwise.
pub(crate) fn sq_norm(t: &Tensor) -> Result<f64> {
    if t.numel() == 0 {
        return Ok(0.0);
    }
    if matches!(t.kind(), Kind::Float | Kind::Double) {
        let f = t.f_flatten(0, -1)?;
        Ok(f.f_dot(&f)?.f_double_value(&[])?)
    } else {
        Ok(norm(t)?.powi(2))
    }
}

/// Largest absolute value, as f64.
pub(crate) fn max_abs(t: &Tensor) -> Result<f64> {
    if t.numel() == 0 {
        return Ok(0.0);
    }
    Ok(t.f_detach()?.f_abs()?.f_max()?.f_double_value(&[])?)
}

/// Whether every element of every tensor is finite (one synchronisation).
pub(crate) fn all_finite(ts: &[&Tensor]) -> Result<bool> {
    let mut acc: Option<Tensor> = None;
    for t in ts {
        if !t.defined() || t.numel() == 0 {
            continue;
        }
        let f = t.f_isfinite()?.f_all()?;
        acc = Some(match acc {
            None => f,
            Some(a) => a.f_logical_and(&f)?,
        });
    }
    match acc {
        None => Ok(true),
        Some(a) => Ok(a.f_int64_value(&[])? != 0),
    }
}

/// Whether `k` is a floating-point dtype.
pub(crate) fn is_float(k: Kind) -> bool {
    matches!(k, Kind::Half | Kind::Float | Kind::Double | Kind::BFloat16)
}

/// The relative change `‖Δv‖_∞ / ‖v‖_∞` of a belief (scale 1 for an all-zero belief): the
/// quantity that `tol` bounds.
pub(crate) fn rel_change(dv: &Tensor, v: &Tensor) -> Result<f64> {
    let scale = max_abs(v)?;
    Ok(max_abs(dv)? / if scale > 0.0 { scale } else { 1.0 })
}

/// The bytes `[start, end)` that `t`'s elements may occupy (from its sizes and strides;
/// everything when a stride is negative), or `None` for an undefined or empty tensor.
pub(crate) fn extent(t: &Tensor) -> Option<(usize, usize)> {
    if !t.defined() || t.numel() == 0 {
        return None;
    }
    let start = t.data_ptr() as usize;
    let mut last: i64 = 0;
    for (size, stride) in t.size().iter().zip(t.stride()) {
        if stride < 0 {
            return Some((0, usize::MAX));
        }
        last += (size - 1) * stride;
    }
    let bytes = (last as usize + 1) * t.kind().elt_size_in_bytes();
    Some((start, start.saturating_add(bytes)))
}

/// Whether two extents (see [`extent`]) share no byte.
pub(crate) fn disjoint(a: (usize, usize), b: (usize, usize)) -> bool {
    a.1 <= b.0 || b.1 <= a.0
}
