//! The front: [`PcInfer`] (the configurable form) and [`pc_infer`] (the seed's call).

use crate::engine::precision::Promoted;
use crate::engine::state::StateGuard;
use crate::engine::topology::Topology;
use crate::engine::{exact, fixed_pred, grads, strict, Ctx};
use crate::err_type::ErrType;
use crate::error::{PcError, Result};
use crate::guard;
use crate::model::{Graph, PcModel};
use crate::observer::Observer;
use crate::options::{BeliefOptimizer, FixedPredMode, OnDiverge, Settings};
use crate::pc::validate;
use crate::report::PcOutput;
use crate::util;
use tch::{nn, Kind, Tensor};

/// The configurable form of [`pc_infer`], in builder style.
///
/// `PcInfer::new(err_type)` starts from the seed's defaults (`eta = 0.1`, `n = 20`, no
/// `vinit`, no tolerance, [`OnDiverge::Error`](crate::OnDiverge::Error), plain belief steps); [`PcInfer::run`] then
/// computes the beliefs, prediction errors and parameter updates like [`pc_infer`], and
/// writes the updates into the `.grad` of the model's trainable variables.
///
/// * `tol(t)`: stop the relaxation once the largest belief change of a sweep, relative to
///   the belief's scale, `max_i ‖Δv_i‖_∞ / ‖v_i‖_∞` (scale 1 for an all-zero belief), falls
///   below `t`; after backtracking the change is scaled by `η / step`, so that a step made
///   small does not pass for convergence. Without it, all `n` sweeps run, exactly as in the
///   seed.
/// * `on_diverge(OnDiverge::Backtrack)`: halve the step whenever a Strict sweep would raise
///   the energy `F(v) = ℓ(f_N(v_pa(N)), y) + ½ Σ_hidden ‖f_i(v_pa(i)) - v_i‖²`.
/// * `divergence_tolerance(r)`: with [`OnDiverge::Error`](crate::OnDiverge::Error), a sweep whose energy exceeds
///   the starting energy `F_0` by more than `r·|F_0|` is a divergence (default `1e-3`).
/// * `belief_optimizer(..)`: momentum, Nesterov or Adam on the beliefs
///   ([`BeliefOptimizer`](crate::BeliefOptimizer)).
/// * `incremental(&mut opt)`: incremental PC, a parameter step after every sweep.
/// * `observer(&mut o)`: `o` receives each sweep's energy, `‖ε_i‖`, step and update norms.
/// * `relax_kind(Kind::Double)`: run the whole computation in float64 for a float32 model
///   (the variables are promoted for the call and restored bit for bit); the outputs come
///   back in the model's dtype and the updates in the parameters' dtype.
/// * `fixed_pred(FixedPredMode::Literal)`: the seed's literal FixedPred loop instead of the
///   closed form (FixedPred with `tol` or a belief optimizer always uses it).
///
/// ```
/// use tch::{nn, Device, Kind, Tensor};
/// use tch2pc::{loss, ErrType, OnDiverge, PcInfer, Sequential, StopReason};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let root = vs.root();
/// let model = Sequential::new(&vs)
///     .add(nn::linear(&root / "0", 4, 8, Default::default()))
///     .add_fn(|x| x.tanh())
///     .add(nn::linear(&root / "2", 8, 3, Default::default()));
/// let x = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
/// let y = Tensor::randn([16, 3], (Kind::Float, Device::Cpu));
/// let out = PcInfer::new(ErrType::Strict)
///     .eta(0.1)
///     .n(200)
///     .tol(1e-4)
///     .on_diverge(OnDiverge::Backtrack)
///     .run(&model, &loss::mse, &x, &y)?;
/// assert!(matches!(out.report.stop, StopReason::Converged { .. }));
/// assert!(out.report.iterations < 200);
/// # Ok::<(), tch2pc::PcError>(())
/// ```
pub struct PcInfer<'a> {
    pub(crate) settings: Settings,
    vinit: Option<&'a [Tensor]>,
    observer: Option<&'a mut dyn Observer>,
    optimizer: Option<&'a mut nn::Optimizer>,
}

impl std::fmt::Debug for PcInfer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcInfer")
            .field("settings", &self.settings)
            .field("vinit", &self.vinit.map(|v| v.len()))
            .field("observer", &self.observer.is_some())
            .field("incremental", &self.optimizer.is_some())
            .finish()
    }
}

/// What [`PcInfer::compute`] hands back: the output, the variables the call ran on, their
/// updates (undefined where the graph does not use a variable) and the buffers right after
/// the feed-forward pass.
pub(crate) struct Computed {
    pub out: PcOutput,
    pub vars: Vec<Tensor>,
    pub grads: Vec<Tensor>,
    pub post_ff: Option<Vec<Tensor>>,
}

impl<'a> PcInfer<'a> {
    /// A configuration with the seed's defaults: `eta = 0.1`, `n = 20`.
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::FixedPred);
    /// assert_eq!(cfg.err_type(), tch2pc::ErrType::FixedPred);
    /// ```
    pub fn new(err_type: ErrType) -> Self {
        PcInfer {
            settings: Settings::new(err_type),
            vinit: None,
            observer: None,
            optimizer: None,
        }
    }

    /// The algorithm.
    ///
    /// ```
    /// assert_eq!(tch2pc::PcInfer::new(tch2pc::ErrType::Exact).err_type(), tch2pc::ErrType::Exact);
    /// ```
    pub fn err_type(&self) -> ErrType {
        self.settings.err_type
    }

    /// Step size `η` of the relaxation (finite, > 0; not used, hence not checked, by Exact).
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).eta(0.05);
    /// assert!(format!("{cfg:?}").contains("eta: 0.05"));
    /// ```
    pub fn eta(mut self, eta: f64) -> Self {
        self.settings.eta = eta;
        self
    }

    /// Number of relaxation sweeps `n` (at least 1 for Strict and FixedPred; not used by
    /// Exact).
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).n(50);
    /// assert!(format!("{cfg:?}").contains("n: 50"));
    /// ```
    pub fn n(mut self, n: usize) -> Self {
        self.settings.n = n;
        self
    }

    /// Stop once `max_i ‖Δv_i‖_∞ / ‖v_i‖_∞ < tol` (finite, > 0).
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).tol(1e-6);
    /// assert!(format!("{cfg:?}").contains("tol: Some(1e-6)"));
    /// ```
    pub fn tol(mut self, tol: f64) -> Self {
        self.settings.tol = Some(tol);
        self
    }

    /// The divergence policy for Strict.
    ///
    /// ```
    /// use tch2pc::{ErrType, OnDiverge, PcInfer};
    /// let cfg = PcInfer::new(ErrType::Strict).on_diverge(OnDiverge::Backtrack);
    /// assert!(format!("{cfg:?}").contains("Backtrack"));
    /// ```
    pub fn on_diverge(mut self, policy: OnDiverge) -> Self {
        self.settings.on_diverge = policy;
        self
    }

    /// Relative rise of the energy above its starting value that counts as divergence under
    /// [`OnDiverge::Error`](crate::OnDiverge::Error) (default `1e-3`; must be finite and ≥ 0).
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).divergence_tolerance(0.0);
    /// assert!(format!("{cfg:?}").contains("divergence_tolerance: 0.0"));
    /// ```
    pub fn divergence_tolerance(mut self, r: f64) -> Self {
        self.settings.divergence_tolerance = r;
        self
    }

    /// Initial beliefs for Strict, one tensor per node shaped like `vhat` (index 0 is
    /// ignored, and may be `Tensor::default()`: the input is clamped to `x`). Its length,
    /// shapes and dtypes are validated for every algorithm; its values are used by Strict
    /// only (non-finite ones make the relaxation fail with an error, nothing written), and
    /// Exact and FixedPred ignore them.
    ///
    /// ```
    /// let v0: Vec<tch::Tensor> = Vec::new();
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).vinit(&v0);
    /// assert!(format!("{cfg:?}").contains("vinit: Some(0)"));
    /// ```
    pub fn vinit(mut self, vinit: &'a [Tensor]) -> Self {
        self.vinit = Some(vinit);
        self
    }

    /// An observer called once per sweep with the energy, the error norms, the step and the
    /// update's norm.
    ///
    /// ```
    /// let mut rec = tch2pc::Recorder::default();
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).observer(&mut rec);
    /// assert!(format!("{cfg:?}").contains("observer: true"));
    /// ```
    pub fn observer(mut self, observer: &'a mut dyn Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Run the computation in this floating-point dtype (e.g. `Kind::Double` for a float32
    /// model); outputs come back in the model's dtype, updates in the parameters' dtypes.
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).relax_kind(tch::Kind::Double);
    /// assert!(format!("{cfg:?}").contains("Double"));
    /// ```
    pub fn relax_kind(mut self, kind: Kind) -> Self {
        self.settings.relax_kind = Some(kind);
        self
    }

    /// How FixedPred is computed: the closed form (default), the graded form, or the seed's
    /// literal loop ([`FixedPredMode`](crate::FixedPredMode)).
    ///
    /// ```
    /// use tch2pc::{ErrType, FixedPredMode, PcInfer};
    /// let cfg = PcInfer::new(ErrType::FixedPred).fixed_pred(FixedPredMode::Literal);
    /// assert!(format!("{cfg:?}").contains("Literal"));
    /// ```
    pub fn fixed_pred(mut self, mode: FixedPredMode) -> Self {
        self.settings.fixed_pred = mode;
        self
    }

    /// The update rule of the beliefs in each sweep (Strict, FixedPred's literal loop):
    /// plain steps (the default), momentum, Nesterov or Adam, see [`BeliefOptimizer`](crate::BeliefOptimizer) for
    /// the equations. Composes with `tol`, [`OnDiverge::Backtrack`](crate::OnDiverge::Backtrack) (a rejected step resets
    /// the optimizer's state), observers, `relax_kind` and graphs.
    ///
    /// ```
    /// use tch::{nn, Device, Kind, Tensor};
    /// use tch2pc::{loss, BeliefOptimizer, ErrType, OnDiverge, PcInfer, Sequential, StopReason};
    /// let mut vs = nn::VarStore::new(Device::Cpu);
    /// vs.set_kind(Kind::Double);
    /// let model = Sequential::new(&vs)
    ///     .add(nn::linear(vs.root() / "0", 4, 8, Default::default()))
    ///     .add_fn(|x| x.tanh())
    ///     .add(nn::linear(vs.root() / "2", 8, 3, Default::default()));
    /// let x = Tensor::randn([16, 4], (Kind::Double, Device::Cpu));
    /// let y = Tensor::randn([16, 3], (Kind::Double, Device::Cpu));
    /// let out = PcInfer::new(ErrType::Strict)
    ///     .n(500)
    ///     .tol(1e-6)
    ///     .belief_optimizer(BeliefOptimizer::Nesterov { beta: 0.8 })
    ///     .on_diverge(OnDiverge::Backtrack)
    ///     .run(&model, &loss::mse, &x, &y)?;
    /// assert!(matches!(out.report.stop, StopReason::Converged { .. }));
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    pub fn belief_optimizer(mut self, rule: BeliefOptimizer) -> Self {
        self.settings.belief_optimizer = rule;
        self
    }

    /// Incremental predictive coding (iPC; Salvatori et al., ICLR 2024): after every Strict
    /// sweep, the parameter updates at the new beliefs (with that sweep's errors) are written
    /// into `.grad` and `opt.step()` is called, so the parameters change `n` times per call
    /// (the report's `param_steps`). With `n = 1` it equals one Strict call followed by one
    /// `opt.step()`. After the call `.grad` holds the last step's updates: do not call
    /// `opt.step()` again for this batch.
    ///
    /// On an error in the middle of a call the parameters and their `.grad` are restored to
    /// their values before the call (a `.grad` that was undefined is unset again with
    /// `opt.zero_grad()`, which unsets every `.grad` the optimizer tracks before the others
    /// are written back); the optimizer's own state (momentum buffers, Adam's
    /// moments and step count) keeps the steps taken, since tch gives no access to it.
    /// Needs [`ErrType::Strict`] and no `relax_kind`. The optimizer steps every variable it
    /// was built over: if that includes variables this model does not use (another model in
    /// the same `VarStore`), their `.grad`, left as it was, is applied `n` times per call;
    /// build the optimizer over this model's variables, or zero the others' `.grad`.
    ///
    /// ```
    /// use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};
    /// use tch2pc::{loss, ErrType, PcInfer, Sequential};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let model = Sequential::new(&vs)
    ///     .add(nn::linear(vs.root() / "0", 4, 8, Default::default()))
    ///     .add_fn(|x| x.tanh())
    ///     .add(nn::linear(vs.root() / "2", 8, 3, Default::default()));
    /// let mut opt = nn::Sgd::default().build(&vs, 0.01)?;
    /// let x = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
    /// let y = Tensor::randn([16, 3], (Kind::Float, Device::Cpu));
    /// let out = PcInfer::new(ErrType::Strict).n(5).incremental(&mut opt).run(&model, &loss::mse, &x, &y)?;
    /// assert_eq!(out.report.param_steps, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn incremental(mut self, opt: &'a mut nn::Optimizer) -> Self {
        self.optimizer = Some(opt);
        self
    }

    /// Runs the algorithm on one batch and writes the parameter updates into `.grad`
    /// (overwriting, not accumulating) of the trainable variables that the model uses and
    /// that require grad; see [`pc_infer`] for the semantics. Grad mode is set by the
    /// library (it works inside `tch::no_grad`).
    ///
    /// # Errors
    /// [`PcError::EmptyModel`], [`PcError::InvalidGraph`], [`PcError::InvalidEta`],
    /// [`PcError::ZeroIterations`], [`PcError::InvalidConfig`] for bad settings or inputs;
    /// [`PcError::DtypeMismatch`], [`PcError::DeviceMismatch`], [`PcError::ShapeMismatch`]
    /// for inputs that do not fit the model; [`PcError::Forward`] when a node fails;
    /// [`PcError::Loss`], [`PcError::NonScalarLoss`], [`PcError::LabelOutOfRange`],
    /// [`PcError::NonFiniteLoss`] for the loss; [`PcError::Diverged`],
    /// [`PcError::NonFiniteBeliefs`], [`PcError::NonFiniteGradient`] when the relaxation
    /// fails; [`PcError::NonFiniteBuffer`] when the feed-forward pass makes a buffer
    /// non-finite (BatchNorm on one example); [`PcError::Observer`] when the observer
    /// panics; [`PcError::Torch`] for any other libtorch error. On error nothing is written:
    /// parameters, their gradients and the buffers are as before the call.
    pub fn run<M, F>(self, model: &M, loss: &F, x: &Tensor, y: &Tensor) -> Result<PcOutput>
    where
        M: PcModel + ?Sized,
        F: Fn(&Tensor, &Tensor) -> Tensor,
    {
        if !x.defined() {
            return Err(PcError::InvalidConfig("x is an undefined tensor".into()));
        }
        let mut this = self;
        let mut opt = this.optimizer.take();
        tch::with_grad(|| {
            let graph = model.graph();
            let (state, seed) = StateGuard::new(graph, x.device())?;
            let snapshot = match &opt {
                Some(_) => Some(Snapshot::take(graph)?),
                None => None,
            };
            let result = this
                .compute(graph, loss, x, y, true, &state, seed, opt.as_deref_mut())
                .and_then(|c| {
                    grads::write(&c.vars, &c.grads)?;
                    Ok(c)
                });
            match result {
                Ok(c) => {
                    state.commit(c.post_ff)?;
                    Ok(c.out)
                }
                Err(e) => {
                    if let Some(s) = snapshot {
                        s.restore(opt)?;
                    }
                    Err(e)
                }
            }
        })
    }

    /// Everything [`PcInfer::run`] does except writing: the output, the variables, their
    /// updates (checked finite; in the variables' dtypes if `cast`, else in the dtype of the
    /// computation) and the buffers after the feed-forward pass. Runs in grad mode.
    /// `optimizer` is incremental PC's (passed apart from `self`, so that the caller keeps it
    /// for a restore); `self`'s own is ignored.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn compute<F>(
        self,
        graph: &Graph,
        loss: &F,
        x: &Tensor,
        y: &Tensor,
        cast: bool,
        state: &StateGuard,
        seed: Option<i64>,
        optimizer: Option<&mut nn::Optimizer>,
    ) -> Result<Computed>
    where
        F: Fn(&Tensor, &Tensor) -> Tensor,
    {
        // tch panics instead of returning some libtorch errors (an error raised by an op
        // that takes a Scalar surfaces when the Scalar is freed, e.g. a value that overflows
        // the tensor's dtype): caught here, nothing has been written yet.
        let body = move || -> Result<Computed> {
            let settings = self.settings;
            settings.validate()?;
            if optimizer.is_some() {
                if settings.err_type != ErrType::Strict {
                    return Err(PcError::InvalidConfig(format!(
                        "incremental PC needs ErrType::Strict, not {}",
                        settings.err_type
                    )));
                }
                if settings.relax_kind.is_some() {
                    return Err(PcError::InvalidConfig(
                        "incremental PC cannot be combined with relax_kind (the optimizer's state \
                     is in the parameters' dtype)"
                            .into(),
                    ));
                }
            }
            let topo = Topology::of(graph)?;
            let (names, vars): (Vec<String>, Vec<Tensor>) = graph
                .vars()
                .trainable
                .into_iter()
                .filter(|(_, t)| t.requires_grad())
                .unzip();
            validate::inputs(&vars, x, y, self.vinit, topo.output)?;
            let param_kinds: Vec<Kind> = vars.iter().map(|v| v.kind()).collect();
            let out_kind = validate::working_kind(&vars, x);
            let promoted = match settings.relax_kind {
                Some(k) if Some(k) != out_kind => Some(Promoted::new(graph, k)?),
                _ => None,
            };
            let widen = |t: &Tensor| -> Result<Tensor> {
                match &promoted {
                    Some(p) if t.defined() && util::is_float(t.kind()) => {
                        Ok(t.f_to_kind(p.kind())?)
                    }
                    _ => Ok(t.shallow_clone()),
                }
            };
            let vinit = match self.vinit {
                Some(v) => Some(v.iter().map(&widen).collect::<Result<Vec<_>>>()?),
                None => None,
            };
            let mut ctx = Ctx {
                graph,
                topo,
                loss_fn: loss,
                x: widen(x)?.f_detach()?,
                y: widen(y)?.f_detach()?,
                vars: vars.iter().map(|v| v.shallow_clone()).collect(),
                settings: &settings,
                vinit,
                observer: self.observer.map(|o| -> &mut dyn Observer { o }),
                optimizer,
                train: graph.is_training(),
                seed,
                state,
                post_ff: None,
            };
            let raw = match settings.err_type {
                ErrType::Exact => exact::run(&mut ctx)?,
                ErrType::FixedPred => fixed_pred::run(&mut ctx)?,
                ErrType::Strict => strict::run(&mut ctx)?,
            };
            let post_ff = ctx.post_ff.take();
            drop(ctx);
            // Updates in the parameters' own dtype, checked finite before anything is written.
            let grads = raw
                .grads
                .into_iter()
                .zip(&param_kinds)
                .map(|(g, &kind)| {
                    if !g.defined() {
                        return Ok(Tensor::default());
                    }
                    util::detached_as(g, if cast { Some(kind) } else { None })
                })
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Tensor> = grads.iter().collect();
            if !util::all_finite(&refs)? {
                for (i, g) in grads.iter().enumerate() {
                    if !util::all_finite(&[g])? {
                        return Err(PcError::NonFiniteGradient(
                            names.get(i).cloned().unwrap_or_default(),
                        ));
                    }
                }
            }
            // Under relax_kind the outputs come back in the model's dtype; otherwise each value
            // keeps the dtype its node gave it (a model may change dtype on the way).
            let promoted_kind = promoted.as_ref().and(out_kind);
            drop(promoted); // restore the variables before anything is written
            let back = |t: Tensor| -> Result<Tensor> {
                match promoted_kind {
                    Some(k) if util::is_float(t.kind()) => util::detached_as(t, Some(k)),
                    _ => util::detached_as(t, None),
                }
            };
            let backs = |ts: Vec<Tensor>| ts.into_iter().map(back).collect::<Result<Vec<_>>>();
            let mut vhat = backs(raw.vhat)?;
            let mut v = backs(raw.v)?;
            // The clamped input comes back as given (token ids stay integers).
            vhat[0] = x.f_detach()?;
            v[0] = x.f_detach()?;
            let out = PcOutput {
                vhat,
                loss: back(raw.loss)?,
                dldy: back(raw.dldy)?,
                v,
                epsilon: backs(raw.eps)?,
                report: raw.report,
            };
            Ok(Computed {
                out,
                vars,
                grads,
                post_ff,
            })
        };
        guard::catch(body).map_err(|c| match c {
            guard::Caught::Error(e) => e,
            guard::Caught::Message(m) => PcError::Torch(m),
        })?
    }
}

/// The values and `.grad` of every trainable variable, for incremental PC's restore.
struct Snapshot {
    saved: Vec<(Tensor, Tensor, Option<Tensor>)>,
}

impl Snapshot {
    fn take(graph: &Graph) -> Result<Self> {
        let mut saved = Vec::new();
        for (_, v) in graph.vars().trainable {
            let value = util::copy(&v)?;
            let g = v.f_grad()?;
            let g = if g.defined() {
                Some(util::copy(&g)?)
            } else {
                None
            };
            saved.push((v, value, g));
        }
        Ok(Snapshot { saved })
    }

    /// Puts values and `.grad` back. A `.grad` that was undefined before the call is unset
    /// through the optimizer (`zero_grad` sets every `.grad` it tracks to none; the others
    /// are then written back).
    fn restore(self, opt: Option<&mut nn::Optimizer>) -> Result<()> {
        let mut unset = false;
        tch::no_grad(|| -> Result<()> {
            for (v, value, g) in &self.saved {
                let mut v = v.shallow_clone();
                v.f_copy_(value)?;
                unset |= g.is_none() && v.f_grad()?.defined();
            }
            Ok(())
        })?;
        if unset {
            if let Some(opt) = opt {
                guard::catch(|| opt.zero_grad()).map_err(|_| {
                    PcError::Torch("the optimizer's zero_grad failed during a restore".into())
                })?;
            }
        }
        let (vars, grads): (Vec<Tensor>, Vec<Tensor>) = self
            .saved
            .into_iter()
            .filter_map(|(v, _, g)| g.map(|g| (v, g)))
            .unzip();
        grads::write(&vars, &grads)?;
        Ok(())
    }
}

/// Predictive-coding inference on one batch: Torch2PC's `PCInfer`, on a [`Sequential`]
/// chain or any [`Graph`].
///
/// For a model whose nodes compute `v̂_i = f_i(v̂_pa(i))` from the input `v̂_0 = x` (a
/// [`Sequential`] is the chain `v̂_l = f_l(v̂_{l-1})`), a loss `ℓ` and targets `y`, computes
///
/// * the feed-forward pass, the loss `ℓ(v̂_N, y)` and `dldy = ∂ℓ/∂v̂_N`;
/// * beliefs `v_i` and prediction errors `ε_i` with the chosen [`ErrType`] (Exact:
///   `ε_i = ∂ℓ/∂v̂_i`; FixedPred: `n` sweeps with Jacobians at `v̂`, on a chain
///   `ε_l = P(Binomial(n-1, η) ≥ L-l)·∂ℓ/∂v̂_l`; Strict: `n` steps of gradient descent with
///   step `η` on `F(v) = ℓ(f_N(v_pa(N)), y) + ½ Σ_hidden ‖f_i(v_pa(i)) - v_i‖²`, starting
///   from `vinit` or `v̂`);
/// * the parameter updates `Δθ = Σ_i (∂f_i(v_pa(i))/∂θ)ᵀ ε_i` (at `v̂` for Exact and
///   FixedPred, at the final beliefs for Strict; a parameter used by several nodes gets the
///   sum), written into the `.grad` of the trainable variables the model uses, overwritten,
///   not accumulated, so that `optimizer.step()` applies them. Frozen variables
///   (`requires_grad` false) and variables the model does not use are left alone; a tensor
///   of another `VarStore` captured in a node is a constant (no update). An existing
///   `.grad` keeps its dtype and its memory (the update is copied in), one of another shape
///   is replaced; a sparse update (an embedding with `sparse: true`) is written dense.
///
/// `eta` and `n` are used by Strict and FixedPred (`eta` finite and > 0, `n ≥ 1`; Exact
/// ignores both); `vinit` by Strict. Strict relaxations that diverge return
/// [`PcError::Diverged`]; use [`PcInfer`] for tolerances, backtracking, belief optimizers,
/// incremental PC, observers and float64 relaxation.
///
/// Stateful layers follow one rule: within a call every node is one fixed function.
/// BatchNorm in training mode normalises with the statistics of the values it is given, and
/// its running statistics are updated once per call, as by one backprop step (from the
/// feed-forward pass); dropout draws one mask per node and call (see
/// [`Sequential::train`] and the crate documentation for the random stream).
///
/// # Errors
/// As [`PcInfer::run`]; on error, the parameters, their gradients and the buffers are
/// exactly as before the call.
///
/// ```
/// use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};
/// use tch2pc::{loss, pc_infer, ErrType, Sequential};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let root = vs.root();
/// let model = Sequential::new(&vs)
///     .add(nn::seq()
///         .add(nn::conv2d(&root / "0" / "0", 1, 4, 3, Default::default()))
///         .add_fn(|x| x.relu().max_pool2d_default(2)))
///     .add(nn::seq().add_fn(|x| x.flatten(1, -1)).add(nn::linear(&root / "1" / "1", 4 * 13 * 13, 10, Default::default())));
/// let mut opt = nn::Adam::default().build(&vs, 2e-3)?;
/// let x = Tensor::rand([8, 1, 28, 28], (Kind::Float, Device::Cpu));
/// let y = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5, 6, 7]);
/// let out = pc_infer(&model, &loss::cross_entropy, &x, &y, ErrType::Strict, 0.1, 20, None)?;
/// assert_eq!(out.v.len(), 3);
/// opt.step();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Sequential`]: crate::Sequential
/// [`Sequential::train`]: crate::Sequential::train
#[allow(clippy::too_many_arguments)]
pub fn pc_infer<M, F>(
    model: &M,
    loss: &F,
    x: &Tensor,
    y: &Tensor,
    err_type: ErrType,
    eta: f64,
    n: usize,
    vinit: Option<&[Tensor]>,
) -> Result<PcOutput>
where
    M: PcModel + ?Sized,
    F: Fn(&Tensor, &Tensor) -> Tensor,
{
    let mut cfg = PcInfer::new(err_type).eta(eta).n(n);
    if let Some(v) = vinit {
        cfg = cfg.vinit(v);
    }
    cfg.run(model, loss, x, y)
}
