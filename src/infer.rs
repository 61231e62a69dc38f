//! `pc_infer` and its configurable form [`PcInfer`].

use crate::err_type::ErrType;
use crate::error::{PcError, Result};
use crate::guard::{self, Caught};
use crate::observer::Observer;
use crate::precision::Promoted;
use crate::sequential::Sequential;
use crate::util;
use crate::{exact, fixed_pred, strict};
use tch::{Kind, Tensor};

/// What to do when a Strict relaxation diverges (the energy rises past its starting value,
/// or beliefs become non-finite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDiverge {
    /// Return [`PcError::Diverged`] (or [`PcError::NonFiniteBeliefs`]) naming the iteration
    /// and the energies; parameters and gradients are left untouched. The default.
    #[default]
    Error,
    /// Backtracking line search: when a sweep would not decrease the energy `F(v)`, redo it
    /// with half the step, until it does. The energy then falls monotonically within the
    /// call. The halved step is kept for the remaining sweeps of the call.
    Backtrack,
}

/// How FixedPred is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FixedPredMode {
    /// The closed form (the default): the recursion is linear with Jacobians fixed at `v̂`,
    /// so `ε_l = c_l ∂ℓ/∂v̂_l` with `c_l = P(Binomial(n-1, η) ≥ L-l)`; one forward and one
    /// backward pass whose gradient is rescaled between layers. Equal to the literal loop
    /// up to rounding.
    #[default]
    ClosedForm,
    /// The seed's literal loop of `n` sweeps with one vector-Jacobian product per layer.
    Literal,
}

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
    /// Total number of step halvings ([`OnDiverge::Backtrack`]).
    pub backtracks: usize,
    /// The step size at the end (equal to `eta` unless backtracking halved it).
    pub final_eta: f64,
    /// Energy at the start of each sweep (Strict, FixedPred); empty for Exact.
    pub energy: Vec<f64>,
    /// Energy at the final beliefs; `None` for Exact.
    pub final_energy: Option<f64>,
}

/// The result of [`pc_infer`]: feed-forward values, loss, beliefs, prediction errors.
///
/// `vhat`, `v` and `epsilon` have length `L+1`; index 0 is the (clamped) input:
/// `vhat[0] = v[0] = x` and `epsilon[0]` is zeros. All tensors are detached.
#[derive(Debug)]
#[non_exhaustive]
pub struct PcOutput {
    /// Feed-forward activations `v̂_l = f_l(v̂_{l-1})`, `v̂_0 = x`.
    pub vhat: Vec<Tensor>,
    /// The scalar loss `ℓ(v̂_L, y)` of the feed-forward pass.
    pub loss: Tensor,
    /// `∂ℓ/∂v̂_L`.
    pub dldy: Tensor,
    /// The beliefs after relaxation.
    pub v: Vec<Tensor>,
    /// The prediction errors.
    pub epsilon: Vec<Tensor>,
    /// Iterations, stop reason and energies.
    pub report: PcReport,
}

/// Everything an algorithm returns before the gradients are committed.
pub(crate) struct Raw {
    pub vhat: Vec<Tensor>,
    pub loss: Tensor,
    pub dldy: Tensor,
    pub v: Vec<Tensor>,
    pub eps: Vec<Tensor>,
    /// One per trainable variable; undefined where the variable is not used.
    pub grads: Vec<Tensor>,
    pub report: PcReport,
}

/// Shared state of one call, handed to the algorithms.
pub(crate) struct Ctx<'a, 'o> {
    pub model: &'a Sequential,
    pub loss_fn: &'a dyn Fn(&Tensor, &Tensor) -> Tensor,
    pub x: Tensor,
    pub y: Tensor,
    pub vars: Vec<Tensor>,
    pub eta: f64,
    pub n: usize,
    pub tol: Option<f64>,
    pub on_diverge: OnDiverge,
    pub divergence_tolerance: f64,
    pub vinit: Option<Vec<Tensor>>,
    pub observer: Option<&'o mut dyn Observer>,
}

impl Ctx<'_, '_> {
    pub fn layers(&self) -> usize {
        self.model.len()
    }

    /// Layer `l` (1-based) on `input`.
    pub fn apply(&self, l: usize, input: &Tensor) -> Result<Tensor> {
        self.model.apply(l, input)
    }

    /// The chained forward pass of layers `lo..=L` from `input` (the input of layer `lo`),
    /// with graph. `scales[l]` rescales the gradient flowing from layer `l+1` back into
    /// layer `l` (FixedPred's closed form). Outputs that do not require grad (parameter-free
    /// layers at the bottom) become leaves that do, so that every `∂ℓ/∂v̂_l` exists; the
    /// clamped input never gets a gradient.
    pub fn forward_graph(
        &self,
        lo: usize,
        input: &Tensor,
        scales: Option<&[f64]>,
    ) -> Result<Vec<Tensor>> {
        let layers = self.layers();
        let mut out = Vec::with_capacity(layers + 1 - lo);
        let mut input = input.shallow_clone();
        for l in lo..=layers {
            let mut h = self.apply(l, &input)?;
            if !h.requires_grad() {
                h = util::leaf(&h)?;
            }
            input = match scales {
                Some(r) if l < layers => util::scale_grad(&h, r[l])?,
                _ => h.shallow_clone(),
            };
            out.push(h);
        }
        Ok(out)
    }

    /// The loss on `output`, guarded, checked to be a scalar.
    pub fn loss(&self, output: &Tensor) -> Result<Tensor> {
        let y = &self.y;
        let l = guard::catch(|| (self.loss_fn)(output, y)).map_err(|c| match c {
            Caught::Error(e) => e,
            Caught::Message(message) => PcError::Loss {
                output_shape: output.size(),
                target_shape: y.size(),
                message,
            },
        })?;
        if !l.defined() || l.numel() != 1 {
            return Err(PcError::NonScalarLoss(if l.defined() {
                l.size()
            } else {
                vec![]
            }));
        }
        if !util::is_float(l.kind()) {
            return Err(PcError::Loss {
                output_shape: output.size(),
                target_shape: y.size(),
                message: format!(
                    "the loss has dtype {:?}; a floating-point scalar is needed",
                    l.kind()
                ),
            });
        }
        if !l.requires_grad() {
            return Err(PcError::Loss {
                output_shape: output.size(),
                target_shape: y.size(),
                message: "the loss does not depend on the model output (it has no gradient)".into(),
            });
        }
        Ok(l)
    }

    /// The loss at `output` and its gradient `∂ℓ/∂output` (for `dldy`), with the loss
    /// checked to be finite.
    pub fn loss_and_grad(&self, output: &Tensor) -> Result<(Tensor, Tensor)> {
        let out = util::leaf(output)?;
        let loss = self.loss(&out)?;
        check_finite_loss(&loss)?;
        let g = util::grads(std::slice::from_ref(&loss), &[out.shallow_clone()], false)?;
        let dldy = util::or_zeros(g.into_iter().next().unwrap_or_default(), &out)?;
        Ok((loss.f_detach()?, dldy))
    }

    /// One backward pass of the (finite) loss at `output`: `(ℓ, ∂ℓ/∂wrt, ∂ℓ/∂θ)`, the loss
    /// detached, zeros for the `wrt` tensors that the loss does not reach, undefined
    /// variable gradients where a variable is unused. Exact and FixedPred's closed form are
    /// this pass (the latter with rescaled gradients in the graph).
    pub fn backprop(
        &self,
        output: &Tensor,
        wrt: &[Tensor],
    ) -> Result<(Tensor, Vec<Tensor>, Vec<Tensor>)> {
        let loss = self.loss(output)?;
        check_finite_loss(&loss)?;
        let mut inputs: Vec<Tensor> = wrt.iter().map(|t| t.shallow_clone()).collect();
        inputs.extend(self.vars.iter().map(|v| v.shallow_clone()));
        let mut g = util::grads(std::slice::from_ref(&loss), &inputs, false)?.into_iter();
        let at = wrt
            .iter()
            .map(|t| util::or_zeros(g.next().unwrap_or_default(), t))
            .collect::<Result<Vec<_>>>()?;
        let mut vars: Vec<Tensor> = g.collect();
        vars.resize_with(self.vars.len(), Tensor::default);
        Ok((loss.f_detach()?, at, vars))
    }

    /// Gradients of `roots` with respect to the trainable variables (undefined where unused).
    pub fn param_grads(&self, roots: &[Tensor]) -> Result<Vec<Tensor>> {
        let roots: Vec<Tensor> = roots
            .iter()
            .filter(|r| r.requires_grad())
            .map(|r| r.shallow_clone())
            .collect();
        if roots.is_empty() {
            return Ok(self.vars.iter().map(|_| Tensor::default()).collect());
        }
        let vars: Vec<Tensor> = self.vars.iter().map(|v| v.shallow_clone()).collect();
        let mut g = util::grads(&roots, &vars, false)?;
        g.resize_with(self.vars.len(), Tensor::default);
        Ok(g)
    }
}

pub(crate) fn check_finite_loss(loss: &Tensor) -> Result<()> {
    let value = loss.f_detach()?.f_double_value(&[])?;
    if !value.is_finite() {
        return Err(PcError::NonFiniteLoss(value));
    }
    Ok(())
}

/// The configurable form of [`pc_infer`], in builder style.
///
/// `PcInfer::new(err_type)` starts from the seed's defaults (`eta = 0.1`, `n = 20`, no
/// `vinit`, no tolerance, [`OnDiverge::Error`]); [`PcInfer::run`] then computes the beliefs,
/// prediction errors and parameter updates like [`pc_infer`], and writes the updates into
/// the `.grad` of the model's trainable variables.
///
/// * `tol(t)`: stop the relaxation once the largest belief change of a sweep, relative to
///   the belief's scale, `max_l ‖Δv_l‖_∞ / ‖v_l‖_∞` (scale 1 for an all-zero belief), falls
///   below `t`. Without it, all `n` sweeps run, exactly as in the seed.
/// * `on_diverge(OnDiverge::Backtrack)`: halve the step whenever a Strict sweep would raise
///   the energy `F(v) = ℓ(f_L(v_{L-1}), y) + ½ Σ_{l<L} ‖f_l(v_{l-1}) - v_l‖²`.
/// * `divergence_tolerance(r)`: with [`OnDiverge::Error`], a sweep whose energy exceeds
///   the starting energy `F_0` by more than `r·|F_0|` is a divergence (default `1e-3`).
/// * `observer(&mut o)`: `o` receives each sweep's energy and `‖ε_l‖`.
/// * `relax_kind(Kind::Double)`: run the whole computation in float64 for a float32 model
///   (the parameters are promoted for the call and restored bit for bit); the outputs come
///   back in the input's dtype and the updates in the parameters' dtype.
/// * `fixed_pred(FixedPredMode::Literal)`: the seed's literal FixedPred loop instead of the
///   closed form (FixedPred with `tol` always uses it).
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
    err_type: ErrType,
    eta: f64,
    n: usize,
    tol: Option<f64>,
    on_diverge: OnDiverge,
    divergence_tolerance: f64,
    vinit: Option<&'a [Tensor]>,
    observer: Option<&'a mut dyn Observer>,
    pub(crate) relax_kind: Option<Kind>,
    fixed_pred: FixedPredMode,
}

impl std::fmt::Debug for PcInfer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcInfer")
            .field("err_type", &self.err_type)
            .field("eta", &self.eta)
            .field("n", &self.n)
            .field("tol", &self.tol)
            .field("on_diverge", &self.on_diverge)
            .field("divergence_tolerance", &self.divergence_tolerance)
            .field("vinit", &self.vinit.map(|v| v.len()))
            .field("observer", &self.observer.is_some())
            .field("relax_kind", &self.relax_kind)
            .field("fixed_pred", &self.fixed_pred)
            .finish()
    }
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
            err_type,
            eta: 0.1,
            n: 20,
            tol: None,
            on_diverge: OnDiverge::Error,
            divergence_tolerance: 1e-3,
            vinit: None,
            observer: None,
            relax_kind: None,
            fixed_pred: FixedPredMode::ClosedForm,
        }
    }

    /// The algorithm.
    ///
    /// ```
    /// assert_eq!(tch2pc::PcInfer::new(tch2pc::ErrType::Exact).err_type(), tch2pc::ErrType::Exact);
    /// ```
    pub fn err_type(&self) -> ErrType {
        self.err_type
    }

    /// Step size `η` of the relaxation (finite, > 0).
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).eta(0.05);
    /// ```
    pub fn eta(mut self, eta: f64) -> Self {
        self.eta = eta;
        self
    }

    /// Number of relaxation sweeps `n` (at least 1 for Strict and FixedPred).
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).n(50);
    /// ```
    pub fn n(mut self, n: usize) -> Self {
        self.n = n;
        self
    }

    /// Stop once the largest relative belief change of a sweep is below `tol` (> 0).
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).tol(1e-6);
    /// ```
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = Some(tol);
        self
    }

    /// The divergence policy for Strict.
    ///
    /// ```
    /// use tch2pc::{ErrType, OnDiverge, PcInfer};
    /// let cfg = PcInfer::new(ErrType::Strict).on_diverge(OnDiverge::Backtrack);
    /// ```
    pub fn on_diverge(mut self, policy: OnDiverge) -> Self {
        self.on_diverge = policy;
        self
    }

    /// Relative rise of the energy above its starting value that counts as divergence under
    /// [`OnDiverge::Error`] (default `1e-3`; must be finite and ≥ 0).
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).divergence_tolerance(0.0);
    /// ```
    pub fn divergence_tolerance(mut self, r: f64) -> Self {
        self.divergence_tolerance = r;
        self
    }

    /// Initial beliefs for Strict, `L+1` tensors shaped like `vhat` (index 0 is ignored:
    /// the input is clamped to `x`). Validated for every algorithm, used by Strict only.
    ///
    /// ```
    /// let v0: Vec<tch::Tensor> = Vec::new();
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).vinit(&v0);
    /// ```
    pub fn vinit(mut self, vinit: &'a [Tensor]) -> Self {
        self.vinit = Some(vinit);
        self
    }

    /// An observer called once per sweep with the energy and the error norms.
    ///
    /// ```
    /// let mut rec = tch2pc::Recorder::default();
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).observer(&mut rec);
    /// ```
    pub fn observer(mut self, observer: &'a mut dyn Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Run the computation in this floating-point dtype (e.g. `Kind::Double` for a float32
    /// model); outputs come back in the input's dtype.
    ///
    /// ```
    /// let cfg = tch2pc::PcInfer::new(tch2pc::ErrType::Strict).relax_kind(tch::Kind::Double);
    /// ```
    pub fn relax_kind(mut self, kind: Kind) -> Self {
        self.relax_kind = Some(kind);
        self
    }

    /// Closed form (default) or the seed's literal loop for FixedPred.
    ///
    /// ```
    /// use tch2pc::{ErrType, FixedPredMode, PcInfer};
    /// let cfg = PcInfer::new(ErrType::FixedPred).fixed_pred(FixedPredMode::Literal);
    /// ```
    pub fn fixed_pred(mut self, mode: FixedPredMode) -> Self {
        self.fixed_pred = mode;
        self
    }

    fn validate_config(&self) -> Result<()> {
        if !(self.eta.is_finite() && self.eta > 0.0) {
            return Err(PcError::InvalidEta(self.eta));
        }
        if self.n == 0 && self.err_type != ErrType::Exact {
            return Err(PcError::ZeroIterations(self.err_type.as_str()));
        }
        if let Some(t) = self.tol {
            if !(t.is_finite() && t > 0.0) {
                return Err(PcError::InvalidConfig(format!(
                    "tol must be finite and > 0, got {t}"
                )));
            }
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

    /// Runs the algorithm on one batch and writes the parameter updates into `.grad`
    /// (overwriting, not accumulating). See [`pc_infer`] for the semantics.
    ///
    /// On error nothing is written: parameters and their gradients are as before the call.
    pub fn run<F>(self, model: &Sequential, loss: &F, x: &Tensor, y: &Tensor) -> Result<PcOutput>
    where
        F: Fn(&Tensor, &Tensor) -> Tensor,
    {
        let (out, vars, grads) = self.compute(model, loss, x, y, true)?;
        commit_grads(&vars, grads)?;
        Ok(out)
    }

    /// Everything [`PcInfer::run`] does except writing `.grad`: the output, the trainable
    /// variables and their updates, checked finite, in the variables' dtypes if `cast`, else
    /// in the dtype of the computation (`relax_kind`).
    pub(crate) fn compute<F>(
        self,
        model: &Sequential,
        loss: &F,
        x: &Tensor,
        y: &Tensor,
        cast: bool,
    ) -> Result<(PcOutput, Vec<Tensor>, Vec<Tensor>)>
    where
        F: Fn(&Tensor, &Tensor) -> Tensor,
    {
        self.validate_config()?;
        if model.is_empty() {
            return Err(PcError::EmptyModel);
        }
        let vars = model.trainable_variables();
        validate_inputs(&vars, x, y, self.vinit, model.len())?;
        let (out, grads) = tch::with_grad(|| self.run_checked(model, loss, x, y, &vars, cast))?;
        Ok((out, vars, grads))
    }

    fn run_checked<F>(
        self,
        model: &Sequential,
        loss: &F,
        x: &Tensor,
        y: &Tensor,
        vars: &[Tensor],
        to_param_kind: bool,
    ) -> Result<(PcOutput, Vec<Tensor>)>
    where
        F: Fn(&Tensor, &Tensor) -> Tensor,
    {
        let out_kind = x.kind();
        let param_kinds: Vec<Kind> = vars.iter().map(|v| v.kind()).collect();
        // Promote the model (and inputs) for the call if asked; restored on drop.
        let promoted = match self.relax_kind {
            Some(k) if k != x.kind() => Some(Promoted::new(model, k)?),
            _ => None,
        };
        let cast = |t: &Tensor| -> Result<Tensor> {
            match &promoted {
                Some(p) if util::is_float(t.kind()) => Ok(t.f_to_kind(p.kind())?),
                _ => Ok(t.shallow_clone()),
            }
        };
        let vinit = match self.vinit {
            Some(v) => Some(v.iter().map(&cast).collect::<Result<Vec<_>>>()?),
            None => None,
        };
        let mut ctx = Ctx {
            model,
            loss_fn: loss,
            x: cast(x)?.f_detach()?,
            y: cast(y)?.f_detach()?,
            vars: vars.iter().map(|v| v.shallow_clone()).collect(),
            eta: self.eta,
            n: self.n,
            tol: self.tol,
            on_diverge: self.on_diverge,
            divergence_tolerance: self.divergence_tolerance,
            vinit,
            observer: self.observer,
        };
        let raw = match self.err_type {
            ErrType::Exact => exact::run(&mut ctx)?,
            ErrType::FixedPred => match (self.fixed_pred, self.tol) {
                (FixedPredMode::ClosedForm, None) => fixed_pred::closed_form(&mut ctx)?,
                _ => fixed_pred::literal(&mut ctx)?,
            },
            ErrType::Strict => strict::run(&mut ctx)?,
        };
        drop(ctx);
        // Gradients in the parameters' own dtype, checked finite before anything is written.
        let grads = raw
            .grads
            .iter()
            .zip(vars.iter().zip(&param_kinds))
            .map(|(g, (v, &kind))| {
                let g = if g.defined() {
                    g.f_detach()?
                } else {
                    v.f_zeros_like()?
                };
                if to_param_kind {
                    Ok(g.f_to_kind(kind)?)
                } else {
                    Ok(g)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = grads.iter().collect();
        if !util::all_finite(&refs)? {
            let names = model.trainable_names();
            for (i, g) in grads.iter().enumerate() {
                if !util::all_finite(&[g])? {
                    return Err(PcError::NonFiniteGradient(
                        names.get(i).cloned().unwrap_or_default(),
                    ));
                }
            }
        }
        drop(promoted); // restore the parameters before the gradients are written
        let back = |t: Tensor| -> Result<Tensor> {
            if t.kind() != out_kind && util::is_float(t.kind()) {
                Ok(t.f_detach()?.f_to_kind(out_kind)?)
            } else {
                Ok(t.f_detach()?)
            }
        };
        let backs = |ts: Vec<Tensor>| ts.into_iter().map(back).collect::<Result<Vec<_>>>();
        let out = PcOutput {
            vhat: backs(raw.vhat)?,
            loss: back(raw.loss)?,
            dldy: back(raw.dldy)?,
            v: backs(raw.v)?,
            epsilon: backs(raw.eps)?,
            report: raw.report,
        };
        Ok((out, grads))
    }
}

/// Checks of dtype, device, definedness and vinit length, before any computation.
fn validate_inputs(
    vars: &[Tensor],
    x: &Tensor,
    y: &Tensor,
    vinit: Option<&[Tensor]>,
    layers: usize,
) -> Result<()> {
    if !x.defined() {
        return Err(PcError::InvalidConfig("x is an undefined tensor".into()));
    }
    if !y.defined() {
        return Err(PcError::InvalidConfig("y is an undefined tensor".into()));
    }
    let (kind, device) = (x.kind(), x.device());
    if !util::is_float(kind) {
        return Err(match vars.first() {
            Some(v) => PcError::DtypeMismatch {
                what: "x".into(),
                expected: v.kind(),
                found: kind,
            },
            None => PcError::InvalidConfig(format!("x must be floating point, got {kind:?}")),
        });
    }
    for v in vars {
        if v.device() != device {
            return Err(PcError::DeviceMismatch {
                what: "x".into(),
                expected: v.device(),
                found: device,
            });
        }
        if v.kind() != kind {
            return Err(PcError::DtypeMismatch {
                what: "x".into(),
                expected: v.kind(),
                found: kind,
            });
        }
    }
    if y.device() != device {
        return Err(PcError::DeviceMismatch {
            what: "y".into(),
            expected: device,
            found: y.device(),
        });
    }
    if util::is_float(y.kind()) && y.kind() != kind {
        return Err(PcError::DtypeMismatch {
            what: "y".into(),
            expected: kind,
            found: y.kind(),
        });
    }
    if let Some(v0) = vinit {
        if v0.len() != layers + 1 {
            return Err(PcError::ShapeMismatch {
                what: "vinit".into(),
                expected: format!("{} tensors (L+1, index 0 for the input)", layers + 1),
                found: vec![v0.len() as i64],
            });
        }
        for (l, t) in v0.iter().enumerate().skip(1) {
            if !t.defined() {
                return Err(PcError::InvalidConfig(format!(
                    "vinit[{l}] is an undefined tensor"
                )));
            }
            if t.device() != device {
                return Err(PcError::DeviceMismatch {
                    what: format!("vinit[{l}]"),
                    expected: device,
                    found: t.device(),
                });
            }
            if t.kind() != kind {
                return Err(PcError::DtypeMismatch {
                    what: format!("vinit[{l}]"),
                    expected: kind,
                    found: t.kind(),
                });
            }
        }
    }
    Ok(())
}

/// Checks `vinit[l]` against the feed-forward shapes (called by the algorithms once
/// `vhat` is known).
pub(crate) fn check_vinit_shapes(vinit: &[Tensor], vhat: &[Tensor]) -> Result<()> {
    for (l, (a, b)) in vinit.iter().zip(vhat).enumerate().skip(1) {
        if a.size() != b.size() {
            return Err(PcError::ShapeMismatch {
                what: format!("vinit[{l}]"),
                expected: format!("{:?} (the shape of vhat[{l}])", b.size()),
                found: a.size(),
            });
        }
    }
    Ok(())
}

/// Writes `grads` into the `.grad` of `vars`, overwriting (zeros for unused variables).
fn commit_grads(vars: &[Tensor], grads: Vec<Tensor>) -> Result<()> {
    let mut pending: Vec<(Tensor, Tensor)> = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for (v, g) in vars.iter().zip(grads) {
            let g = util::or_zeros(g, v)?;
            let mut cur = v.f_grad()?;
            if cur.defined() && cur.size() == v.size() && cur.kind() == v.kind() {
                cur.f_copy_(&g)?;
            } else {
                pending.push((v.shallow_clone(), g));
            }
        }
        Ok(())
    })?;
    if pending.is_empty() {
        return Ok(());
    }
    // Variables without a .grad yet: let autograd create it, with value g.
    let mut total: Option<Tensor> = None;
    for (v, g) in &pending {
        let term = util::dot(v, g)?;
        total = Some(match total {
            None => term,
            Some(t) => t.f_add(&term)?,
        });
    }
    if let Some(t) = total {
        t.f_backward()?;
    }
    Ok(())
}

/// Predictive-coding inference on one batch: Torch2PC's `PCInfer`.
///
/// For a model `f = f_L ∘ … ∘ f_1` ([`Sequential`]), a loss `ℓ`, inputs `x` and targets
/// `y`, computes
///
/// * the feed-forward pass `v̂_0 = x`, `v̂_l = f_l(v̂_{l-1})`, the loss `ℓ(v̂_L, y)` and
///   `dldy = ∂ℓ/∂v̂_L`;
/// * beliefs `v_l` and prediction errors `ε_l` with the chosen [`ErrType`] (Exact:
///   `ε_l = ∂ℓ/∂v̂_l`; FixedPred: `ε_l = P(Binomial(n-1, η) ≥ L-l)·∂ℓ/∂v̂_l` after `n`
///   sweeps with Jacobians at `v̂`; Strict: `n` steps of gradient descent with step `η` on
///   `F(v) = ℓ(f_L(v_{L-1}), y) + ½ Σ_{l<L} ‖f_l(v_{l-1}) - v_l‖²`, starting from
///   `vinit` or `v̂`);
/// * the parameter updates `Δθ_l = (∂f_l(v_{l-1})/∂θ_l)ᵀ ε_l` (at `v̂` for Exact and
///   FixedPred, at the final beliefs for Strict), written into the `.grad` of every
///   trainable variable of the model's `VarStore` — overwritten, not accumulated — so that
///   `optimizer.step()` applies them.
///
/// `eta` and `n` are used by Strict and FixedPred (`eta` must be finite and > 0 in any
/// case; `n ≥ 1` for the iterative algorithms); `vinit` by Strict. Strict relaxations that
/// diverge return [`PcError::Diverged`]; use [`PcInfer`] for tolerances, backtracking,
/// observers and float64 relaxation.
///
/// On error, the parameters and their gradients are exactly as before the call.
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
#[allow(clippy::too_many_arguments)]
pub fn pc_infer<F>(
    model: &Sequential,
    loss: &F,
    x: &Tensor,
    y: &Tensor,
    err_type: ErrType,
    eta: f64,
    n: usize,
    vinit: Option<&[Tensor]>,
) -> Result<PcOutput>
where
    F: Fn(&Tensor, &Tensor) -> Tensor,
{
    let mut cfg = PcInfer::new(err_type).eta(eta).n(n);
    if let Some(v) = vinit {
        cfg = cfg.vinit(v);
    }
    cfg.run(model, loss, x, y)
}
