//! Observers of the relaxation: the library never prints, it reports.

/// What one relaxation iteration looked like; passed to [`Observer::observe`].
///
/// For [`ErrType::Strict`](crate::ErrType::Strict) the energy is
/// `F(v) = ℓ(f_L(v_{L-1}), y) + ½ Σ_{l<L} ‖ε_l‖²` at the beliefs the sweep starts from;
/// for [`ErrType::FixedPred`](crate::ErrType::FixedPred) it is
/// `ℓ(v̂_L, y) + ½ Σ_{l<L} ‖ε_l‖²` with that sweep's prediction errors.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Iteration<'a> {
    /// 1-based iteration (sweep) number.
    pub iteration: usize,
    /// The energy at the start of the sweep.
    pub energy: f64,
    /// `‖ε_i‖₂` for nodes `i = 1..=N` (index `i-1`), the prediction errors of this sweep.
    pub eps_norms: &'a [f64],
    /// The step size used for this sweep (smaller than `eta` after backtracking).
    pub eta: f64,
    /// How many times this sweep's step was halved before the energy decreased.
    pub backtracks: usize,
    /// `‖Δv‖₂` over all beliefs: the size of the update this sweep made (NaN where the
    /// algorithm does not form it, as in FixedPred's closed forms).
    pub update_norm: f64,
    /// `‖m‖₂` over all beliefs: the norm of the belief optimizer's first moment (momentum
    /// or Adam) after this sweep; 0 for plain steps, NaN where not formed.
    pub state_norm: f64,
}

/// Receives one [`Iteration`] per relaxation sweep. The default method does nothing, so an
/// observer implements only what it needs.
///
/// An observer that panics stops the call: it returns [`PcError::Observer`] (with the
/// sweep and the panic's message) and writes nothing, like any other error.
///
/// [`PcError::Observer`]: crate::PcError::Observer
///
/// ```
/// use tch2pc::{Iteration, Observer};
/// #[derive(Default)]
/// struct Energies(Vec<f64>);
/// impl Observer for Energies {
///     fn observe(&mut self, it: &Iteration<'_>) {
///         self.0.push(it.energy);
///     }
/// }
/// let mut e = Energies::default();
/// e.observe(&Iteration::new(1, 2.5, &[0.0, 1.0], 0.1, 0));
/// assert_eq!(e.0, [2.5]);
/// ```
pub trait Observer {
    /// Called once per sweep, after the sweep's prediction errors are known.
    fn observe(&mut self, _iteration: &Iteration<'_>) {}
}

impl<'a> Iteration<'a> {
    /// Builds an iteration record (for tests of observers).
    ///
    /// ```
    /// let it = tch2pc::Iteration::new(3, 1.0, &[0.5], 0.1, 0);
    /// assert_eq!(it.iteration, 3);
    /// ```
    pub fn new(
        iteration: usize,
        energy: f64,
        eps_norms: &'a [f64],
        eta: f64,
        backtracks: usize,
    ) -> Self {
        Iteration {
            iteration,
            energy,
            eps_norms,
            eta,
            backtracks,
            update_norm: f64::NAN,
            state_norm: f64::NAN,
        }
    }

    /// The same record with the update's and the optimizer state's norms.
    ///
    /// ```
    /// let it = tch2pc::Iteration::new(1, 1.0, &[0.5], 0.1, 0).with_update(0.25, 0.0);
    /// assert_eq!((it.update_norm, it.state_norm), (0.25, 0.0));
    /// ```
    pub fn with_update(mut self, update_norm: f64, state_norm: f64) -> Self {
        self.update_norm = update_norm;
        self.state_norm = state_norm;
        self
    }
}

/// An observer that records everything: energies, per-node error norms, step sizes and
/// update norms per sweep.
///
/// ```
/// use tch2pc::{Observer, Recorder, Iteration};
/// let mut r = Recorder::default();
/// r.observe(&Iteration::new(1, 3.0, &[1.0, 2.0], 0.1, 0));
/// assert_eq!(r.energy, [3.0]);
/// assert_eq!(r.eps_norms, [vec![1.0, 2.0]]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorder {
    /// Energy per sweep.
    pub energy: Vec<f64>,
    /// `‖ε_i‖₂` per sweep, nodes `i = 1..=N`.
    pub eps_norms: Vec<Vec<f64>>,
    /// Step size per sweep.
    pub eta: Vec<f64>,
    /// `‖Δv‖₂` per sweep (NaN where not formed).
    pub update_norm: Vec<f64>,
    /// The belief optimizer's `‖m‖₂` per sweep.
    pub state_norm: Vec<f64>,
}

impl Observer for Recorder {
    fn observe(&mut self, it: &Iteration<'_>) {
        self.energy.push(it.energy);
        self.eps_norms.push(it.eps_norms.to_vec());
        self.eta.push(it.eta);
        self.update_norm.push(it.update_norm);
        self.state_norm.push(it.state_norm);
    }
}
