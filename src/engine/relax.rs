//! The bookkeeping that every relaxing algorithm shares: energies, iterations, the stop
//! reason, the step size, backtracks, observer calls and the tolerance test.

use crate::err_type::ErrType;
use crate::error::{PcError, Result};
use crate::guard::{self, Caught};
use crate::observer::{Iteration, Observer};
use crate::options::Settings;
use crate::report::{PcReport, StopReason};
use crate::util;
use tch::Tensor;

/// The running record of one relaxation.
pub(crate) struct Relaxation<'o> {
    /// The step size asked for.
    pub eta: f64,
    /// The step size in use (halved by backtracking).
    pub step: f64,
    tol: Option<f64>,
    energy: Vec<f64>,
    iterations: usize,
    stop: StopReason,
    backtracks: usize,
    param_steps: usize,
    observer: Option<&'o mut dyn Observer>,
}

impl<'o> Relaxation<'o> {
    pub fn new(settings: &Settings, observer: Option<&'o mut dyn Observer>) -> Self {
        Relaxation {
            eta: settings.eta,
            step: settings.eta,
            tol: settings.tol,
            energy: Vec::with_capacity(settings.n.min(4096)),
            iterations: 0,
            stop: StopReason::MaxIterations,
            backtracks: 0,
            param_steps: 0,
            observer,
        }
    }

    /// Whether `tol` is set (the belief changes are then measured).
    pub fn measures_change(&self) -> bool {
        self.tol.is_some()
    }

    /// Whether an observer wants the error norms.
    pub fn observed(&self) -> bool {
        self.observer.is_some()
    }

    /// Records sweep `k` (1-based): its starting energy, its prediction-error norms
    /// (`‖ε_i‖`, nodes `1..=N`), the step halvings it needed, the norm of the belief update
    /// it made and of the belief optimizer's state (NaN where not computed). A panicking
    /// observer is an error ([`PcError::Observer`]).
    pub fn record(
        &mut self,
        k: usize,
        energy: f64,
        norms: &[f64],
        halvings: usize,
        update_norm: f64,
        state_norm: f64,
    ) -> Result<()> {
        self.energy.push(energy);
        self.iterations = k;
        self.backtracks += halvings;
        if let Some(obs) = self.observer.as_deref_mut() {
            let it = Iteration::new(k, energy, norms, self.step, halvings)
                .with_update(update_norm, state_norm);
            guard::catch(|| obs.observe(&it)).map_err(|c| match c {
                Caught::Error(e) => e,
                Caught::Message(message) => PcError::Observer {
                    iteration: k,
                    message,
                },
            })?;
        }
        Ok(())
    }

    /// What a proposed belief update `delta` (at the hidden nodes) measures: the largest
    /// relative change `max_i ‖Δv_i‖_∞ / ‖v_i‖_∞` when `tol` is set (else 0), and `‖Δv‖₂`
    /// when an observer listens (else 0).
    pub fn measure(&self, delta: &[Tensor], v: &[Tensor], hidden: &[usize]) -> Result<(f64, f64)> {
        let mut change: f64 = 0.0;
        let mut norms = Vec::new();
        for &i in hidden {
            if self.measures_change() {
                change = change.max(util::rel_change(&delta[i], &v[i])?);
            }
            if self.observed() {
                norms.push(util::norm(&delta[i])?);
            }
        }
        Ok((change, util::hypot(&norms)))
    }

    /// Sweep `k` changed the beliefs by `change` (relative, see `tol`): whether to stop.
    pub fn converged(&mut self, k: usize, change: f64) -> bool {
        match self.tol {
            Some(t) if change < t => {
                self.stop = StopReason::Converged {
                    iteration: k,
                    change,
                };
                true
            }
            _ => false,
        }
    }

    /// Backtracking gave up at sweep `k`.
    pub fn step_too_small(&mut self, k: usize) {
        self.stop = StopReason::StepTooSmall { iteration: k };
    }

    /// Halves the step; whether it is still above `eta · 1e-6`.
    pub fn halve(&mut self) -> bool {
        self.step *= 0.5;
        self.step >= self.eta * 1e-6
    }

    /// One more parameter step (incremental PC).
    pub fn param_step(&mut self) {
        self.param_steps += 1;
    }

    pub fn report(self, err_type: ErrType, final_energy: f64) -> PcReport {
        PcReport {
            err_type,
            iterations: self.iterations,
            stop: self.stop,
            backtracks: self.backtracks,
            final_eta: self.step,
            energy: self.energy,
            final_energy: Some(final_energy),
            param_steps: self.param_steps,
        }
    }
}

/// The report of a call without relaxation (Exact).
pub(crate) fn no_relaxation(eta: f64) -> PcReport {
    PcReport {
        err_type: ErrType::Exact,
        iterations: 0,
        stop: StopReason::NoRelaxation,
        backtracks: 0,
        final_eta: eta,
        energy: Vec::new(),
        final_energy: None,
        param_steps: 0,
    }
}

/// Fails when `sweeps` energies (one f64 per sweep) cannot be allocated, instead of a hang
/// or an out-of-memory abort later: FixedPred's closed forms record all `n` sweeps whatever
/// `n` is, so they check this before any work.
pub(crate) fn check_room(sweeps: usize) -> Result<()> {
    Vec::<f64>::new().try_reserve_exact(sweeps).map_err(|_| {
        PcError::InvalidConfig(format!(
            "n = {sweeps}: the report's {sweeps} energies (one per sweep) do not fit in memory"
        ))
    })
}
