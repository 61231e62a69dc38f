//! Small tensor helpers shared by the algorithms. All fallible, all dtype- and
//! device-generic.

use crate::error::{PcError, Result};
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
///
/// # Errors
/// [`PcError::InvalidConfig`] when `r` is beyond the range of `h`'s dtype (FixedPred's
/// coefficients at an `eta` far above 1 in float32, say).
pub(crate) fn scale_grad(h: &Tensor, r: f64) -> Result<Tensor> {
    if r == 1.0 {
        return Ok(h.shallow_clone());
    }
    if r.abs() > max_finite(h.kind()) {
        return Err(PcError::InvalidConfig(format!(
            "FixedPred's closed form needs a gradient scale of {r:e}, beyond the range of \
             {:?}; use a smaller eta, relax_kind(Kind::Double) or FixedPredMode::Literal",
            h.kind()
        )));
    }
    Ok(h.f_detach()?.f_lerp(h, r)?)
}

/// The largest finite value of a floating dtype (`f64::MAX` for any other).
pub(crate) fn max_finite(kind: Kind) -> f64 {
    match kind {
        Kind::Half => 65504.0,
        Kind::BFloat16 => 3.3895313892515355e38,
        Kind::Float => f32::MAX as f64,
        _ => f64::MAX,
    }
}

/// `t` without autograd history, in dtype `kind` if given: `t` itself (no new tensor)
/// when it already is both.
pub(crate) fn detached_as(t: Tensor, kind: Option<Kind>) -> Result<Tensor> {
    let t = if t.requires_grad() { t.f_detach()? } else { t };
    match kind {
        Some(k) if t.kind() != k => Ok(t.f_to_kind(k)?),
        _ => Ok(t),
    }
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

/// Whether every element of every tensor is finite.
///
/// Fast path, one synchronisation: every floating tensor's sum (accumulated in at least
/// single precision). A sum is non-finite when any element is (IEEE arithmetic propagates
/// NaN and infinities), so finite sums prove finite elements with one vectorised reduction
/// per tensor and no tensor-sized temporaries. Only when a sum is not finite (a non-finite
/// element, or finite elements whose sum overflows) are the elements checked one by one.
/// Integer and boolean tensors are finite; a complex tensor is checked through its real
/// and imaginary parts.
pub(crate) fn all_finite(ts: &[&Tensor]) -> Result<bool> {
    let mut parts = Vec::with_capacity(ts.len());
    for t in ts {
        if !t.defined() || t.numel() == 0 {
            continue;
        }
        let t = match t.kind() {
            Kind::ComplexHalf | Kind::ComplexFloat | Kind::ComplexDouble => {
                t.f_detach()?.f_view_as_real()?
            }
            k if is_float(k) => t.f_detach()?,
            _ => continue,
        };
        parts.push(t);
    }
    if parts.is_empty() {
        return Ok(true);
    }
    let mut sums = Vec::with_capacity(parts.len());
    for t in &parts {
        let acc = match t.kind() {
            Kind::Half | Kind::BFloat16 => Kind::Float,
            k => k,
        };
        sums.push(t.f_sum(acc)?);
    }
    if sums.iter().any(|s| s.kind() != sums[0].kind()) {
        sums = sums
            .iter()
            .map(|s| s.f_to_kind(Kind::Double))
            .collect::<std::result::Result<_, _>>()?;
    }
    if stacked_all_finite(&sums)? {
        return Ok(true);
    }
    let flags = parts
        .iter()
        .map(|t| t.f_isfinite()?.f_all())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Tensor::f_stack(&flags, 0)?.f_all()?.f_int64_value(&[])? != 0)
}

/// Whether every element of the stacked scalars `ts` is finite (one synchronisation).
fn stacked_all_finite(ts: &[Tensor]) -> Result<bool> {
    Ok(Tensor::f_stack(ts, 0)?
        .f_isfinite()?
        .f_all()?
        .f_int64_value(&[])?
        != 0)
}

/// Uninitialised contiguous tensors shaped like each of `like`, carved out of one
/// allocation when they all share a dtype and a device (separate ones otherwise).
///
/// One block instead of a tensor-sized allocation per node: on the CPU, where libtorch
/// allocates with `malloc`, many medium-sized allocations per call are returned to the
/// operating system and fault their pages in again on the next call, which costs about as
/// much as the arithmetic that fills them.
pub(crate) fn empty_block(like: &[&Tensor]) -> Result<Vec<Tensor>> {
    let Some(first) = like.first() else {
        return Ok(Vec::new());
    };
    let (kind, device) = (first.kind(), first.device());
    if like
        .iter()
        .any(|t| t.kind() != kind || t.device() != device)
    {
        return like
            .iter()
            .map(|t| Ok(Tensor::f_empty(t.size(), (t.kind(), t.device()))?))
            .collect();
    }
    let total: i64 = like.iter().map(|t| t.numel() as i64).sum();
    let block = Tensor::f_empty([total], (kind, device))?;
    let mut offset = 0;
    like.iter()
        .map(|t| {
            let len = t.numel() as i64;
            let part = block
                .f_narrow(0, offset, len)?
                .f_view(t.size().as_slice())?;
            offset += len;
            Ok(part)
        })
        .collect()
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

    /// The fast path (sums) and the element check agree with `isfinite` on every case,
    /// including finite elements whose sum overflows and infinities that cancel.
    #[test]
    fn all_finite_matches_elementwise_isfinite() {
        let f = |v: &[f64], kind: Kind| Tensor::from_slice(v).to_kind(kind);
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        let cases: Vec<(Vec<f64>, bool)> = vec![
            (vec![1.0, -2.0, 3.5], true),
            (vec![1.0, nan, 3.0], false),
            (vec![inf, 0.0], false),
            (vec![inf, -inf], false),
            (vec![-inf], false),
            (vec![3e38, 3e38, 3e38], true), // float32: the sum overflows
        ];
        for kind in [Kind::Float, Kind::Double, Kind::Half, Kind::BFloat16] {
            for (v, expect) in &cases {
                let t = f(v, kind);
                let truth = t.isfinite().all().int64_value(&[]) != 0;
                assert_eq!(all_finite(&[&t]).unwrap(), truth, "{kind:?} {v:?}");
                if kind != Kind::Half && kind != Kind::BFloat16 {
                    assert_eq!(truth, *expect, "{kind:?} {v:?}");
                }
                let ok = f(&[1.0, 2.0], kind);
                assert_eq!(
                    all_finite(&[&ok, &t, &ok]).unwrap(),
                    truth,
                    "{kind:?} {v:?}"
                );
            }
        }
        let big = Tensor::full([5000], 60000.0, (Kind::Half, Device::Cpu));
        assert!(
            all_finite(&[&big]).unwrap(),
            "half: finite elements, overflowing sum"
        );
        let ints = Tensor::from_slice(&[1i64, 2, 3]);
        let empty = Tensor::zeros([0], (Kind::Float, Device::Cpu));
        assert!(all_finite(&[&ints, &empty, &Tensor::default()]).unwrap());
        assert!(all_finite(&[]).unwrap());
        let c = Tensor::complex(&f(&[1.0, 2.0], Kind::Float), &f(&[0.0, nan], Kind::Float));
        assert!(!all_finite(&[&c]).unwrap());
        let c = Tensor::complex(&f(&[1.0, 2.0], Kind::Float), &f(&[0.0, 1.0], Kind::Float));
        assert!(all_finite(&[&c]).unwrap());
    }

    /// One block: the parts have the requested shapes, are contiguous, do not overlap and
    /// share one storage; mixed dtypes get separate tensors.
    #[test]
    fn empty_block_carves_disjoint_parts() {
        let a = Tensor::zeros([3, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::zeros([2, 1, 5], (Kind::Float, Device::Cpu)).transpose(0, 2);
        let c = Tensor::zeros([0], (Kind::Float, Device::Cpu));
        let parts = empty_block(&[&a, &b, &c]).unwrap();
        assert_eq!(parts.len(), 3);
        for (p, t) in parts.iter().zip([&a, &b, &c]) {
            assert_eq!(p.size(), t.size());
            assert_eq!(p.kind(), t.kind());
            assert!(p.is_contiguous());
        }
        let (e0, e1) = (extent(&parts[0]).unwrap(), extent(&parts[1]).unwrap());
        assert!(disjoint(e0, e1));
        assert_eq!(e1.0, e0.1, "adjacent in one allocation");
        let mut p1 = parts[1].shallow_clone();
        let _ = p1.fill_(7.0);
        let mut p0 = parts[0].shallow_clone();
        let _ = p0.fill_(1.0);
        assert_eq!(parts[1].sum(Kind::Double).double_value(&[]), 70.0);
        let d = Tensor::zeros([2], (Kind::Double, Device::Cpu));
        let mixed = empty_block(&[&a, &d]).unwrap();
        assert_eq!(mixed[1].kind(), Kind::Double);
        assert_eq!(mixed[0].size(), vec![3, 4]);
        assert!(empty_block(&[]).unwrap().is_empty());
    }
}
