//! The settings of one predictive-coding call, declared once, and their validation.

use crate::err_type::ErrType;
use crate::error::{PcError, Result};
use crate::util;
use tch::Kind;

/// What to do when a relaxation diverges (the energy rises past its starting value, or
/// beliefs become non-finite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDiverge {
    /// Return [`PcError::Diverged`] (or [`PcError::NonFiniteBeliefs`]) naming the iteration
    /// and the energies; parameters and gradients are left untouched. The default.
    #[default]
    Error,
    /// Backtracking line search: when a sweep would not decrease the energy `F(v)`, redo it
    /// with half the step (and the belief optimizer's state reset), until it does. The
    /// energy then falls monotonically within the call. The halved step is kept for the
    /// remaining sweeps of the call.
    Backtrack,
}

/// How FixedPred is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FixedPredMode {
    /// The closed form (the default). The recursion is linear with Jacobians fixed at `v̂`,
    /// so `ε_i = Σ_k P(Binomial(n-1, η) ≥ k) · a_i^(k)`, where `a_i^(k)` is backprop's
    /// adjoint of node `i` restricted to paths of exactly `k` edges to the output. When
    /// every node has one path length (chains), this is one forward and one backward pass
    /// whose gradient is rescaled between nodes; otherwise one vector-Jacobian product per
    /// node and path length `k < n` (the *graded* form), or the literal loop when that is
    /// cheaper: the graded form costs `Σ_j |{k < n : k a path length of node j}|`
    /// vector-Jacobian products, the loop `n · N`. Equal to the literal loop up to rounding.
    /// The report still records the energy of each of the `n` sweeps (from the closed
    /// form's coefficients, no tensor work): `O(n)` time and memory in `n` itself, about a
    /// second and 80 MB at `n = 10⁷`; an `n` whose energies do not fit in memory is an
    /// [`InvalidConfig`](crate::PcError::InvalidConfig) error.
    #[default]
    ClosedForm,
    /// The graded closed form on any graph, whatever its cost (one vector-Jacobian product
    /// per node and path length `k < n`).
    Graded,
    /// The seed's literal loop of `n` sweeps, one backward pass per sweep. Also used
    /// whenever `tol` or a belief optimizer other than plain steps is set.
    Literal,
}

/// The update rule for the beliefs in each relaxation sweep (Strict, and FixedPred's
/// literal loop).
///
/// With `d = -∂F/∂v` the sweep's direction (Strict: `ε_i − Σ_j J_{j←i}ᵀ ε_j`) and `η` the
/// step, the update `Δv` of each belief is:
///
/// * `Plain`: `Δv = η d` (the seed's relaxation, bit for bit);
/// * `Momentum { beta }` (heavy ball, Polyak 1964): `m ← β m + d`, `Δv = η m`;
/// * `Nesterov { beta }` (Sutskever et al. 2013, in PyTorch's form):
///   `m ← β m + d`, `Δv = η (d + β m)`;
/// * `Adam { beta1, beta2, eps }` (Kingma & Ba 2015) on the gradient `g = -d`:
///   `m ← β₁ m + (1-β₁) g`, `s ← β₂ s + (1-β₂) g²`, `t ← t + 1`,
///   `Δv = -η (m / (1-β₁ᵗ)) / (√(s / (1-β₂ᵗ)) + ε)`.
///
/// The state (`m`, `s`, `t`) starts at zero in every call and is reset when
/// [`OnDiverge::Backtrack`] rejects a step. PCX's published configurations relax with SGD
/// plus momentum (Pinchetti et al. 2024).
///
/// ```
/// use tch2pc::BeliefOptimizer;
/// assert_eq!(BeliefOptimizer::default(), BeliefOptimizer::Plain);
/// assert!(matches!(BeliefOptimizer::adam(), BeliefOptimizer::Adam { beta1, .. } if beta1 == 0.9));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum BeliefOptimizer {
    /// `Δv = η d`.
    #[default]
    Plain,
    /// Heavy-ball momentum, `β ∈ [0, 1)`.
    Momentum {
        /// The momentum factor `β`.
        beta: f64,
    },
    /// Nesterov momentum, `β ∈ [0, 1)`.
    Nesterov {
        /// The momentum factor `β`.
        beta: f64,
    },
    /// Adam, `β₁, β₂ ∈ [0, 1)`, `ε > 0`.
    Adam {
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the root of the second moment.
        eps: f64,
    },
}

impl BeliefOptimizer {
    /// Adam with its usual parameters `β₁ = 0.9`, `β₂ = 0.999`, `ε = 1e-8`.
    ///
    /// ```
    /// let a = tch2pc::BeliefOptimizer::adam();
    /// assert_eq!(a, tch2pc::BeliefOptimizer::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 });
    /// ```
    pub fn adam() -> Self {
        BeliefOptimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// Checks the parameters: `β` in `[0, 1)`, `ε` finite and `> 0`.
    ///
    /// # Errors
    /// [`PcError::InvalidConfig`] naming the parameter out of range.
    ///
    /// ```
    /// use tch2pc::BeliefOptimizer;
    /// assert!(BeliefOptimizer::Momentum { beta: 0.9 }.validate().is_ok());
    /// assert!(BeliefOptimizer::Momentum { beta: -0.1 }.validate().is_err());
    /// assert!(BeliefOptimizer::Adam { beta1: 0.9, beta2: 1.0, eps: 1e-8 }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let beta = |name: &str, b: f64| {
            if (0.0..1.0).contains(&b) {
                Ok(())
            } else {
                Err(PcError::InvalidConfig(format!(
                    "{name} must lie in [0, 1), got {b}"
                )))
            }
        };
        match *self {
            BeliefOptimizer::Plain => Ok(()),
            BeliefOptimizer::Momentum { beta: b } | BeliefOptimizer::Nesterov { beta: b } => {
                beta("the momentum beta", b)
            }
            BeliefOptimizer::Adam { beta1, beta2, eps } => {
                beta("Adam's beta1", beta1)?;
                beta("Adam's beta2", beta2)?;
                if eps.is_finite() && eps > 0.0 {
                    Ok(())
                } else {
                    Err(PcError::InvalidConfig(format!(
                        "Adam's eps must be finite and > 0, got {eps}"
                    )))
                }
            }
        }
    }
}

/// Every setting of a call, in one place ([`PcInfer`](crate::PcInfer) holds one and its
/// builder methods set its fields).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub err_type: ErrType,
    pub eta: f64,
    pub n: usize,
    pub tol: Option<f64>,
    pub on_diverge: OnDiverge,
    pub divergence_tolerance: f64,
    pub relax_kind: Option<Kind>,
    pub fixed_pred: FixedPredMode,
    pub belief_optimizer: BeliefOptimizer,
}

impl Settings {
    /// The seed's defaults: `eta = 0.1`, `n = 20`, no tolerance, [`OnDiverge::Error`].
    pub fn new(err_type: ErrType) -> Self {
        Settings {
            err_type,
            eta: 0.1,
            n: 20,
            tol: None,
            on_diverge: OnDiverge::Error,
            divergence_tolerance: 1e-3,
            relax_kind: None,
            fixed_pred: FixedPredMode::ClosedForm,
            belief_optimizer: BeliefOptimizer::Plain,
        }
    }

    /// Whether the algorithm relaxes beliefs (Strict, FixedPred).
    pub fn relaxes(&self) -> bool {
        self.err_type != ErrType::Exact
    }

    /// Range checks. Exact ignores `eta`, `n`, `tol` and the belief optimizer, so they are
    /// not checked for it.
    pub fn validate(&self) -> Result<()> {
        if self.relaxes() {
            if !(self.eta.is_finite() && self.eta > 0.0) {
                return Err(PcError::InvalidEta(self.eta));
            }
            if self.n == 0 {
                return Err(PcError::ZeroIterations(self.err_type.as_str()));
            }
            if let Some(t) = self.tol {
                if !(t.is_finite() && t > 0.0) {
                    return Err(PcError::InvalidConfig(format!(
                        "tol must be finite and > 0, got {t}"
                    )));
                }
            }
            self.belief_optimizer.validate()?;
        }
        if !(self.divergence_tolerance.is_finite() && self.divergence_tolerance >= 0.0) {
            return Err(PcError::InvalidConfig(format!(
                "divergence_tolerance must be finite and >= 0, got {}",
                self.divergence_tolerance
            )));
        }
        if let Some(k) = self.relax_kind {
            if !util::is_float(k) {
                return Err(PcError::InvalidConfig(format!(
                    "relax_kind must be a floating-point dtype, got {k:?}"
                )));
            }
        }
        Ok(())
    }
}
