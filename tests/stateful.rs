//! Stateful layers (BatchNorm, Dropout): within one call every layer is one fixed function.
//!
//! In training mode BatchNorm normalises with the statistics of the values it is given and
//! updates its running statistics once per call, as one backprop step would (from the
//! feed-forward pass); dropout draws one mask per node and call, used in the feed-forward
//! pass, in every sweep and in the parameter update. In evaluation mode: running
//! statistics, no dropout, nothing written into the buffers.
//!
//! The references are plain tch computations in a second `VarStore` holding a copy of the
//! model's variables (and buffers), whose dropout node multiplies by the mask the call used
//! (read from `vhat`: `vhat_d = vhat_{d-1} ⊙ m / (1 - p)`, as libtorch's dropout computes
//! it). Float64 wherever equality is claimed.

#[path = "common/real.rs"]
mod real;

use real::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use tch2pc::{
    loss, ErrType, FixedPredMode, Layer, OnDiverge, PcError, PcInfer, PcOutput, Sequential,
};

const CPU: Device = Device::Cpu;
const F64: Kind = Kind::Double;
const F32: Kind = Kind::Float;
/// Dropout probability.
const P: f64 = 0.3;
/// Batch size.
const B: i64 = 6;

/// The test models. Every hidden `Linear` is followed by a tanh in the same node.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arch {
    /// Linear+tanh → BatchNorm1d → Linear+tanh → Linear (BatchNorm is a hidden node, so
    /// Strict evaluates it in every sweep).
    Bn,
    /// BatchNorm1d → Linear+tanh → Linear (BatchNorm fed by the input).
    BnFirst,
    /// Linear+tanh → Dropout(0.3) → Linear+tanh → Linear.
    Dropout,
    /// Linear+tanh → BatchNorm1d → Dropout(0.3) → Linear.
    Both,
}

const ARCHS: [Arch; 4] = [Arch::Bn, Arch::BnFirst, Arch::Dropout, Arch::Both];

impl Arch {
    /// The dropout node, if any.
    fn dropout_node(self) -> Option<usize> {
        match self {
            Arch::Dropout => Some(2),
            Arch::Both => Some(3),
            _ => None,
        }
    }
    fn has_bn(self) -> bool {
        self != Arch::Dropout
    }
    fn layers(self) -> usize {
        match self {
            Arch::BnFirst => 3,
            _ => 4,
        }
    }
}

/// The noise a reference dropout node multiplies by (set once the mask is known).
type Noise = Arc<Mutex<Option<Tensor>>>;

/// What the dropout node of a model is.
enum Drop {
    /// `nn::func_t(|x, train| x.dropout(P, train))`, added with `add_t`, as a user writes it.
    Real,
    /// The reference: `x ⊙ noise` in training mode, `x` in evaluation mode.
    Fixed(Noise),
    /// Real dropout that records every mask it draws and whether grad mode was on.
    Recording(Log),
}

struct FixedNoise(Noise);

impl Layer for FixedNoise {
    fn layer_forward(&self, xs: &Tensor, train: bool) -> Tensor {
        if !train {
            return xs.shallow_clone();
        }
        let noise = self.0.lock().unwrap();
        xs * noise
            .as_ref()
            .expect("the reference's noise is set before use")
    }
}

/// `(mask, grad mode on)` of every evaluation of a [`Recording`] node.
type Log = Arc<Mutex<Vec<(Tensor, bool)>>>;

struct Recording(Log);

/// Whether autograd records operations right now (tch has no getter for the grad mode).
fn grad_mode() -> bool {
    let probe = Tensor::ones([1], (F64, CPU)).set_requires_grad(true);
    (&probe * 2.0).requires_grad()
}

impl Layer for Recording {
    fn layer_forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = xs.dropout(P, train);
        self.0
            .lock()
            .unwrap()
            .push((out.ne(0.0).detach(), grad_mode()));
        out
    }
}

/// Builds `arch` in a fresh store of dtype `kind` (initialised from the global generator).
fn build(arch: Arch, kind: Kind, drop: Drop) -> (nn::VarStore, Sequential) {
    let mut vs = nn::VarStore::new(CPU);
    let m = {
        let r = vs.root();
        let dense = |p: &str, i: i64, o: i64| {
            nn::seq()
                .add(nn::linear(&r / p / "0", i, o, Default::default()))
                .add_fn(|x| x.tanh())
        };
        let linear = |p: &str, i: i64, o: i64| nn::linear(&r / p, i, o, Default::default());
        let bn = |p: &str, c: i64| nn::batch_norm1d(&r / p, c, Default::default());
        let with_dropout = |m: Sequential| match drop {
            Drop::Real => m.add_t(nn::func_t(|x, train| x.dropout(P, train))),
            Drop::Fixed(noise) => m.add_layer(FixedNoise(noise)),
            Drop::Recording(log) => m.add_layer(Recording(log)),
        };
        let m = Sequential::new(&vs);
        match arch {
            Arch::Bn => m
                .add(dense("0", 5, 8))
                .add_t(bn("1", 8))
                .add(dense("2", 8, 6))
                .add(linear("3", 6, 3)),
            Arch::BnFirst => m
                .add_t(bn("0", 5))
                .add(dense("1", 5, 8))
                .add(linear("2", 8, 3)),
            Arch::Dropout => with_dropout(m.add(dense("0", 5, 8)))
                .add(dense("2", 8, 6))
                .add(linear("3", 6, 3)),
            Arch::Both => {
                with_dropout(m.add(dense("0", 5, 8)).add_t(bn("1", 8))).add(linear("3", 8, 3))
            }
        }
    };
    // After building: tch creates BatchNorm's buffers in float32 whatever the store's kind.
    vs.set_kind(kind);
    assert_eq!(m.len(), arch.layers());
    (vs, m)
}

/// A seeded model (real dropout) and a batch.
fn setup(arch: Arch, kind: Kind, seed: i64) -> (nn::VarStore, Sequential, Tensor, Tensor) {
    tch::manual_seed(seed);
    let (vs, m) = build(arch, kind, Drop::Real);
    let x = Tensor::randn([B, 5], (kind, CPU));
    let y = Tensor::randn([B, 3], (kind, CPU));
    (vs, m, x, y)
}

/// A plain tch copy of a model: same architecture, a copy of the variables and buffers
/// (taken when it is made), the dropout node multiplying by the noise set later.
struct Reference {
    vs: nn::VarStore,
    model: Sequential,
    noise: Noise,
    arch: Arch,
    kind: Kind,
}

impl Reference {
    fn of(arch: Arch, kind: Kind, src: &nn::VarStore) -> Reference {
        let noise: Noise = Arc::new(Mutex::new(None));
        let (mut vs, model) = build(arch, kind, Drop::Fixed(noise.clone()));
        vs.copy(src).unwrap();
        Reference {
            vs,
            model,
            noise,
            arch,
            kind,
        }
    }

    /// Takes the dropout mask from a call's feed-forward values and checks that the dropout
    /// node computed `vhat_{d-1} ⊙ m / (1 - p)`.
    fn mask_from(&self, out: &PcOutput) {
        let Some(d) = self.arch.dropout_node() else {
            return;
        };
        let mask = out.vhat[d].ne(0.0);
        let noise = mask.to_kind(self.kind) / (1.0 - P);
        let kept = mask.to_kind(F64).mean(F64).double_value(&[]);
        assert!(
            (0.3..0.98).contains(&kept),
            "a dropout mask keeping {kept} of the units"
        );
        let tol = if self.kind == F64 { 1e-12 } else { 1e-6 };
        assert!(max_diff(&out.vhat[d], &(&out.vhat[d - 1] * &noise)) <= tol);
        *self.noise.lock().unwrap() = Some(noise);
    }

    /// One forward pass in the reference's mode, the MSE loss and backprop's gradients
    /// (nothing written into `.grad`).
    fn backprop(&self, x: &Tensor, y: &Tensor) -> (Tensor, Tensor, BTreeMap<String, Tensor>) {
        let out = self.model.forward(x);
        let l = loss::mse(&out, y);
        let g = gradients(&l, &trainable(&self.vs));
        (out.detach(), l.detach(), g)
    }
}

fn cfg<'a>(err_type: ErrType, eta: f64, n: usize) -> PcInfer<'a> {
    PcInfer::new(err_type).eta(eta).n(n)
}

/// Exact's updates are backprop's through the same function: the batch's statistics and
/// the mask of the call; the running statistics are those after that one forward pass.
#[test]
fn exact_equals_backprop_with_the_same_mask_and_statistics() {
    let _turn = serial();
    for arch in ARCHS {
        let (vs, model, x, y) = setup(arch, F64, 11);
        let reference = Reference::of(arch, F64, &vs);
        let out = cfg(ErrType::Exact, 0.1, 1)
            .run(&model, &loss::mse, &x, &y)
            .unwrap();
        reference.mask_from(&out);
        let (bp_out, bp_loss, bp_grads) = reference.backprop(&x, &y);
        let n = arch.layers();
        let d_out = close("output", &out.vhat[n], &bp_out, 1e-12);
        close("loss", &out.loss, &bp_loss, 1e-12);
        let d_grad = grads_close(&format!("{arch:?} Exact"), &vs, &bp_grads, 1e-10);
        let mut d_buf: f64 = 0.0;
        let after = buffers(&reference.vs);
        assert_eq!(after.is_empty(), !arch.has_bn());
        for (name, b) in buffers(&vs) {
            d_buf = d_buf.max(close(&format!("{arch:?} {name}"), &b, &after[&name], 1e-12));
        }
        eprintln!(
            "{arch:?}: Exact vs backprop: output {d_out:.1e}, .grad {d_grad:.1e}, running statistics {d_buf:.1e}"
        );
    }
}

/// FixedPred with η = 1 and n ≥ L is backprop, so it equals Exact (same seed, same mask).
#[test]
fn fixedpred_eta_one_enough_sweeps_equals_exact() {
    let _turn = serial();
    for arch in ARCHS {
        let (vs, model, x, y) = setup(arch, F64, 12);
        let l = arch.layers();
        tch::manual_seed(100);
        let exact = cfg(ErrType::Exact, 0.1, 1)
            .run(&model, &loss::mse, &x, &y)
            .unwrap();
        let want: BTreeMap<String, Tensor> = trainable(&vs)
            .into_iter()
            .map(|(k, v)| (k, v.grad().copy()))
            .collect();
        let mut worst: f64 = 0.0;
        for mode in [
            FixedPredMode::ClosedForm,
            FixedPredMode::Graded,
            FixedPredMode::Literal,
        ] {
            for n in [l, l + 3] {
                tch::manual_seed(100);
                let out = cfg(ErrType::FixedPred, 1.0, n)
                    .fixed_pred(mode)
                    .run(&model, &loss::mse, &x, &y)
                    .unwrap();
                let what = format!("{arch:?} FixedPred {mode:?} n {n}");
                close(&what, &out.vhat[l], &exact.vhat[l], 0.0);
                worst = worst.max(grads_close(&what, &vs, &want, 1e-10));
                for i in 1..=l {
                    worst = worst.max(close(&what, &out.epsilon[i], &exact.epsilon[i], 1e-10));
                }
            }
        }
        eprintln!("{arch:?}: FixedPred (eta 1, n >= L) vs Exact: {worst:.1e}");
    }
}

/// The algorithms and FixedPred's modes, with settings that relax for a while.
fn algorithms() -> Vec<(String, PcInfer<'static>)> {
    vec![
        ("Exact".into(), cfg(ErrType::Exact, 0.1, 1)),
        ("FixedPred".into(), cfg(ErrType::FixedPred, 0.1, 20)),
        (
            "FixedPred graded".into(),
            cfg(ErrType::FixedPred, 0.1, 20).fixed_pred(FixedPredMode::Graded),
        ),
        (
            "FixedPred literal".into(),
            cfg(ErrType::FixedPred, 0.1, 20).fixed_pred(FixedPredMode::Literal),
        ),
        (
            "Strict".into(),
            cfg(ErrType::Strict, 0.1, 20).on_diverge(OnDiverge::Backtrack),
        ),
    ]
}

/// The running statistics after one call (two calls) are those after one (two) train-mode
/// forward passes, for every algorithm; also with `relax_kind(Kind::Double)` on a float32
/// model (cast back to float32).
#[test]
fn running_statistics_follow_the_feed_forward_pass_once_per_call() {
    let _turn = serial();
    for relax in [false, true] {
        let kind = if relax { F32 } else { F64 };
        let tol = if relax { 1e-6 } else { 1e-12 };
        for arch in [Arch::Bn, Arch::BnFirst, Arch::Both] {
            let mut worst: f64 = 0.0;
            for k in 0..algorithms().len() {
                let name = algorithms().swap_remove(k).0;
                let (vs, model, x, y) = setup(arch, kind, 13);
                let x2 = Tensor::randn([B, 5], (kind, CPU));
                let y2 = Tensor::randn([B, 3], (kind, CPU));
                let reference = Reference::of(arch, kind, &vs);
                let before = buffers(&vs);
                let params: Vec<Tensor> =
                    vs.trainable_variables().iter().map(|t| t.copy()).collect();
                for (round, (x, y)) in [(&x, &y), (&x2, &y2)].into_iter().enumerate() {
                    let c = algorithms().swap_remove(k).1;
                    let c = if relax { c.relax_kind(F64) } else { c };
                    let out = c.run(&model, &loss::mse, x, y).unwrap();
                    reference.mask_from(&out);
                    let _ = reference.backprop(x, y);
                    let want = buffers(&reference.vs);
                    for (b, now) in buffers(&vs) {
                        assert_eq!(now.kind(), kind, "{b} keeps its dtype");
                        let what = format!("{arch:?} {name} relax {relax} call {}: {b}", round + 1);
                        assert!(!now.equal(&before[&b]), "{what}: not updated");
                        worst = worst.max(close(&what, &now, &want[&b], tol));
                    }
                }
                if relax {
                    // The variables were promoted for the calls and restored bit for bit
                    // (no optimizer step was taken).
                    for (a, b) in vs.trainable_variables().iter().zip(&params) {
                        assert!(a.equal(b) && a.kind() == F32);
                    }
                }
            }
            eprintln!(
                "{arch:?}{}: running statistics vs forward passes: {worst:.1e}",
                if relax {
                    " (float32, relax_kind Double)"
                } else {
                    ""
                }
            );
        }
    }
}

/// Strict with backtracking on stateful models: the energy never rises, and the final
/// energy is that of the final beliefs computed by plain tch with the call's mask and with
/// BatchNorm normalising the final beliefs by their own batch statistics (the function
/// stayed the same in every sweep).
#[test]
fn strict_backtracking_on_stateful_models() {
    let _turn = serial();
    for arch in ARCHS {
        let (vs, model, x, y) = setup(arch, F64, 14);
        let reference = Reference::of(arch, F64, &vs);
        let out = cfg(ErrType::Strict, 3.0, 40)
            .on_diverge(OnDiverge::Backtrack)
            .run(&model, &loss::mse, &x, &y)
            .unwrap();
        reference.mask_from(&out);
        let r = &out.report;
        if arch == Arch::Dropout {
            assert!(r.backtracks > 0, "eta 3 should need backtracking");
        }
        let mut energies = r.energy.clone();
        energies.push(r.final_energy.unwrap());
        for w in energies.windows(2) {
            assert!(w[1] <= w[0], "{arch:?}: the energy rose: {energies:?}");
        }
        assert!(energies.last().unwrap() < &energies[0]);
        // F(v̂) is the loss; F at the final beliefs, recomputed with the mask of the call.
        let loss = out.loss.double_value(&[]);
        assert!((energies[0] - loss).abs() <= 1e-12 * loss.abs().max(1.0));
        let l = model.len();
        let f = tch::no_grad(|| {
            let layer = |i: usize| reference.model.f_layer_forward(i, &out.v[i - 1]).unwrap();
            let mut f = loss::mse(&layer(l), &y).double_value(&[]);
            for i in 1..l {
                f += 0.5 * (layer(i) - &out.v[i]).square().sum(F64).double_value(&[]);
            }
            f
        });
        let final_energy = r.final_energy.unwrap();
        let d = (f - final_energy).abs() / final_energy.abs().max(1.0);
        assert!(
            d <= 1e-10,
            "{arch:?}: final energy {final_energy} vs recomputed {f}"
        );
        eprintln!(
            "{arch:?}: Strict, eta 3, backtracking: {} sweeps, {} halvings, energy {:.4} -> {:.4}, recomputed final energy differs by {d:.1e}",
            r.iterations, r.backtracks, energies[0], final_energy
        );
    }
}

/// Evaluation mode: the running statistics normalise, dropout is off, nothing is written
/// into the buffers, and every algorithm's `vhat` is the plain eval-mode forward pass.
#[test]
fn eval_mode_uses_running_statistics_and_no_dropout() {
    let _turn = serial();
    for arch in ARCHS {
        let (vs, mut model, x, y) = setup(arch, F64, 15);
        // Running statistics away from their initial values.
        tch::no_grad(|| {
            for (name, mut b) in vs.variables() {
                if name.ends_with("running_mean") {
                    b.copy_(&(Tensor::randn(b.size(), (F64, CPU)) * 0.5));
                } else if name.ends_with("running_var") {
                    b.copy_(&(Tensor::rand(b.size(), (F64, CPU)) + 0.5));
                }
            }
        });
        let train_out = model.f_forward(&x).unwrap();
        model.eval();
        let mut reference = Reference::of(arch, F64, &vs);
        reference.model.eval();
        let (bp_out, _, bp_grads) = reference.backprop(&x, &y);
        let plain = model.forward(&x);
        assert!(plain.equal(&bp_out), "{arch:?}: eval forward");
        assert!(
            max_diff(&plain, &train_out) > 1e-3,
            "{arch:?}: eval mode should change the output"
        );
        let before = state(&vs);
        let l = arch.layers();
        for (name, c) in algorithms() {
            let out = c.run(&model, &loss::mse, &x, &y).unwrap();
            let what = format!("{arch:?} eval {name}");
            close(&what, &out.vhat[l], &plain, 0.0);
            if let Some(d) = arch.dropout_node() {
                assert!(
                    out.vhat[d].equal(&out.vhat[d - 1]),
                    "{what}: dropout is off"
                );
            }
            let after = state(&vs);
            for (b, v) in buffers(&vs) {
                assert!(v.equal(&before[&b].0), "{what}: {b} changed");
            }
            for (k, (v, _)) in &after {
                assert!(v.equal(&before[k].0), "{what}: {k} changed");
            }
            if name == "Exact" {
                let d = grads_close(&what, &vs, &bp_grads, 1e-10);
                eprintln!("{arch:?}: eval-mode Exact vs eval-mode backprop: {d:.1e}");
            }
        }
    }
}

/// One mask per node and call: every evaluation of the dropout node within a call (the
/// feed-forward pass, every sweep, the update pass, alignment's two computations) applies
/// the same mask, in grad mode even inside `tch::no_grad`; the next call draws a new one;
/// the same seed gives the same mask.
#[test]
fn one_dropout_mask_per_call_reused_in_every_sweep() {
    let _turn = serial();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    tch::manual_seed(16);
    let (vs, model) = build(Arch::Dropout, F64, Drop::Recording(log.clone()));
    let x = Tensor::randn([B, 5], (F64, CPU));
    let y = Tensor::randn([B, 3], (F64, CPU));
    let take = || std::mem::take(&mut *log.lock().unwrap());
    let check = |what: &str, calls: Vec<(Tensor, bool)>, at_least: usize| -> Tensor {
        assert!(
            calls.len() >= at_least,
            "{what}: {} evaluations, expected at least {at_least}",
            calls.len()
        );
        for (k, (m, grad)) in calls.iter().enumerate() {
            assert!(
                m.equal(&calls[0].0),
                "{what}: evaluation {k} used another mask"
            );
            assert!(*grad, "{what}: evaluation {k} ran without grad mode");
        }
        calls[0].0.shallow_clone()
    };
    let vinit: Vec<Tensor> = {
        let v = model.as_graph().f_forward_all(&x).unwrap();
        v.iter().map(|t| t.detach() + 0.1).collect()
    };
    take();
    let mut masks = Vec::new();
    for no_grad in [false, true] {
        let configs: Vec<(&str, PcInfer<'_>, usize)> = vec![
            ("Exact", cfg(ErrType::Exact, 0.1, 1), 1),
            ("FixedPred", cfg(ErrType::FixedPred, 0.1, 8), 1),
            (
                "FixedPred graded",
                cfg(ErrType::FixedPred, 0.1, 8).fixed_pred(FixedPredMode::Graded),
                1,
            ),
            (
                "FixedPred literal",
                cfg(ErrType::FixedPred, 0.1, 8).fixed_pred(FixedPredMode::Literal),
                1,
            ),
            ("Strict", cfg(ErrType::Strict, 0.1, 8), 9),
            (
                "Strict vinit",
                cfg(ErrType::Strict, 0.1, 8)
                    .vinit(&vinit)
                    .on_diverge(OnDiverge::Backtrack),
                9,
            ),
            (
                "Strict relax_kind",
                cfg(ErrType::Strict, 0.1, 8).relax_kind(F64),
                9,
            ),
        ];
        for (name, c, at_least) in configs {
            let what = format!("{name} (no_grad {no_grad})");
            let run = || c.run(&model, &loss::mse, &x, &y).map(|_| ());
            if no_grad {
                tch::no_grad(run).unwrap();
            } else {
                run().unwrap();
            }
            masks.push(check(&what, take(), at_least));
        }
        let a = cfg(ErrType::Strict, 0.1, 8);
        let align = || a.alignment(&model, &loss::mse, &x, &y).map(|_| ());
        if no_grad {
            tch::no_grad(align).unwrap();
        } else {
            align().unwrap();
        }
        masks.push(check(&format!("alignment (no_grad {no_grad})"), take(), 10));
    }
    // Calls in a row draw new masks.
    for w in masks.windows(2) {
        assert!(!w[0].equal(&w[1]), "two calls used the same mask");
    }
    // The same seed, the same mask (and the same updates).
    let mut updates = Vec::new();
    for _ in 0..2 {
        tch::manual_seed(99);
        cfg(ErrType::Strict, 0.1, 8)
            .run(&model, &loss::mse, &x, &y)
            .unwrap();
        updates.push(
            trainable(&vs)
                .values()
                .map(|v| v.grad().copy())
                .collect::<Vec<_>>(),
        );
        masks.push(check("seeded Strict", take(), 9));
    }
    let k = masks.len();
    assert!(masks[k - 1].equal(&masks[k - 2]));
    for (a, b) in updates[0].iter().zip(&updates[1]) {
        assert!(a.equal(b));
    }
}

/// A failing call writes nothing: the running statistics, parameters and `.grad`s are bit
/// for bit as before, for an error after the feed-forward pass (a target of the wrong
/// shape), a diverging Strict relaxation, and with `relax_kind`. `alignment` writes
/// nothing either.
#[test]
fn failing_calls_and_alignment_leave_the_buffers() {
    let _turn = serial();
    let (vs, model, x, y) = setup(Arch::Both, F64, 17);
    // Every .grad defined, some non-zero.
    cfg(ErrType::Exact, 0.1, 1)
        .run(&model, &loss::mse, &x, &y)
        .unwrap();
    let before = state(&vs);
    let wrong_y = Tensor::randn([B, 4], (F64, CPU));
    for (name, c) in algorithms() {
        let err = c.run(&model, &loss::mse, &x, &wrong_y).unwrap_err();
        assert!(
            matches!(err, PcError::ShapeMismatch { .. }),
            "{name}: {err}"
        );
        assert_same_state(&format!("{name}, wrong y"), &before, &state(&vs));
    }
    let err = cfg(ErrType::Strict, 0.1, 20)
        .relax_kind(F64)
        .run(&model, &loss::mse, &x, &wrong_y)
        .unwrap_err();
    assert!(matches!(err, PcError::ShapeMismatch { .. }), "{err}");
    assert_same_state("relax_kind, wrong y", &before, &state(&vs));
    // A float32 model relaxed in float64: the buffers were promoted during the call.
    let (vs32, model32, x32, _) = setup(Arch::Both, F32, 18);
    let before32 = state(&vs32);
    let err = cfg(ErrType::Strict, 0.1, 20)
        .relax_kind(F64)
        .run(&model32, &loss::mse, &x32, &wrong_y.to_kind(F32))
        .unwrap_err();
    assert!(matches!(err, PcError::ShapeMismatch { .. }), "{err}");
    assert_same_state("float32, relax_kind, wrong y", &before32, &state(&vs32));
    let err = cfg(ErrType::Strict, 200.0, 20)
        .run(&model, &loss::mse, &x, &y)
        .unwrap_err();
    assert!(
        matches!(
            err,
            PcError::Diverged { .. } | PcError::NonFiniteBeliefs { .. }
        ),
        "{err}"
    );
    assert_same_state("diverged", &before, &state(&vs));
    for (name, c) in algorithms() {
        c.alignment(&model, &loss::mse, &x, &y).unwrap();
        assert_same_state(&format!("{name} alignment"), &before, &state(&vs));
    }
}

/// Incremental PC (a parameter step after every sweep) also updates the running
/// statistics once per call, from the feed-forward pass with the parameters the call
/// started from.
#[test]
fn incremental_pc_updates_running_statistics_once() {
    let _turn = serial();
    for arch in [Arch::Bn, Arch::BnFirst, Arch::Both] {
        let (vs, model, x, y) = setup(arch, F64, 19);
        let reference = Reference::of(arch, F64, &vs);
        let params: Vec<Tensor> = vs.trainable_variables().iter().map(|t| t.copy()).collect();
        let mut opt = nn::Sgd::default().build(&vs, 0.05).unwrap();
        let out = cfg(ErrType::Strict, 0.1, 10)
            .on_diverge(OnDiverge::Backtrack)
            .incremental(&mut opt)
            .run(&model, &loss::mse, &x, &y)
            .unwrap();
        assert_eq!(out.report.param_steps, 10);
        let moved = vs
            .trainable_variables()
            .iter()
            .zip(&params)
            .any(|(a, b)| !a.equal(b));
        assert!(moved, "{arch:?}: the parameters should have moved");
        reference.mask_from(&out);
        let _ = reference.backprop(&x, &y);
        let want = buffers(&reference.vs);
        let mut worst: f64 = 0.0;
        for (b, now) in buffers(&vs) {
            worst = worst.max(close(
                &format!("{arch:?} incremental: {b}"),
                &now,
                &want[&b],
                1e-12,
            ));
        }
        eprintln!("{arch:?}: incremental PC, running statistics vs one forward pass {worst:.1e}");
    }
}
