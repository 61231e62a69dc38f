//! How close predictive-coding updates are to backprop, layer by layer (Rosenbaum 2022,
//! Figs. 2–4).

use crate::engine::state::StateGuard;
use crate::err_type::ErrType;
use crate::error::{PcError, Result};
use crate::model::{Graph, PcModel};
use crate::pc::PcInfer;
use crate::report::PcReport;
use crate::util;
use tch::{Kind, Tensor};

/// The agreement of one layer's predictive-coding update with backprop's gradient.
///
/// With `a = Δθ_pc` and `b = Δθ_bp` the layer's parameter updates flattened into vectors:
///
/// * `rel_error = ‖a - b‖ / ‖b‖`;
/// * `angle_deg`, the angle between `a` and `b` in degrees, computed as
///   `2·atan2(‖â - b̂‖, ‖â + b̂‖)` with `â = a/‖a‖`, `b̂ = b/‖b‖` (exactly 0 for `a = b`,
///   accurate at small angles); NaN when either update is zero.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct LayerAlignment {
    /// The node (1-based; the layer of a `Sequential`).
    pub layer: usize,
    /// `‖Δθ_pc - Δθ_bp‖ / ‖Δθ_bp‖`.
    pub rel_error: f64,
    /// Angle between `Δθ_pc` and `Δθ_bp`, in degrees.
    pub angle_deg: f64,
    /// `‖Δθ_pc‖`.
    pub pc_norm: f64,
    /// `‖Δθ_bp‖`.
    pub bp_norm: f64,
}

/// The result of [`PcInfer::alignment`]: one entry per node with parameters, and the
/// report of the predictive-coding run (iterations, stop reason, backtracking).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Alignment {
    /// Per node with parameters, in order.
    pub layers: Vec<LayerAlignment>,
    /// The report of the predictive-coding computation.
    pub report: PcReport,
}

impl PcInfer<'_> {
    /// Compares this configuration's parameter updates with backprop's gradients on one
    /// batch, for every node that has parameters. Nothing is written: `.grad`, the
    /// parameters and the buffers are as before the call. Both are computed in the same
    /// dtype (`relax_kind`, if set) and, in training mode, with the same dropout masks.
    ///
    /// Parameters are attributed to the first node that uses them directly. For FixedPred
    /// on a chain, `rel_error` of layer `l` is `1 - P(Binomial(n-1, η) ≥ L-l)`.
    ///
    /// # Errors
    /// As [`PcInfer::run`].
    ///
    /// ```
    /// use tch::{nn, Device, Kind, Tensor};
    /// use tch2pc::{loss, ErrType, PcInfer, Sequential};
    ///
    /// let mut vs = nn::VarStore::new(Device::Cpu);
    /// vs.set_kind(Kind::Double);
    /// let root = vs.root();
    /// let model = Sequential::new(&vs)
    ///     .add(nn::seq().add(nn::linear(&root / "0", 4, 8, Default::default())).add_fn(|x| x.tanh()))
    ///     .add(nn::linear(&root / "1", 8, 3, Default::default()));
    /// let x = Tensor::randn([16, 4], (Kind::Double, Device::Cpu));
    /// let y = Tensor::randn([16, 3], (Kind::Double, Device::Cpu));
    /// // FixedPred with η = 0.5, n = 2: layer 1 gets P(Binomial(1, 0.5) ≥ 1) = 1/2 of backprop.
    /// let a = PcInfer::new(ErrType::FixedPred).eta(0.5).n(2).alignment(&model, &loss::mse, &x, &y)?;
    /// assert_eq!(a.layers.len(), 2);
    /// assert!((a.layers[0].rel_error - 0.5).abs() < 1e-12);
    /// assert!(a.layers[0].angle_deg.abs() < 1e-6);
    /// assert!(a.layers[1].rel_error < 1e-12); // the top layer is exact
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    pub fn alignment<M, F>(self, model: &M, loss: &F, x: &Tensor, y: &Tensor) -> Result<Alignment>
    where
        M: PcModel + ?Sized,
        F: Fn(&Tensor, &Tensor) -> Tensor,
    {
        let graph = model.graph();
        if !x.defined() {
            return Err(PcError::InvalidConfig("x is an undefined tensor".into()));
        }
        // Alignment writes nothing: incremental PC's optimizer is not stepped here (None).
        let this = self;
        tch::with_grad(|| {
            // One guard for both computations: the same dropout masks, and every buffer
            // restored when it drops.
            let (state, seed) = StateGuard::new(graph, x.device())?;
            let kind = this.settings.relax_kind;
            let pc = this.compute(graph, loss, x, y, false, &state, seed, None)?;
            let mut exact = PcInfer::new(ErrType::Exact);
            if let Some(k) = kind {
                exact = exact.relax_kind(k);
            }
            let bp = exact.compute(graph, loss, x, y, false, &state, seed, None)?;
            let owners = node_of_variables(graph, x, &pc.vars, seed)?;
            let mut layers = Vec::new();
            for i in 1..=graph.len() {
                let idx: Vec<usize> = (0..pc.vars.len())
                    .filter(|&k| owners[k] == Some(i))
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                let a = flatten(&idx, &pc.grads, &pc.vars)?;
                let b = flatten(&idx, &bp.grads, &pc.vars)?;
                layers.push(compare(i, &a, &b)?);
            }
            Ok(Alignment {
                layers,
                report: pc.out.report,
            })
        })
    }
}

fn flatten(idx: &[usize], grads: &[Tensor], vars: &[Tensor]) -> Result<Tensor> {
    let parts = idx
        .iter()
        .map(|&i| {
            let g = util::or_zeros(grads[i].shallow_clone(), &vars[i])?;
            Ok(g.f_detach()?.f_to_kind(Kind::Double)?.f_flatten(0, -1)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::f_cat(&parts, 0)?)
}

fn compare(layer: usize, a: &Tensor, b: &Tensor) -> Result<LayerAlignment> {
    let pc_norm = util::norm(a)?;
    let bp_norm = util::norm(b)?;
    let rel_error = util::norm(&a.f_sub(b)?)? / bp_norm;
    let angle_deg = if pc_norm > 0.0 && bp_norm > 0.0 {
        let ah = a.f_div_scalar(pc_norm)?;
        let bh = b.f_div_scalar(bp_norm)?;
        let d = util::norm(&ah.f_sub(&bh)?)?;
        let s = util::norm(&ah.f_add(&bh)?)?;
        (2.0 * d.atan2(s)).to_degrees()
    } else {
        f64::NAN
    };
    Ok(LayerAlignment {
        layer,
        rel_error,
        angle_deg,
        pc_norm,
        bp_norm,
    })
}

/// For each variable, the first node (1-based) whose own function uses it (each node on
/// detached copies of its parents' feed-forward values, with the call's dropout seed, so
/// that it applies the call's mask like every other evaluation).
fn node_of_variables(
    graph: &Graph,
    x: &Tensor,
    vars: &[Tensor],
    seed: Option<i64>,
) -> Result<Vec<Option<usize>>> {
    let mut owner = vec![None; vars.len()];
    let mut values = vec![x.f_detach()?];
    for i in 1..=graph.len() {
        if let Some(s) = seed {
            tch::manual_seed(s.wrapping_add(i as i64));
        }
        let out = graph.apply(i, &graph.gather(i, &values), graph.is_training())?;
        if out.requires_grad() && util::is_float(out.kind()) && !vars.is_empty() {
            let g = util::grads(&[out.f_sum(None::<Kind>)?], vars, false)?;
            for (k, gk) in g.iter().enumerate() {
                if gk.defined() && owner[k].is_none() {
                    owner[k] = Some(i);
                }
            }
        }
        values.push(out.f_detach()?);
    }
    if !vars.is_empty() && owner.iter().all(|o| o.is_none()) {
        return Err(PcError::InvalidConfig(
            "none of the model's trainable variables is used by its nodes".into(),
        ));
    }
    Ok(owner)
}
