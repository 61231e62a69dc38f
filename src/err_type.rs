//! The three algorithms of Rosenbaum (2022).

use crate::error::PcError;
use std::fmt;
use std::str::FromStr;

/// Which algorithm computes the beliefs `v`, the prediction errors `ε` and the parameter
/// updates (Rosenbaum 2022, Algorithms 1–3).
///
/// With `v̂_l = f_l(v̂_{l-1})` the feed-forward pass and `ℓ` the loss:
///
/// * [`ErrType::Exact`]: `ε_l = ∂ℓ/∂v̂_l`, `v_l = v̂_l - ε_l`; the updates are exactly
///   backprop's gradients.
/// * [`ErrType::FixedPred`] (fixed prediction assumption): `n` sweeps of
///   `ε_l = v̂_l - v_l`, `v_l ← v_l + η (ε_l - J_{l+1}(v̂_l)ᵀ ε_{l+1})` with `ε_L = ∂ℓ/∂v̂_L`
///   and Jacobians at `v̂`. The recursion is linear, so
///   `ε_l = P(Binomial(n-1, η) ≥ L-l) · ∂ℓ/∂v̂_l`; with `η = 1` and `n ≥ L` it equals
///   backprop.
/// * [`ErrType::Strict`]: gradient descent on the energy
///   `F(v) = ℓ(f_L(v_{L-1}), y) + ½ Σ_{l<L} ‖f_l(v_{l-1}) - v_l‖²`, `n` sweeps of
///   `ε_l = f_l(v_{l-1}) - v_l`, `ε_L = ∂ℓ/∂f_L(v_{L-1})`,
///   `v_l ← v_l + η (ε_l - J_{l+1}(v_l)ᵀ ε_{l+1})`.
///
/// In all three, the update of layer `l`'s parameters `θ_l` is
/// `(∂f_l(v_{l-1})/∂θ_l)ᵀ ε_l`.
///
/// Parses the seed's strings in any case:
///
/// ```
/// use tch2pc::ErrType;
/// assert_eq!("FixedPred".parse::<ErrType>()?, ErrType::FixedPred);
/// assert_eq!("strict".parse::<ErrType>()?, ErrType::Strict);
/// assert_eq!("EXACT".parse::<ErrType>()?, ErrType::Exact);
/// assert!("backprop".parse::<ErrType>().is_err());
/// assert_eq!(ErrType::FixedPred.to_string(), "FixedPred");
/// # Ok::<(), tch2pc::PcError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrType {
    /// Strict predictive coding, without the fixed prediction assumption.
    Strict,
    /// Predictive coding under the fixed prediction assumption.
    FixedPred,
    /// Exact gradients: backprop, written in predictive-coding form.
    Exact,
}

impl ErrType {
    /// The seed's name for the algorithm: `"Strict"`, `"FixedPred"` or `"Exact"`.
    ///
    /// ```
    /// assert_eq!(tch2pc::ErrType::Strict.as_str(), "Strict");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrType::Strict => "Strict",
            ErrType::FixedPred => "FixedPred",
            ErrType::Exact => "Exact",
        }
    }
}

impl fmt::Display for ErrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrType {
    type Err = PcError;

    fn from_str(s: &str) -> Result<Self, PcError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "strict" => Ok(ErrType::Strict),
            "fixedpred" => Ok(ErrType::FixedPred),
            "exact" => Ok(ErrType::Exact),
            _ => Err(PcError::UnknownErrType(s.to_string())),
        }
    }
}
