//! Checks of the inputs of a call (dtype, device, definedness, `vinit`), before anything
//! is computed.

use crate::error::{PcError, Result};
use crate::util;
use tch::{Kind, Tensor};

/// The floating dtype the call computes in before any `relax_kind`: `x`'s if it is
/// floating, else the first variable's (token-id inputs), else none.
pub(crate) fn working_kind(vars: &[Tensor], x: &Tensor) -> Option<Kind> {
    if util::is_float(x.kind()) {
        Some(x.kind())
    } else {
        vars.iter().map(|v| v.kind()).find(|&k| util::is_float(k))
    }
}

/// Checks `x`, `y` and `vinit` against the variables (`nodes` = `N`).
pub(crate) fn inputs(
    vars: &[Tensor],
    x: &Tensor,
    y: &Tensor,
    vinit: Option<&[Tensor]>,
    nodes: usize,
) -> Result<()> {
    if !x.defined() {
        return Err(PcError::InvalidConfig("x is an undefined tensor".into()));
    }
    if !y.defined() {
        return Err(PcError::InvalidConfig("y is an undefined tensor".into()));
    }
    let device = x.device();
    if !vars.is_empty() && vars.iter().all(|v| v.device() != device) {
        return Err(PcError::DeviceMismatch {
            what: "x".into(),
            expected: vars[0].device(),
            found: device,
        });
    }
    // The store may also hold another model's variables, of another dtype, which this
    // model does not use: `x` must have the dtype of at least one variable (a node whose
    // own variables do not fit it fails in the forward pass, with an error naming it).
    if util::is_float(x.kind()) && !vars.is_empty() && vars.iter().all(|v| v.kind() != x.kind()) {
        return Err(PcError::DtypeMismatch {
            what: "x".into(),
            expected: vars[0].kind(),
            found: x.kind(),
        });
    }
    if y.device() != device {
        return Err(PcError::DeviceMismatch {
            what: "y".into(),
            expected: device,
            found: y.device(),
        });
    }
    // A floating `y` must have the dtype of the model's output, which only the forward pass
    // knows (a model may change dtype on the way): checked by the loss (`Ctx::loss`).
    if let Some(v0) = vinit {
        if v0.len() != nodes + 1 {
            return Err(PcError::ShapeMismatch {
                what: "vinit".into(),
                expected: format!(
                    "{} tensors (one per node, index 0 for the input)",
                    nodes + 1
                ),
                found: vec![v0.len() as i64],
            });
        }
        for (i, t) in v0.iter().enumerate().skip(1) {
            if !t.defined() {
                return Err(PcError::InvalidConfig(format!(
                    "vinit[{i}] is an undefined tensor"
                )));
            }
            if t.device() != device {
                return Err(PcError::DeviceMismatch {
                    what: format!("vinit[{i}]"),
                    expected: device,
                    found: t.device(),
                });
            }
            // Each belief's dtype is checked against the feed-forward value
            // (`Ctx::check_vinit`); here only that it is floating.
            if !util::is_float(t.kind()) {
                return Err(PcError::InvalidConfig(format!(
                    "vinit[{i}] has dtype {:?}; beliefs are floating point",
                    t.kind()
                )));
            }
        }
    }
    Ok(())
}
