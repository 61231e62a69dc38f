//! Loss functions, in the dtype and on the device of their inputs.
//!
//! Each loss comes as a fallible function (`f_mse`, `f_cross_entropy`) returning
//! `Result<Tensor, PcError>`, and as a panicking twin (`mse`, `cross_entropy`) with the
//! signature `Fn(&Tensor, &Tensor) -> Tensor` that [`pc_infer`](crate::pc_infer) takes.
//! When a panicking twin fails inside `pc_infer`, `pc_infer` returns the same typed error
//! (for instance [`PcError::LabelOutOfRange`]); nothing is printed.
//!
//! Unlike tch's `cross_entropy_for_logits`, nothing here casts to `f32`: float64 stays
//! float64, so the losses equal PyTorch's `nn.MSELoss()` and `nn.CrossEntropyLoss()` to the
//! last bit of the input precision.

use crate::error::{PcError, Result};
use crate::guard;
use crate::util::is_float;
use tch::{Kind, Reduction, Tensor};

fn same_device(output: &Tensor, target: &Tensor) -> Result<()> {
    if output.device() != target.device() {
        return Err(PcError::DeviceMismatch {
            what: "the target".into(),
            expected: output.device(),
            found: target.device(),
        });
    }
    Ok(())
}

fn is_integer(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64
    )
}

/// Mean squared error, `ℓ(ŷ, y) = (1/m) Σ_i (ŷ_i - y_i)²` over all `m` elements: PyTorch's
/// `nn.MSELoss()` (mean reduction). `output` and `target` must have the same shape, dtype
/// and device.
///
/// # Errors
/// [`PcError::DeviceMismatch`], [`PcError::ShapeMismatch`] or [`PcError::DtypeMismatch`]
/// when the target does not fit the output; [`PcError::Torch`] for a libtorch failure.
///
/// ```
/// use tch::Tensor;
/// let l = tch2pc::loss::f_mse(&Tensor::from_slice(&[1.0f64, 2.0]), &Tensor::from_slice(&[0.0f64, 0.0]))?;
/// assert_eq!(l.double_value(&[]), 2.5);
/// assert_eq!(l.kind(), tch::Kind::Double);
/// # Ok::<(), tch2pc::PcError>(())
/// ```
pub fn f_mse(output: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_device(output, target)?;
    if output.size() != target.size() {
        return Err(PcError::ShapeMismatch {
            what: "the MSE target".into(),
            expected: format!("{:?} (the output's shape)", output.size()),
            found: target.size(),
        });
    }
    if output.kind() != target.kind() {
        return Err(PcError::DtypeMismatch {
            what: "the MSE target".into(),
            expected: output.kind(),
            found: target.kind(),
        });
    }
    Ok(output.f_mse_loss(target, Reduction::Mean)?)
}

/// [`f_mse`] that panics on error; the form to pass to [`pc_infer`](crate::pc_infer).
///
/// ```
/// use tch::{Kind, Tensor};
/// let l = tch2pc::loss::mse(&Tensor::ones([2, 3], (Kind::Double, tch::Device::Cpu)),
///                           &Tensor::zeros([2, 3], (Kind::Double, tch::Device::Cpu)));
/// assert_eq!(l.double_value(&[]), 1.0);
/// ```
pub fn mse(output: &Tensor, target: &Tensor) -> Tensor {
    f_mse(output, target).unwrap_or_else(|e| guard::raise(e))
}

/// Cross-entropy of logits against class labels (or class probabilities), mean over the
/// batch: PyTorch's `nn.CrossEntropyLoss()`,
/// `ℓ(z, y) = -(1/N) Σ_n log softmax(z_n)_{y_n}`.
///
/// * `logits`: `(N, C)` or `(N, C, d1, …)`, floating point.
/// * `target`: integer class labels of shape `(N)` or `(N, d1, …)` in `0..C` (any integer
///   dtype), or class probabilities of the logits' shape and dtype.
///
/// Labels outside `0..C` give [`PcError::LabelOutOfRange`] (checked before libtorch sees
/// them, which on CUDA would abort the process).
///
/// # Errors
/// [`PcError::LabelOutOfRange`]; [`PcError::DeviceMismatch`], [`PcError::ShapeMismatch`]
/// or [`PcError::DtypeMismatch`] when the target does not fit the logits;
/// [`PcError::Torch`] for a libtorch failure.
///
/// ```
/// use tch::Tensor;
/// let logits = Tensor::from_slice(&[0.0f64, 0.0, 0.0, 0.0]).view([1, 4]);
/// let l = tch2pc::loss::f_cross_entropy(&logits, &Tensor::from_slice(&[2i64]))?;
/// assert!((l.double_value(&[]) - 4f64.ln()).abs() < 1e-15);
/// assert!(tch2pc::loss::f_cross_entropy(&logits, &Tensor::from_slice(&[4i64])).is_err());
/// # Ok::<(), tch2pc::PcError>(())
/// ```
pub fn f_cross_entropy(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_device(logits, target)?;
    let shape = logits.size();
    if shape.len() < 2 || !is_float(logits.kind()) {
        return Err(PcError::ShapeMismatch {
            what: "the cross-entropy input (logits)".into(),
            expected: "(N, C) or (N, C, d1, ...) floating-point logits".into(),
            found: shape,
        });
    }
    let tkind = target.kind();
    if is_float(tkind) {
        if target.size() != shape {
            return Err(PcError::ShapeMismatch {
                what: "the cross-entropy target (class probabilities)".into(),
                expected: format!("{shape:?} (the logits' shape)"),
                found: target.size(),
            });
        }
        if tkind != logits.kind() {
            return Err(PcError::DtypeMismatch {
                what: "the cross-entropy target".into(),
                expected: logits.kind(),
                found: tkind,
            });
        }
        return Ok(logits.f_cross_entropy_loss(
            target,
            None::<Tensor>,
            Reduction::Mean,
            -100,
            0.0,
        )?);
    }
    if !is_integer(tkind) {
        return Err(PcError::DtypeMismatch {
            what: "the cross-entropy target (class labels)".into(),
            expected: Kind::Int64,
            found: tkind,
        });
    }
    let mut expected: Vec<i64> = vec![shape[0]];
    expected.extend_from_slice(&shape[2..]);
    if target.size() != expected {
        return Err(PcError::ShapeMismatch {
            what: "the cross-entropy target (class labels)".into(),
            expected: format!("{expected:?} (the logits' shape without the class dimension)"),
            found: target.size(),
        });
    }
    let labels = target.f_to_kind(Kind::Int64)?;
    let classes = shape[1];
    if labels.numel() > 0 {
        let (min, max) = labels.f_aminmax(None, false)?;
        let (min, max) = (min.f_int64_value(&[])?, max.f_int64_value(&[])?);
        if min < 0 || max >= classes {
            return Err(PcError::LabelOutOfRange { min, max, classes });
        }
    }
    Ok(logits.f_cross_entropy_loss(&labels, None::<Tensor>, Reduction::Mean, -100, 0.0)?)
}

/// [`f_cross_entropy`] that panics on error; the form to pass to
/// [`pc_infer`](crate::pc_infer).
///
/// ```
/// use tch::{Kind, Tensor};
/// let logits = Tensor::zeros([3, 5], (Kind::Double, tch::Device::Cpu));
/// let l = tch2pc::loss::cross_entropy(&logits, &Tensor::from_slice(&[0i64, 1, 4]));
/// assert!((l.double_value(&[]) - 5f64.ln()).abs() < 1e-15);
/// ```
pub fn cross_entropy(logits: &Tensor, target: &Tensor) -> Tensor {
    f_cross_entropy(logits, target).unwrap_or_else(|e| guard::raise(e))
}
