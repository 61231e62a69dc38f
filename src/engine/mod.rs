//! The engine: one call's context ([`Ctx`]), the raw results the algorithms return
//! ([`Raw`]), and the algorithms themselves, on any [`Graph`] (a `Sequential` is a chain
//! graph). Nothing here imports the public front (`crate::pc`).

pub(crate) mod exact;
pub(crate) mod fixed_pred;
pub(crate) mod grads;
pub(crate) mod precision;
pub(crate) mod relax;
pub(crate) mod state;
pub(crate) mod stepper;
pub(crate) mod strict;
pub(crate) mod topology;

use crate::error::{PcError, Result};
use crate::guard::{self, Caught};
use crate::model::Graph;
use crate::observer::Observer;
use crate::options::Settings;
use crate::report::PcReport;
use crate::util;
use state::StateGuard;
use tch::{nn, Tensor};
use topology::Topology;

/// Everything an algorithm returns before anything is written.
pub(crate) struct Raw {
    pub vhat: Vec<Tensor>,
    pub loss: Tensor,
    pub dldy: Tensor,
    pub v: Vec<Tensor>,
    pub eps: Vec<Tensor>,
    /// One per trainable variable of the call; undefined where the graph does not use it.
    pub grads: Vec<Tensor>,
    pub report: PcReport,
}

/// Shared state of one call, handed to the algorithms.
pub(crate) struct Ctx<'a, 'o> {
    pub graph: &'a Graph,
    pub topo: Topology,
    pub loss_fn: &'a dyn Fn(&Tensor, &Tensor) -> Tensor,
    /// The clamped input (any dtype: token ids stay integers).
    pub x: Tensor,
    pub y: Tensor,
    /// The trainable variables that require grad (frozen ones are left out).
    pub vars: Vec<Tensor>,
    pub settings: &'a Settings,
    pub vinit: Option<Vec<Tensor>>,
    pub observer: Option<&'o mut dyn Observer>,
    /// Incremental PC: stepped after every sweep.
    pub optimizer: Option<&'o mut nn::Optimizer>,
    pub train: bool,
    /// Dropout seed base (training mode): node `i` runs after `manual_seed(seed + i)`.
    pub seed: Option<i64>,
    pub state: &'a StateGuard,
    /// The buffers right after the feed-forward pass.
    pub post_ff: Option<Vec<Tensor>>,
}

impl Ctx<'_, '_> {
    /// The output node `N`.
    pub fn out(&self) -> usize {
        self.topo.output
    }

    /// Node `i`'s function on `inputs` (its parents' values), in the graph's training mode,
    /// with node `i`'s dropout seed; the result must be floating point (it is a belief), and
    /// the node must not write into its inputs (checked with their version counters: an
    /// in-place op on a parent's value would silently change `v̂` and the errors).
    pub fn apply(&self, i: usize, inputs: &[Tensor]) -> Result<Tensor> {
        if let Some(s) = self.seed {
            tch::manual_seed(s.wrapping_add(i as i64));
        }
        let versions = inputs
            .iter()
            .map(|t| t.f_internal_version())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let out = self.graph.apply(i, inputs, self.train)?;
        for (p, (t, before)) in inputs.iter().zip(versions).enumerate() {
            if t.f_internal_version()? != before {
                return Err(PcError::Forward {
                    layer: i,
                    layers: self.out(),
                    input_shape: inputs.first().map(|t| t.size()).unwrap_or_default(),
                    message: format!(
                        "node {i} wrote into its input {p} in place (an in-place op such as \
                         relu_ on a parent's value); a node must leave its parents' values as \
                         they are: use the out-of-place op (relu)"
                    ),
                });
            }
        }
        if !out.defined() || !util::is_float(out.kind()) {
            return Err(PcError::Forward {
                layer: i,
                layers: self.out(),
                input_shape: inputs.first().map(|t| t.size()).unwrap_or_default(),
                message: format!(
                    "the output has dtype {:?}; every node's value is a belief and must be \
                     floating point (only the input may hold integers, e.g. token ids)",
                    if out.defined() {
                        Some(out.kind())
                    } else {
                        None
                    }
                ),
            });
        }
        Ok(out)
    }

    /// Records the buffers' values once the feed-forward pass is done.
    pub fn feed_forward_done(&mut self) -> Result<()> {
        if self.post_ff.is_none() && self.state.has_buffers() {
            self.post_ff = Some(self.state.capture()?);
        }
        Ok(())
    }

    /// The feed-forward pass as one graph: `h_i = f_i(u_pa(i))` where `u_i` is `h_i` with
    /// its gradient multiplied by `scales[i]` (FixedPred's closed form; 1 without scales).
    /// Outputs that do not require grad become leaves that do, so every `∂ℓ/∂h_i` exists.
    /// Returns `(h, u)`, indexed by node (`[0] = x`).
    pub fn forward_chained(
        &mut self,
        scales: Option<&[f64]>,
    ) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let n = self.out();
        let mut h = vec![self.x.shallow_clone()];
        let mut u = vec![self.x.shallow_clone()];
        for i in 1..=n {
            let inputs = self.graph.gather(i, &u);
            let mut hi = self.apply(i, &inputs)?;
            if !hi.requires_grad() {
                hi = util::leaf(&hi)?;
            } else if inputs.iter().any(|t| util::same_tensor(t, &hi)) {
                // A node that returns its input (an identity, dropout in evaluation mode):
                // a view gives it an autograd identity of its own, so that `∂ℓ/∂h_i` is not
                // confused with its parent's.
                hi = hi.f_view_as(&hi)?;
            }
            u.push(match scales {
                Some(r) if i < n => util::scale_grad(&hi, r[i])?,
                _ => hi.shallow_clone(),
            });
            h.push(hi);
        }
        self.feed_forward_done()?;
        Ok((h, u))
    }

    /// The feed-forward pass with one graph per node: `h_i = f_i(u_pa(i))` where `u_i` is
    /// a leaf holding `v̂_i` (hidden nodes; `u_0 = x`). Returns `(h, u)`.
    pub fn forward_leaves(&mut self) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let n = self.out();
        let mut h = vec![self.x.shallow_clone()];
        let mut u = vec![self.x.shallow_clone()];
        for i in 1..=n {
            let hi = self.apply(i, &self.graph.gather(i, &u))?;
            u.push(if i < n {
                util::leaf(&hi)?
            } else {
                Tensor::default()
            });
            h.push(hi);
        }
        self.feed_forward_done()?;
        Ok((h, u))
    }

    /// Checks `vinit[i]` against the feed-forward shapes and dtypes.
    pub fn check_vinit(&self, vhat: &[Tensor]) -> Result<()> {
        if let Some(v0) = &self.vinit {
            for (i, (a, b)) in v0.iter().zip(vhat).enumerate().skip(1) {
                if a.kind() != b.kind() {
                    return Err(PcError::DtypeMismatch {
                        what: format!("vinit[{i}]"),
                        expected: b.kind(),
                        found: a.kind(),
                    });
                }
                if a.size() != b.size() {
                    return Err(PcError::ShapeMismatch {
                        what: format!("vinit[{i}]"),
                        expected: format!("{:?} (the shape of vhat[{i}])", b.size()),
                        found: a.size(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The loss on `output`, guarded, checked to be a floating scalar with a gradient.
    pub fn loss(&self, output: &Tensor) -> Result<Tensor> {
        let y = &self.y;
        if util::is_float(y.kind()) && y.kind() != output.kind() {
            return Err(PcError::DtypeMismatch {
                what: "y".into(),
                expected: output.kind(),
                found: y.kind(),
            });
        }
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

    /// The (finite) loss at `output` and `∂ℓ/∂output`.
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
    /// variable gradients where a variable is unused.
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
        let mut vars = dense(g.collect())?;
        vars.resize_with(self.vars.len(), Tensor::default);
        Ok((loss.f_detach()?, at, vars))
    }

    /// Gradients of the sum of `roots` with respect to the variables (undefined where
    /// unused).
    pub fn param_grads(&self, roots: &[Tensor], keep_graph: bool) -> Result<Vec<Tensor>> {
        let roots: Vec<Tensor> = roots
            .iter()
            .filter(|r| r.requires_grad())
            .map(|r| r.shallow_clone())
            .collect();
        if roots.is_empty() {
            return Ok(self.vars.iter().map(|_| Tensor::default()).collect());
        }
        let vars: Vec<Tensor> = self.vars.iter().map(|v| v.shallow_clone()).collect();
        let mut g = dense(util::grads(&roots, &vars, keep_graph)?)?;
        g.resize_with(self.vars.len(), Tensor::default);
        Ok(g)
    }

    /// The parameter updates `Σ_i (∂f_i/∂θ)ᵀ ε_i` from the predictions `preds[i]` (with
    /// graph) and the errors `eps[i]`, nodes `1..=N`.
    pub fn updates(&self, preds: &[Tensor], eps: &[Tensor]) -> Result<Vec<Tensor>> {
        let roots: Vec<Tensor> = (1..=self.out())
            .filter(|&i| preds[i].requires_grad())
            .map(|i| util::dot(&preds[i], &eps[i]))
            .collect::<Result<_>>()?;
        self.param_grads(&roots, false)
    }

    /// `[0, ε_1, …]` with `ε_0` zeros shaped like the input (floating, like the beliefs).
    pub fn zero_input_error(&self, like: &Tensor) -> Result<Tensor> {
        if util::is_float(self.x.kind()) {
            Ok(self.x.f_zeros_like()?)
        } else {
            Ok(self.x.f_zeros_like()?.f_to_kind(like.kind())?)
        }
    }
}

/// Parameter gradients as dense tensors: autograd gives a sparse one for an embedding with
/// `sparse: true`, and the checks and `.grad` writes work on dense tensors.
fn dense(grads: Vec<Tensor>) -> Result<Vec<Tensor>> {
    grads
        .into_iter()
        .map(|g| {
            Ok(if g.defined() && g.is_sparse() {
                g.f_to_dense(None, false)?
            } else {
                g
            })
        })
        .collect()
}

/// Detached copies (sharing storage) of `ts`.
pub(crate) fn detached(ts: &[Tensor]) -> Result<Vec<Tensor>> {
    Ok(ts
        .iter()
        .map(|t| t.f_detach())
        .collect::<std::result::Result<_, _>>()?)
}

pub(crate) fn check_finite_loss(loss: &Tensor) -> Result<()> {
    let value = loss.f_detach()?.f_double_value(&[])?;
    if !value.is_finite() {
        return Err(PcError::NonFiniteLoss(value));
    }
    Ok(())
}
