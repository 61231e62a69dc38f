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
/// `u = lerp(h.detach(), h, r) = h.detach() + r (h - h.detach())`, one kernel. The forward
/// value is `h` bit for bit (for finite `h`: `h - h = 0`), and the gradient reaching `h` is
/// `r ·` the incoming one (the detached start gets none).
pub(crate) fn scale_grad(h: &Tensor, r: f64) -> Result<Tensor> {
    if r == 1.0 {
        return Ok(h.shallow_clone());
    }
    Ok(h.f_detach()?.f_lerp(h, r)?)
}

/// A detached copy of `t` with its own memory.
pub(crate) fn copy(t: &Tensor) -> Result<Tensor> {
    let mut c = t.f_empty_like()?;
    tch::no_grad(|| c.f_copy_(t))?;
    Ok(c)
}

/// Whether `a` and `b` look like the same tensor (same data, sizes, strides and dtype): a
/// layer that returns its input, or a view of all of it.
pub(crate) fn same_tensor(a: &Tensor, b: &Tensor) -> bool {
    a.defined()
        && b.defined()
        && a.data_ptr() == b.data_ptr()
        && a.kind() == b.kind()
        && a.size() == b.size()
        && a.stride() == b.stride()
}

/// `√(Σ_i x_i²)` of a list of norms.
pub(crate) fn hypot(norms: &[f64]) -> f64 {
    norms.iter().map(|x| x * x).sum::<f64>().sqrt()
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// `scale_grad` is the identity forward (bit for bit) and scales the gradient by `r`.
    #[test]
    fn scale_grad_is_identity_forward_and_scales_backward() {
        for kind in [Kind::Float, Kind::Double] {
            tch::manual_seed(5);
            let x = (Tensor::randn([64, 9], (kind, Device::Cpu)) * 1e4).set_requires_grad(true);
            let h = x.tanh() * 3.0 + &x;
            let up = Tensor::randn([64, 9], (kind, Device::Cpu));
            for r in [0.0, 1e-30, 0.3, 0.5, 0.7, 2.5] {
                let u = scale_grad(&h, r).unwrap();
                assert!(u.equal(&h), "{kind:?} r = {r}: forward value changed");
                let g = Tensor::run_backward(&[dot(&u, &up).unwrap()], &[&h], true, false);
                assert!(g[0].equal(&(&up * r)), "{kind:?} r = {r}: gradient");
            }
        }
    }

    #[test]
    fn extents_detect_shared_memory() {
        let a = Tensor::zeros([4, 6], (Kind::Float, Device::Cpu));
        let row = a.narrow(0, 1, 1);
        let col = a.narrow(1, 2, 1);
        let other = Tensor::zeros([4, 6], (Kind::Float, Device::Cpu));
        let (ea, er, ec, eo) = (
            extent(&a).unwrap(),
            extent(&row).unwrap(),
            extent(&col).unwrap(),
            extent(&other).unwrap(),
        );
        assert!(!disjoint(ea, er) && !disjoint(ea, ec) && !disjoint(er, ec));
        assert!(disjoint(ea, eo));
        assert_eq!(er.1 - er.0, 6 * 4);
        assert!(extent(&Tensor::zeros([0], (Kind::Float, Device::Cpu))).is_none());
    }
}
