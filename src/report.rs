//! What a call returns: [`PcOutput`] and its [`PcReport`].

use crate::err_type::ErrType;
use tch::Tensor;

/// Why a relaxation stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopReason {
    /// Exact needs no relaxation.
    NoRelaxation,
    /// All `n` sweeps were run.
    MaxIterations,
    /// The largest relative belief change fell below `tol` at this (1-based) sweep.
    Converged {
        /// The sweep after which the relaxation stopped.
        iteration: usize,
        /// The largest relative belief change in that sweep.
        change: f64,
    },
    /// Backtracking halved the step below `eta · 1e-6` without decreasing the energy: the
    /// beliefs are at a (numerical) minimum of the energy. Stopped at this sweep.
    StepTooSmall {
        /// The sweep at which backtracking gave up.
        iteration: usize,
    },
}

/// What happened during a call: iterations, why it stopped, energies.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PcReport {
    /// The algorithm that ran.
    pub err_type: ErrType,
    /// Sweeps completed (accepted).
    pub iterations: usize,
    /// Why the relaxation stopped.
    pub stop: StopReason,
    /// Total number of step halvings ([`OnDiverge::Backtrack`](crate::OnDiverge::Backtrack)).
    pub backtracks: usize,
    /// The step size at the end (equal to `eta` unless backtracking halved it).
    pub final_eta: f64,
    /// Energy at the start of each sweep (Strict, FixedPred); empty for Exact.
    pub energy: Vec<f64>,
    /// Energy at the final beliefs; `None` for Exact.
    pub final_energy: Option<f64>,
    /// Parameter steps taken by the optimizer during the call (incremental PC, see
    /// [`PcInfer::incremental`](crate::PcInfer::incremental)); 0 otherwise.
    pub param_steps: usize,
}

/// The result of [`pc_infer`](crate::pc_infer): feed-forward values, loss, beliefs,
/// prediction errors.
///
/// `vhat`, `v` and `epsilon` are indexed by node and have length `N+1` (`L+1` for a
/// [`Sequential`](crate::Sequential)); index 0 is the (clamped) input:
/// `vhat[0] = v[0] = x` and `epsilon[0]` is zeros. All tensors are detached.
#[derive(Debug)]
#[non_exhaustive]
pub struct PcOutput {
    /// Feed-forward values `v̂_i = f_i(v̂_pa(i))`, `v̂_0 = x`.
    pub vhat: Vec<Tensor>,
    /// The scalar loss `ℓ(v̂_N, y)` of the feed-forward pass.
    pub loss: Tensor,
    /// `∂ℓ/∂v̂_N`.
    pub dldy: Tensor,
    /// The beliefs after relaxation.
    pub v: Vec<Tensor>,
    /// The prediction errors.
    pub epsilon: Vec<Tensor>,
    /// Iterations, stop reason and energies.
    pub report: PcReport,
}
