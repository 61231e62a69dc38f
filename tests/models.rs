//! Real models as users write them: frozen parameters, calls inside `tch::no_grad`, layers
//! that use autograd themselves, BatchNorm with `relax_kind`, several models in one
//! `VarStore`, token ids, and a custom `Layer` in the MNIST example's training loop.
//!
//! Unless said otherwise: float32, one `nn::linear(3, 2)` layer, `x` of shape `[4, 3]`,
//! `y` of shape `[4, 2]`, the MSE loss.

#[path = "../examples/common/font.rs"]
mod font;
#[path = "../examples/mnist/model.rs"]
mod model;
#[path = "../examples/mnist/plot.rs"]
mod plot;
#[path = "common/real.rs"]
mod real;
#[path = "../examples/mnist/train.rs"]
mod train;

use real::*;
use std::collections::BTreeMap;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use tch2pc::{
    loss, pc_infer, ErrType, FixedPredMode, Layer, OnDiverge, PcError, PcInfer, Sequential,
};

const CPU: Device = Device::Cpu;
const F32: Kind = Kind::Float;
const F64: Kind = Kind::Double;
const ERR_TYPES: [ErrType; 3] = [ErrType::Exact, ErrType::FixedPred, ErrType::Strict];
/// float32 tolerance for updates computed in two ways (see `real::diff`).
const TOL32: f64 = 1e-6;

fn cfg<'a>(err_type: ErrType) -> PcInfer<'a> {
    PcInfer::new(err_type).eta(0.1).n(20)
}

/// The one-layer model: its store, the model, its weight and bias, and a batch.
struct Linear {
    vs: nn::VarStore,
    model: Sequential,
    w: Tensor,
    b: Tensor,
    x: Tensor,
    y: Tensor,
}

fn linear(seed: i64) -> Linear {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(CPU);
    let lin = nn::linear(vs.root() / "lin", 3, 2, Default::default());
    let w = lin.ws.shallow_clone();
    let b = lin.bs.as_ref().unwrap().shallow_clone();
    let model = Sequential::new(&vs).add(lin);
    let x = Tensor::randn([4, 3], (F32, CPU));
    let y = Tensor::randn([4, 2], (F32, CPU));
    Linear {
        vs,
        model,
        w,
        b,
        x,
        y,
    }
}

/// Backprop's gradients of the MSE loss for the variables of `vs` that require grad.
fn backprop(
    vs: &nn::VarStore,
    model: &Sequential,
    x: &Tensor,
    y: &Tensor,
) -> BTreeMap<String, Tensor> {
    let l = loss::mse(&model.forward(x), y);
    gradients(&l, &trainable(vs))
}

/// Gives `t` a `.grad` (random values), as an earlier backward pass would.
fn give_grad(t: &Tensor) -> Tensor {
    let r = Tensor::randn(t.size(), (t.kind(), CPU));
    (t * &r).sum(t.kind()).backward();
    assert!(t.grad().equal(&r));
    r
}

/// Whether autograd records operations right now.
fn grad_mode() -> bool {
    let probe = Tensor::ones([1], (F32, CPU)).set_requires_grad(true);
    (&probe * 2.0).requires_grad()
}

// ---------------------------------------------------------------------------------------
// a. Frozen variables
// ---------------------------------------------------------------------------------------

/// A frozen bias (`set_requires_grad(false)`): every algorithm and `alignment` run; the
/// weight gets backprop's gradient (a single layer's update is backprop's in all three);
/// the bias's `.grad` is untouched: undefined stays undefined, a defined one keeps its
/// value bit for bit.
#[test]
fn a_frozen_bias_keeps_its_grad() {
    let _turn = serial();
    let mut worst: f64 = 0.0;
    for defined in [false, true] {
        for et in ERR_TYPES {
            let m = linear(21);
            let kept = if defined { Some(give_grad(&m.b)) } else { None };
            let _ = m.b.set_requires_grad(false);
            let want = backprop(&m.vs, &m.model, &m.x, &m.y);
            assert_eq!(want.keys().collect::<Vec<_>>(), ["lin.weight"]);
            cfg(et).run(&m.model, &loss::mse, &m.x, &m.y).unwrap();
            worst = worst.max(grads_close(&format!("{et}"), &m.vs, &want, TOL32));
            let a = cfg(et).alignment(&m.model, &loss::mse, &m.x, &m.y).unwrap();
            assert_eq!(a.layers.len(), 1);
            assert!(a.layers[0].rel_error < 1e-5, "{et}: {:?}", a.layers[0]);
            match &kept {
                None => assert!(!m.b.grad().defined(), "{et}: bias .grad created"),
                Some(g) => assert!(m.b.grad().equal(g), "{et}: bias .grad changed"),
            }
            assert!(!m.b.requires_grad(), "{et}: the bias was unfrozen");
        }
    }
    eprintln!("frozen bias: weight .grad vs backprop {worst:.1e}");
}

/// `vs.freeze()` then unfreezing one variable: only that one is written (weight, or bias);
/// everything frozen: the call runs and writes nothing.
#[test]
fn freeze_then_unfreeze_one_variable() {
    let _turn = serial();
    let mut worst: f64 = 0.0;
    for et in ERR_TYPES {
        for unfreeze in ["lin.weight", "lin.bias"] {
            let mut m = linear(22);
            m.vs.freeze();
            let (on, off) = if unfreeze == "lin.weight" {
                (&m.w, &m.b)
            } else {
                (&m.b, &m.w)
            };
            let _ = on.set_requires_grad(true);
            let want = backprop(&m.vs, &m.model, &m.x, &m.y);
            assert_eq!(want.keys().collect::<Vec<_>>(), [unfreeze]);
            cfg(et).run(&m.model, &loss::mse, &m.x, &m.y).unwrap();
            worst = worst.max(grads_close(&format!("{et}"), &m.vs, &want, TOL32));
            assert!(!off.grad().defined(), "{et}: frozen variable got a .grad");
            let a = cfg(et).alignment(&m.model, &loss::mse, &m.x, &m.y).unwrap();
            assert!(a.layers[0].rel_error < 1e-5);
        }
        let mut m = linear(23);
        m.vs.freeze();
        let out = cfg(et).run(&m.model, &loss::mse, &m.x, &m.y).unwrap();
        assert!(finite(&out.loss) && finite(&out.v[1]));
        assert!(!m.w.grad().defined() && !m.b.grad().defined());
        let a = cfg(et).alignment(&m.model, &loss::mse, &m.x, &m.y).unwrap();
        assert!(a.layers.is_empty());
        assert!(!m.w.grad().defined() && !m.b.grad().defined());
    }
    eprintln!("freeze/unfreeze: unfrozen .grad vs backprop {worst:.1e}");
}

/// Fine-tuning a head: a frozen hidden layer (its variables frozen in the store) under a
/// trainable output layer. The hidden layer's `.grad`s stay undefined; the head's update
/// is backprop's for Exact and FixedPred (the output layer's error is `∂ℓ/∂v̂_L`) and
/// finite for Strict.
#[test]
fn a_frozen_hidden_layer_under_a_trained_head() {
    let _turn = serial();
    for et in ERR_TYPES {
        tch::manual_seed(24);
        let mut vs = nn::VarStore::new(CPU);
        let model = Sequential::new(&vs)
            .add(
                nn::seq()
                    .add(nn::linear(vs.root() / "body", 3, 5, Default::default()))
                    .add_fn(|x| x.tanh()),
            )
            .add(nn::linear(vs.root() / "head", 5, 2, Default::default()));
        vs.set_kind(F64);
        for (name, v) in vs.variables() {
            if name.starts_with("body.") {
                let _ = v.set_requires_grad(false);
            }
        }
        let x = Tensor::randn([4, 3], (F64, CPU));
        let y = Tensor::randn([4, 2], (F64, CPU));
        let want = backprop(&vs, &model, &x, &y);
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            ["head.bias", "head.weight"]
        );
        cfg(et).run(&model, &loss::mse, &x, &y).unwrap();
        let vars = vs.variables();
        for name in ["body.weight", "body.bias"] {
            assert!(!vars[name].grad().defined(), "{et}: {name}");
        }
        if et == ErrType::Strict {
            for name in want.keys() {
                assert!(finite(&vars[name].grad()));
            }
        } else {
            grads_close(&format!("{et} head"), &vs, &want, 1e-12);
        }
    }
}

// ---------------------------------------------------------------------------------------
// b. Grad mode
// ---------------------------------------------------------------------------------------

/// Inside `tch::no_grad` every algorithm (and `alignment`) runs and gives the values of a
/// call in grad mode, bit for bit; the caller's grad mode is restored afterwards.
#[test]
fn calls_inside_no_grad_equal_calls_in_grad_mode() {
    let _turn = serial();
    for et in ERR_TYPES {
        let m = linear(25);
        let a = cfg(et).run(&m.model, &loss::mse, &m.x, &m.y).unwrap();
        let ga = (m.w.grad().copy(), m.b.grad().copy());
        let (b, still_off) = tch::no_grad(|| {
            let b = cfg(et).run(&m.model, &loss::mse, &m.x, &m.y).unwrap();
            (b, !grad_mode())
        });
        assert!(
            still_off,
            "{et}: the caller's no_grad mode was not restored"
        );
        assert!(grad_mode());
        assert!(
            m.w.grad().equal(&ga.0) && m.b.grad().equal(&ga.1),
            "{et}: .grad"
        );
        assert!(a.loss.equal(&b.loss) && a.dldy.equal(&b.dldy), "{et}: loss");
        for i in 0..a.v.len() {
            assert!(a.vhat[i].equal(&b.vhat[i]), "{et}: vhat[{i}]");
            assert!(a.v[i].equal(&b.v[i]), "{et}: v[{i}]");
            assert!(a.epsilon[i].equal(&b.epsilon[i]), "{et}: epsilon[{i}]");
        }
        assert!(!a.loss.requires_grad() && !b.v[1].requires_grad());
        let al = cfg(et).alignment(&m.model, &loss::mse, &m.x, &m.y).unwrap();
        let bl = tch::no_grad(|| cfg(et).alignment(&m.model, &loss::mse, &m.x, &m.y)).unwrap();
        assert_eq!(al, bl);
    }
}

/// A call that fails inside `tch::no_grad` leaves every `.grad` as it was: a defined weight
/// `.grad` bit for bit, an undefined bias `.grad` undefined.
#[test]
fn a_failing_call_inside_no_grad_leaves_every_grad() {
    let _turn = serial();
    let m = linear(26);
    let gw = give_grad(&m.w);
    assert!(!m.b.grad().defined());
    let before = state(&m.vs);
    let wrong_y = Tensor::randn([4, 3], (F32, CPU));
    let nan_y = Tensor::full([4, 2], f64::NAN, (F32, CPU));
    for et in ERR_TYPES {
        for (what, y) in [("wrong shape", &wrong_y), ("NaN", &nan_y)] {
            let err = tch::no_grad(|| cfg(et).run(&m.model, &loss::mse, &m.x, y)).unwrap_err();
            match what {
                "NaN" => assert!(matches!(err, PcError::NonFiniteLoss(_)), "{et}: {err}"),
                _ => assert!(matches!(err, PcError::ShapeMismatch { .. }), "{et}: {err}"),
            }
            assert_same_state(&format!("{et}, y {what}"), &before, &state(&m.vs));
            assert!(m.w.grad().equal(&gw) && !m.b.grad().defined());
        }
    }
}

// ---------------------------------------------------------------------------------------
// c. A layer that uses autograd itself
// ---------------------------------------------------------------------------------------

/// `x + ∂/∂x Σ x³ = x + 3x²`, the derivative taken by autograd inside the forward pass with
/// `create_graph = true` (so that the layer is differentiable), as a user might write a
/// gradient-based layer (an energy-based or Hamiltonian layer, say).
struct SelfGrad;

impl Layer for SelfGrad {
    fn layer_forward(&self, xs: &Tensor, _train: bool) -> Tensor {
        let xr = if xs.requires_grad() {
            xs.shallow_clone()
        } else {
            xs.detach().set_requires_grad(true)
        };
        let s = xr.pow_tensor_scalar(3).sum(xr.kind());
        let g = Tensor::run_backward(&[&s], &[&xr], true, true).remove(0);
        xs + g
    }
}

/// linear(3, 4) → SelfGrad → linear(4, 2), float64, or SelfGrad first (its input is the
/// clamped `x`, which does not require grad).
fn self_grad_model(first: bool, seed: i64) -> (nn::VarStore, Sequential, Tensor, Tensor) {
    tch::manual_seed(seed);
    let mut vs = nn::VarStore::new(CPU);
    let model = if first {
        Sequential::new(&vs).add_layer(SelfGrad).add(nn::linear(
            vs.root() / "out",
            3,
            2,
            Default::default(),
        ))
    } else {
        Sequential::new(&vs)
            .add(nn::linear(vs.root() / "in", 3, 4, Default::default()))
            .add_layer(SelfGrad)
            .add(nn::linear(vs.root() / "out", 4, 2, Default::default()))
    };
    vs.set_kind(F64);
    let x = Tensor::randn([4, 3], (F64, CPU)) * 0.5;
    let y = Tensor::randn([4, 2], (F64, CPU));
    (vs, model, x, y)
}

/// Every path runs a layer that calls `run_backward(.., create_graph = true)` in its
/// forward pass (also inside `tch::no_grad`: the library calls layers in grad mode) and
/// gives finite values; Exact and FixedPred with η = 1, n ≥ L are backprop through it.
#[test]
fn a_layer_that_uses_autograd_itself() {
    let _turn = serial();
    for first in [false, true] {
        let (vs, model, x, y) = self_grad_model(first, 27);
        let l = model.len();
        // The layer computes x + 3x².
        let h = model.as_graph().f_forward_all(&x).unwrap();
        let k = if first { 1 } else { 2 };
        let want = &h[k - 1] + h[k - 1].square() * 3.0;
        assert!(max_diff(&h[k], &want) < 1e-12);
        let bp = backprop(&vs, &model, &x, &y);
        let vinit: Vec<Tensor> = h.iter().map(|t| t.detach() + 0.05).collect();
        // (name, configuration, whether its updates are backprop's)
        let configs = || -> Vec<(&str, PcInfer<'_>, bool)> {
            vec![
                ("Exact", PcInfer::new(ErrType::Exact), true),
                (
                    "FixedPred eta 1 n 1",
                    PcInfer::new(ErrType::FixedPred).eta(1.0).n(1),
                    false,
                ),
                (
                    "FixedPred eta 1 n L",
                    PcInfer::new(ErrType::FixedPred).eta(1.0).n(l),
                    true,
                ),
                (
                    "FixedPred literal eta 1 n L",
                    PcInfer::new(ErrType::FixedPred)
                        .eta(1.0)
                        .n(l)
                        .fixed_pred(FixedPredMode::Literal),
                    true,
                ),
                ("FixedPred closed form", cfg(ErrType::FixedPred), false),
                (
                    "FixedPred graded",
                    cfg(ErrType::FixedPred).fixed_pred(FixedPredMode::Graded),
                    false,
                ),
                (
                    "FixedPred literal",
                    cfg(ErrType::FixedPred).fixed_pred(FixedPredMode::Literal),
                    false,
                ),
                (
                    "Strict",
                    cfg(ErrType::Strict).on_diverge(OnDiverge::Backtrack),
                    false,
                ),
                (
                    "Strict vinit",
                    cfg(ErrType::Strict)
                        .vinit(&vinit)
                        .on_diverge(OnDiverge::Backtrack),
                    false,
                ),
            ]
        };
        let mut worst: f64 = 0.0;
        for no_grad in [false, true] {
            for k in 0..configs().len() {
                let (name, c, is_bp) = configs().swap_remove(k);
                let what = format!("first {first}, {name}, no_grad {no_grad}");
                let out = if no_grad {
                    tch::no_grad(|| c.run(&model, &loss::mse, &x, &y))
                } else {
                    c.run(&model, &loss::mse, &x, &y)
                }
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                for i in 0..=l {
                    assert!(
                        finite(&out.v[i]) && finite(&out.epsilon[i]),
                        "{what}: node {i}"
                    );
                }
                for (name, v) in trainable(&vs) {
                    assert!(finite(&v.grad()), "{what}: .grad of {name}");
                }
                if is_bp {
                    worst = worst.max(grads_close(&what, &vs, &bp, 1e-10));
                }
                let a = configs().swap_remove(k).1;
                let a = if no_grad {
                    tch::no_grad(|| a.alignment(&model, &loss::mse, &x, &y))
                } else {
                    a.alignment(&model, &loss::mse, &x, &y)
                }
                .unwrap_or_else(|e| panic!("{what} alignment: {e}"));
                if is_bp {
                    for la in &a.layers {
                        assert!(la.rel_error < 1e-10, "{what}: {la:?}");
                    }
                }
            }
        }
        eprintln!(
            "self-grad layer (first {first}): Exact and FixedPred (eta 1, n L) vs backprop {worst:.1e}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// d, e. BatchNorm's running statistics: relax_kind, Strict's sweeps
// ---------------------------------------------------------------------------------------

/// BatchNorm1d(3) in training mode before `linear(3, 2)` (or after a `linear(3, 3)` when
/// `hidden`, so that Strict evaluates it in every sweep), float32.
fn bn_model(hidden: bool, seed: i64) -> (nn::VarStore, Sequential, Tensor, Tensor) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(CPU);
    let r = vs.root();
    let model = if hidden {
        Sequential::new(&vs)
            .add(nn::linear(&r / "in", 3, 3, Default::default()))
            .add_t(nn::batch_norm1d(&r / "bn", 3, Default::default()))
            .add(nn::linear(&r / "out", 3, 2, Default::default()))
    } else {
        Sequential::new(&vs)
            .add_t(nn::batch_norm1d(&r / "bn", 3, Default::default()))
            .add(nn::linear(&r / "out", 3, 2, Default::default()))
    };
    let x = Tensor::randn([4, 3], (F32, CPU)) * 2.0 + 1.0;
    let y = Tensor::randn([4, 2], (F32, CPU));
    (vs, model, x, y)
}

/// After `calls` calls on the same batch whose BatchNorm input is `h` (momentum 0.1, from
/// mean 0 and variance 1): mean `(1 - 0.9^k)·mean(h)`, variance
/// `0.9^k + (1 - 0.9^k)·var(h)` (unbiased), computed in float64.
fn expected_running(h: &Tensor, calls: i32) -> (Tensor, Tensor) {
    let h = h.to_kind(F64);
    let keep = 0.9f64.powi(calls);
    let mean = h.mean_dim(0, false, F64) * (1.0 - keep);
    let var = h.var_dim([0i64].as_slice(), true, false) * (1.0 - keep) + keep;
    (mean, var)
}

fn running(vs: &nn::VarStore) -> (Tensor, Tensor) {
    let v = vs.variables();
    (v["bn.running_mean"].copy(), v["bn.running_var"].copy())
}

/// `PcInfer::new(Exact).relax_kind(Kind::Double)` updates the running statistics as one
/// float32 forward pass does: mean `0.1 × batch mean`, variance `0.9 + 0.1 × batch
/// variance`, stored in float32, the same as without `relax_kind`; also for FixedPred and
/// Strict.
#[test]
fn batchnorm_statistics_under_relax_kind() {
    let _turn = serial();
    let mut worst: f64 = 0.0;
    for et in ERR_TYPES {
        let mut got = Vec::new();
        for relax in [false, true] {
            let (vs, model, x, y) = bn_model(false, 28);
            let c = PcInfer::new(et).on_diverge(OnDiverge::Backtrack);
            let c = if relax { c.relax_kind(F64) } else { c };
            c.run(&model, &loss::mse, &x, &y).unwrap();
            let (mean, var) = running(&vs);
            assert_eq!((mean.kind(), var.kind()), (F32, F32));
            for (name, v) in vs.variables() {
                assert_eq!(v.kind(), F32, "{name}");
                if v.requires_grad() {
                    assert_eq!(v.grad().kind(), F32, "{name} .grad");
                }
            }
            let (want_mean, want_var) = expected_running(&x, 1);
            let what = format!("{et} relax {relax}");
            worst = worst.max(close(&format!("{what}: mean"), &mean, &want_mean, TOL32));
            worst = worst.max(close(&format!("{what}: var"), &var, &want_var, TOL32));
            got.push((mean, var));
        }
        close(
            &format!("{et}: mean with and without relax_kind"),
            &got[0].0,
            &got[1].0,
            TOL32,
        );
        close(
            &format!("{et}: var with and without relax_kind"),
            &got[0].1,
            &got[1].1,
            TOL32,
        );
    }
    eprintln!("BatchNorm + relax_kind: running statistics vs 0.1 x batch statistics {worst:.1e}");
}

/// Strict with n = 20 updates the running statistics once per call (not once per sweep),
/// for BatchNorm fed by the input and for a hidden BatchNorm evaluated in every sweep;
/// `k` calls update them `k` times.
#[test]
fn strict_updates_running_statistics_once_per_call() {
    let _turn = serial();
    let mut worst: f64 = 0.0;
    for hidden in [false, true] {
        let (vs, model, x, y) = bn_model(hidden, 29);
        for calls in 1..=3 {
            let out = PcInfer::new(ErrType::Strict)
                .eta(0.1)
                .n(20)
                .on_diverge(OnDiverge::Backtrack)
                .run(&model, &loss::mse, &x, &y)
                .unwrap();
            assert_eq!(out.report.iterations, 20);
            // The BatchNorm node's input in the feed-forward pass.
            let h = if hidden { &out.vhat[1] } else { &x };
            let (mean, var) = running(&vs);
            let (want_mean, want_var) = expected_running(h, calls);
            let what = format!("hidden {hidden}, call {calls}");
            worst = worst.max(close(&format!("{what}: mean"), &mean, &want_mean, TOL32));
            worst = worst.max(close(&format!("{what}: var"), &var, &want_var, TOL32));
            // 21 updates (one per evaluation) would be far off.
            let (wrong, _) = expected_running(h, calls + 20);
            assert!(max_diff(&mean, &wrong) > 1e-2, "{what}");
        }
    }
    eprintln!("Strict n = 20: running statistics vs one update per call {worst:.1e}");
}

// ---------------------------------------------------------------------------------------
// f. Several models in one VarStore
// ---------------------------------------------------------------------------------------

/// Two linear models `a` and `b` in one store (paths "a" and "b") and two variables that
/// neither uses: "u1" with a `.grad`, "u2" without.
struct Shared {
    vs: nn::VarStore,
    a: Sequential,
    b: Sequential,
    x: Tensor,
    y: Tensor,
}

fn shared(seed: i64) -> Shared {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(CPU);
    let r = vs.root();
    let a = Sequential::new(&vs).add(nn::linear(&r / "a", 3, 2, Default::default()));
    let b = Sequential::new(&vs).add(nn::linear(&r / "b", 3, 2, Default::default()));
    let u1 = r.randn("u1", &[5], 0.0, 1.0);
    let _u2 = r.randn("u2", &[5], 0.0, 1.0);
    let _ = give_grad(&u1);
    let x = Tensor::randn([4, 3], (F32, CPU));
    let y = Tensor::randn([4, 2], (F32, CPU));
    Shared { vs, a, b, x, y }
}

/// The variables of `vs` whose names start with `prefix`.
fn under(s: &State, prefix: &str) -> State {
    s.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, (v, g))| (k.clone(), (v.copy(), g.as_ref().map(|g| g.copy()))))
        .collect()
}

/// `pc_infer(b)` then `pc_infer(a)`: `a` gets backprop's update, `b`'s `.grad`s and the
/// unused variables' `.grad`s (defined or undefined) are bit for bit as before; also with
/// `relax_kind` and `alignment`.
#[test]
fn a_call_on_one_model_leaves_the_others_grads() {
    let _turn = serial();
    let mut worst: f64 = 0.0;
    for et in ERR_TYPES {
        let s = shared(30);
        pc_infer(&s.b, &loss::mse, &s.x, &s.y, ErrType::Exact, 0.1, 1, None).unwrap();
        let before = state(&s.vs);
        assert!(before["b.weight"].1.is_some() && before["u1"].1.is_some());
        assert!(before["a.weight"].1.is_none() && before["u2"].1.is_none());
        let want_a: BTreeMap<String, Tensor> = backprop(&s.vs, &s.a, &s.x, &s.y)
            .into_iter()
            .filter(|(k, _)| k.starts_with("a."))
            .collect();
        for relax in [false, true] {
            let c = cfg(et);
            let c = if relax { c.relax_kind(F64) } else { c };
            c.run(&s.a, &loss::mse, &s.x, &s.y).unwrap();
            worst = worst.max(grads_close(&format!("{et} a"), &s.vs, &want_a, TOL32));
            let after = state(&s.vs);
            for prefix in ["b.", "u"] {
                assert_same_state(
                    &format!("{et} relax {relax}: {prefix}"),
                    &under(&before, prefix),
                    &under(&after, prefix),
                );
            }
            let now = state(&s.vs);
            cfg(et).alignment(&s.a, &loss::mse, &s.x, &s.y).unwrap();
            assert_same_state(&format!("{et}: alignment"), &now, &state(&s.vs));
        }
    }
    eprintln!("shared store: a's .grad vs backprop {worst:.1e}");
}

/// An Adam step after `pc_infer(a)` moves nothing of `b`: `b` without a `.grad`, and `b`
/// with zeroed `.grad`s, stay bit for bit; `a` moves.
#[test]
fn adam_after_a_call_on_one_model_moves_only_that_model() {
    let _turn = serial();
    let s = shared(31);
    let mut opt = nn::Adam::default().build(&s.vs, 1e-2).unwrap();
    let vars = s.vs.variables();
    let value = |name: &str| vars[name].copy();
    for round in 0..2 {
        if round == 1 {
            // b has .grads now, zeroed, as after opt.zero_grad() for b only.
            pc_infer(&s.b, &loss::mse, &s.x, &s.y, ErrType::Exact, 0.1, 1, None).unwrap();
            for name in ["b.weight", "b.bias"] {
                let mut v = vars[name].shallow_clone();
                v.zero_grad();
                assert!(v.grad().defined());
            }
        }
        let b_before = (value("b.weight"), value("b.bias"));
        let a_before = value("a.weight");
        pc_infer(&s.a, &loss::mse, &s.x, &s.y, ErrType::Strict, 0.1, 20, None).unwrap();
        opt.step();
        assert!(value("b.weight").equal(&b_before.0), "round {round}");
        assert!(value("b.bias").equal(&b_before.1), "round {round}");
        assert!(
            max_diff(&value("a.weight"), &a_before) > 1e-4,
            "round {round}"
        );
    }
}

/// A store that also holds variables of another dtype, which the model does not use: the
/// call only checks (and writes) what the model uses.
#[test]
fn unused_variables_of_another_dtype_do_not_matter() {
    let _turn = serial();
    let s = shared(32);
    (s.vs.root() / "b").set_kind(F64);
    assert_eq!(s.vs.variables()["b.weight"].kind(), F64);
    let want_a: BTreeMap<String, Tensor> = backprop(&s.vs, &s.a, &s.x, &s.y)
        .into_iter()
        .filter(|(k, _)| k.starts_with("a."))
        .collect();
    let before = under(&state(&s.vs), "b.");
    for et in ERR_TYPES {
        for relax in [false, true] {
            let c = cfg(et);
            let c = if relax { c.relax_kind(F64) } else { c };
            c.run(&s.a, &loss::mse, &s.x, &s.y)
                .unwrap_or_else(|e| panic!("{et} relax {relax}: {e}"));
            grads_close(&format!("{et} a"), &s.vs, &want_a, TOL32);
            cfg(et).alignment(&s.a, &loss::mse, &s.x, &s.y).unwrap();
            assert_same_state(&format!("{et}"), &before, &under(&state(&s.vs), "b."));
        }
    }
    // x fits none of the variables: still an error.
    let err = cfg(ErrType::Exact)
        .run(&s.a, &loss::mse, &s.x.to_kind(Kind::Half), &s.y)
        .unwrap_err();
    assert!(matches!(err, PcError::DtypeMismatch { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------
// g. Integer inputs (token ids)
// ---------------------------------------------------------------------------------------

/// `nn::embedding(10, 4)` → `linear(4, 2)` on token ids `x` (Int64, shape [6]), float64.
fn embedding_model(kind: Kind, seed: i64) -> (nn::VarStore, Sequential, Tensor, Tensor) {
    tch::manual_seed(seed);
    let mut vs = nn::VarStore::new(CPU);
    let model = Sequential::new(&vs)
        .add(nn::embedding(vs.root() / "emb", 10, 4, Default::default()))
        .add(nn::linear(vs.root() / "out", 4, 2, Default::default()));
    vs.set_kind(kind);
    let x = Tensor::randint(10, [6], (Kind::Int64, CPU));
    let y = Tensor::randn([6, 2], (kind, CPU));
    (vs, model, x, y)
}

/// An embedding with `sparse: true` gives every algorithm, and incremental PC, the updates
/// of the same model with a dense embedding (written dense into `.grad`); Exact's equal
/// backprop's.
#[test]
fn a_sparse_embedding_is_updated_like_a_dense_one() {
    let _turn = serial();
    let build = |sparse: bool| {
        tch::manual_seed(41);
        let mut vs = nn::VarStore::new(CPU);
        let cfg = nn::EmbeddingConfig {
            sparse,
            ..Default::default()
        };
        let model = Sequential::new(&vs)
            .add(nn::embedding(vs.root() / "emb", 10, 4, cfg))
            .add(nn::linear(vs.root() / "out", 4, 2, Default::default()));
        vs.set_kind(F64);
        (vs, model)
    };
    let (dense_vs, dense) = build(false);
    let (sparse_vs, sparse) = build(true);
    let x = Tensor::randint(10, [6], (Kind::Int64, CPU));
    let y = Tensor::randn([6, 2], (F64, CPU));
    let bp = backprop(&dense_vs, &dense, &x, &y);
    for err_type in ERR_TYPES {
        for model in [&dense, &sparse] {
            pc_infer(model, &loss::mse, &x, &y, err_type, 0.1, 5, None)
                .unwrap_or_else(|e| panic!("{err_type}: {e}"));
        }
        for ((n, d), (_, s)) in trainable(&dense_vs)
            .iter()
            .zip(trainable(&sparse_vs).iter())
        {
            let (gd, gs) = (d.grad(), s.grad());
            assert!(!gs.is_sparse(), "{err_type}: {n} written dense");
            close(&format!("{err_type}: {n}"), &gs, &gd, 1e-12);
        }
        if err_type == ErrType::Exact {
            grads_close("Exact, sparse embedding", &sparse_vs, &bp, 1e-10);
        }
    }
    // Incremental PC writes the updates and steps the optimizer after every sweep.
    for (vs, model) in [(&dense_vs, &dense), (&sparse_vs, &sparse)] {
        let mut opt = nn::Sgd::default().build(vs, 0.05).unwrap();
        PcInfer::new(ErrType::Strict)
            .eta(0.1)
            .n(3)
            .incremental(&mut opt)
            .run(model, &loss::mse, &x, &y)
            .unwrap_or_else(|e| panic!("incremental: {e}"));
    }
    for ((n, d), (_, s)) in trainable(&dense_vs)
        .iter()
        .zip(trainable(&sparse_vs).iter())
    {
        close(&format!("incremental: {n}"), s, d, 1e-12);
        close(
            &format!("incremental: {n}.grad"),
            &s.grad(),
            &d.grad(),
            1e-12,
        );
    }
}

/// Token ids into an embedding: Exact is backprop, FixedPred (η = 1, n ≥ L) too, every
/// algorithm runs (also with `relax_kind` on a float32 model and with `vinit`); the input
/// comes back as the ids, its error as floating zeros.
#[test]
fn token_ids_into_an_embedding() {
    let _turn = serial();
    let (vs, model, x, y) = embedding_model(F64, 33);
    let bp = backprop(&vs, &model, &x, &y);
    assert_eq!(bp.len(), 3);
    let vhat = model.as_graph().f_forward_all(&x).unwrap();
    let vinit: Vec<Tensor> = vhat.iter().map(|t| t.shallow_clone()).collect();
    let mut worst: f64 = 0.0;
    let configs = || -> Vec<(&str, PcInfer<'_>, bool)> {
        vec![
            ("Exact", PcInfer::new(ErrType::Exact), true),
            (
                "FixedPred eta 1 n 2",
                PcInfer::new(ErrType::FixedPred).eta(1.0).n(2),
                true,
            ),
            ("FixedPred", cfg(ErrType::FixedPred), false),
            (
                "FixedPred literal",
                cfg(ErrType::FixedPred).fixed_pred(FixedPredMode::Literal),
                false,
            ),
            ("Strict", cfg(ErrType::Strict), false),
            ("Strict vinit", cfg(ErrType::Strict).vinit(&vinit), false),
        ]
    };
    for (name, c, is_bp) in configs() {
        let out = c
            .run(&model, &loss::mse, &x, &y)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out.vhat[0].equal(&x) && out.v[0].equal(&x), "{name}: input");
        assert_eq!(out.epsilon[0].kind(), F64);
        assert_eq!(out.epsilon[0].size(), [6]);
        assert_eq!(max_abs(&out.epsilon[0]), 0.0);
        assert!(finite(&out.v[1]) && finite(&out.v[2]));
        assert_eq!(out.vhat[1].kind(), F64);
        if is_bp {
            worst = worst.max(grads_close(name, &vs, &bp, 1e-10));
        } else {
            for (n, v) in trainable(&vs) {
                assert!(finite(&v.grad()), "{name}: {n}");
            }
        }
    }
    let a = PcInfer::new(ErrType::Exact)
        .alignment(&model, &loss::mse, &x, &y)
        .unwrap();
    assert_eq!(a.layers.len(), 2);
    assert!(a.layers.iter().all(|l| l.rel_error == 0.0));
    eprintln!("token ids: Exact and FixedPred (eta 1, n L) vs backprop {worst:.1e}");
    // float32 model, float64 relaxation.
    let (vs, model, x, y) = embedding_model(F32, 34);
    let bp = backprop(&vs, &model, &x, &y);
    for et in ERR_TYPES {
        let out = cfg(et)
            .relax_kind(F64)
            .run(&model, &loss::mse, &x, &y)
            .unwrap_or_else(|e| panic!("{et} relax_kind: {e}"));
        assert_eq!(out.v[1].kind(), F32);
        assert!(out.v[0].equal(&x));
        if et == ErrType::Exact {
            grads_close("Exact relax_kind", &vs, &bp, TOL32);
        }
    }
}

/// Integer inputs into a layer that cannot take them, or that does not map them to
/// floating point: `PcError::Forward` naming node 1, for every algorithm and `alignment`.
#[test]
fn integer_inputs_that_no_layer_maps_to_floats() {
    let _turn = serial();
    let m = linear(35);
    let ids = Tensor::randint(3, [4, 3], (Kind::Int64, CPU));
    let vs = nn::VarStore::new(CPU);
    let doubling = Sequential::new(&vs).add_fn(|x| x * 2).add(nn::linear(
        vs.root() / "out",
        3,
        2,
        Default::default(),
    ));
    for et in ERR_TYPES {
        let before = state(&m.vs);
        for (model, what) in [(&m.model, "linear"), (&doubling, "not a float")] {
            let errs = [
                cfg(et).run(model, &loss::mse, &ids, &m.y).unwrap_err(),
                cfg(et)
                    .alignment(model, &loss::mse, &ids, &m.y)
                    .unwrap_err(),
            ];
            for err in errs {
                match &err {
                    PcError::Forward { layer: 1, .. } => {}
                    _ => panic!("{et} {what}: {err:?}"),
                }
                if what == "not a float" {
                    assert!(err.to_string().contains("floating point"), "{err}");
                }
            }
        }
        assert_same_state(&format!("{et}"), &before, &state(&m.vs));
    }
}

// ---------------------------------------------------------------------------------------
// A custom Layer in the MNIST example
// ---------------------------------------------------------------------------------------

/// The example's network with layer 4 a `GainTanh` (a struct implementing `Layer`, with a
/// gain that is a bare variable of the store): every algorithm writes an update for each
/// of its variables, Exact's is backprop's, and an Adam step moves the gains.
#[test]
fn custom_layer_variables_get_updates() {
    let _turn = serial();
    tch::manual_seed(36);
    let vs = nn::VarStore::new(CPU);
    let net = model::net_with_custom_layer(&vs);
    assert_eq!(net.len(), 5);
    assert_eq!(model::parameter_count(&vs), model::PARAMETERS_CUSTOM);
    let x = Tensor::rand([16, 1, 28, 28], (F32, CPU));
    let y = Tensor::randint(10, [16], (Kind::Int64, CPU));
    let l = loss::cross_entropy(&net.forward(&x), &y);
    let bp = gradients(&l, &trainable(&vs));
    let mut worst: f64 = 0.0;
    for et in ERR_TYPES {
        cfg(et)
            .on_diverge(OnDiverge::Backtrack)
            .run(&net, &loss::cross_entropy, &x, &y)
            .unwrap();
        for name in ["3.gain", "3.0.weight", "3.0.bias"] {
            let g = var(&vs, name).grad();
            assert!(g.defined() && finite(&g), "{et}: {name}");
            assert!(max_abs(&g) > 0.0, "{et}: {name} got a zero update");
        }
        if et == ErrType::Exact {
            worst = grads_close("Exact", &vs, &bp, 1e-5);
        }
    }
    let gain = var(&vs, "3.gain");
    let before = gain.copy();
    let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
    opt.step();
    assert!(max_diff(&gain, &before) > 1e-3);
    eprintln!("custom layer: Exact vs backprop {worst:.1e}");
}

/// One epoch of the MNIST example's loop (`train::train`) with the custom layer, on the
/// bundled digits: the loss falls and the test accuracy passes the bar that
/// `tests/mnist.rs` sets for the seed's network.
#[test]
fn mnist_example_trains_with_a_custom_layer() {
    let _turn = serial();
    let cfg = train::Config {
        epochs: 1,
        custom_layer: true,
        ..train::Config::default()
    };
    let h = train::train(&cfg).unwrap();
    assert_eq!(h.steps.len(), 27);
    let mean = |xs: &[train::StepRecord]| xs.iter().map(|s| s.loss).sum::<f64>() / xs.len() as f64;
    let (first, last) = (mean(&h.steps[..5]), mean(&h.steps[22..]));
    assert!(
        first > 2.0,
        "an untrained network starts near ln 10: {first}"
    );
    assert!(last < 0.6 * first, "loss {first:.3} -> {last:.3}");
    let acc = h.final_accuracy().unwrap();
    assert!(acc > 0.75, "accuracy after one epoch {acc}");
    eprintln!("MNIST, custom layer 4, one epoch: loss {first:.3} -> {last:.3}, accuracy {acc:.4}");
}
