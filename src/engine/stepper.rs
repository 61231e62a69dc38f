//! The belief update of one sweep: plain steps, momentum, Nesterov or Adam
//! ([`BeliefOptimizer`]), with state that a rejected step resets.

use crate::error::Result;
use crate::options::BeliefOptimizer;
use crate::util;
use tch::Tensor;

/// The optimizer's state over the hidden beliefs (indexed by node; undefined elsewhere).
#[derive(Default)]
pub(crate) struct State {
    m: Vec<Tensor>,
    s: Vec<Tensor>,
    t: i32,
}

/// A proposed update: the belief changes and the state after them.
pub(crate) struct Proposal {
    /// `Δv_i` for the nodes given, undefined elsewhere.
    pub delta: Vec<Tensor>,
    state: State,
}

pub(crate) struct Stepper {
    rule: BeliefOptimizer,
    state: State,
}

impl Stepper {
    pub fn new(rule: BeliefOptimizer) -> Self {
        Stepper {
            rule,
            state: State::default(),
        }
    }

    /// The update for directions `dirs` (`d_i = -∂F/∂v_i` at `nodes`) and step `step`.
    /// With `consume`, plain steps scale `dirs` in place (the proposal cannot be retried).
    pub fn propose(
        &self,
        dirs: &mut [Tensor],
        nodes: &[usize],
        step: f64,
        consume: bool,
    ) -> Result<Proposal> {
        let mut delta: Vec<Tensor> = dirs.iter().map(|_| Tensor::default()).collect();
        let mut state = State::default();
        match self.rule {
            BeliefOptimizer::Plain => {
                for &i in nodes {
                    delta[i] = if consume {
                        dirs[i].f_mul_scalar_(step)?
                    } else {
                        dirs[i].f_mul_scalar(step)?
                    };
                }
            }
            BeliefOptimizer::Momentum { beta } | BeliefOptimizer::Nesterov { beta } => {
                state.m = delta.iter().map(|_| Tensor::default()).collect();
                for &i in nodes {
                    let m = match self.state.m.get(i).filter(|t| t.defined()) {
                        Some(m) => m.f_mul_scalar(beta)?.f_add(&dirs[i])?,
                        None => util::copy(&dirs[i])?,
                    };
                    delta[i] = match self.rule {
                        BeliefOptimizer::Nesterov { .. } => {
                            dirs[i].f_add(&m.f_mul_scalar(beta)?)?.f_mul_scalar(step)?
                        }
                        _ => m.f_mul_scalar(step)?,
                    };
                    state.m[i] = m;
                }
            }
            BeliefOptimizer::Adam { beta1, beta2, eps } => {
                state.m = delta.iter().map(|_| Tensor::default()).collect();
                state.s = delta.iter().map(|_| Tensor::default()).collect();
                state.t = self.state.t + 1;
                let c1 = 1.0 - beta1.powi(state.t);
                let c2 = 1.0 - beta2.powi(state.t);
                for &i in nodes {
                    let g = dirs[i].f_neg()?;
                    let g2 = g.f_square()?;
                    let (m, s) = match (
                        self.state.m.get(i).filter(|t| t.defined()),
                        self.state.s.get(i).filter(|t| t.defined()),
                    ) {
                        (Some(m), Some(s)) => (
                            m.f_mul_scalar(beta1)?
                                .f_add(&g.f_mul_scalar(1.0 - beta1)?)?,
                            s.f_mul_scalar(beta2)?
                                .f_add(&g2.f_mul_scalar(1.0 - beta2)?)?,
                        ),
                        _ => (g.f_mul_scalar(1.0 - beta1)?, g2.f_mul_scalar(1.0 - beta2)?),
                    };
                    let denom = s.f_div_scalar(c2)?.f_sqrt()?.f_add_scalar(eps)?;
                    delta[i] = m.f_div_scalar(c1)?.f_div(&denom)?.f_mul_scalar(-step)?;
                    state.m[i] = m;
                    state.s[i] = s;
                }
            }
        }
        Ok(Proposal { delta, state })
    }

    /// Keeps the state of an accepted proposal; returns `‖m‖₂` (0 for plain steps).
    pub fn accept(&mut self, p: State) -> Result<f64> {
        self.state = p;
        let norms: Vec<f64> = self
            .state
            .m
            .iter()
            .filter(|t| t.defined())
            .map(util::norm)
            .collect::<Result<_>>()?;
        Ok(util::hypot(&norms))
    }

    /// Forgets the state (after a rejected step).
    pub fn reset(&mut self) {
        self.state = State::default();
    }
}

impl Proposal {
    /// Splits into the belief changes and the state.
    pub fn into_parts(self) -> (Vec<Tensor>, State) {
        (self.delta, self.state)
    }
}
