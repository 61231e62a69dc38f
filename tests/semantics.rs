//! The algorithms against backprop and against their closed forms, in float64.

mod common;

use common::*;
use tch::{Device, Kind, Tensor};
use tch2pc::{pc_infer, ErrType, FixedPredMode, PcInfer};

const F64: Kind = Kind::Double;
const CPU: Device = Device::Cpu;

#[test]
fn exact_equals_backprop_mlp_and_cnn() {
    let _rng = rng_lock();
    for model in ["mlp", "cnn", "pfree"] {
        let (vs, seq, x, y) = setup(model, F64, CPU, 7);
        let loss = loss_for(model);
        let bp = backprop(&vs, &seq, &loss, &x, &y);
        let out = pc_infer(&seq, &loss, &x, &y, ErrType::Exact, 0.1, 20, None).unwrap();
        assert_grads_match(&vs, &bp, 1e-10, model);
        // ε_L is dℓ/dŷ, v = v̂ - ε.
        assert!(out.epsilon[seq.len()].equal(&out.dldy));
        for l in 1..=seq.len() {
            assert!(rel_err(&out.v[l], &(&out.vhat[l] - &out.epsilon[l])) < 1e-15);
        }
    }
}

#[test]
fn gradients_are_overwritten_not_accumulated() {
    let _rng = rng_lock();
    let (vs, seq, x, y) = setup("mlp", F64, CPU, 3);
    let bp = backprop(&vs, &seq, &tch2pc::loss::mse, &x, &y);
    for _ in 0..3 {
        pc_infer(
            &seq,
            &tch2pc::loss::mse,
            &x,
            &y,
            ErrType::Exact,
            0.1,
            1,
            None,
        )
        .unwrap();
    }
    assert_grads_match(&vs, &bp, 1e-10, "mlp");
}

#[test]
fn works_inside_no_grad() {
    let _rng = rng_lock();
    let (vs, seq, x, y) = setup("mlp", F64, CPU, 3);
    let bp = backprop(&vs, &seq, &tch2pc::loss::mse, &x, &y);
    tch::no_grad(|| {
        pc_infer(
            &seq,
            &tch2pc::loss::mse,
            &x,
            &y,
            ErrType::Strict,
            0.1,
            5,
            None,
        )
        .unwrap()
    });
    tch::no_grad(|| {
        pc_infer(
            &seq,
            &tch2pc::loss::mse,
            &x,
            &y,
            ErrType::Exact,
            0.1,
            5,
            None,
        )
        .unwrap()
    });
    assert_grads_match(&vs, &bp, 1e-10, "mlp");
}

#[test]
fn fixedpred_eta1_exact_iff_enough_sweeps() {
    let _rng = rng_lock();
    // pfree has L = 5 with parameters in layers 1, 3, 5.
    let model = "pfree";
    let (vs, seq, x, y) = setup(model, F64, CPU, 11);
    let loss = loss_for(model);
    let layers = seq.len();
    let bp = backprop(&vs, &seq, &loss, &x, &y);
    for mode in [FixedPredMode::ClosedForm, FixedPredMode::Literal] {
        for n in 1..=layers + 2 {
            PcInfer::new(ErrType::FixedPred)
                .eta(1.0)
                .n(n)
                .fixed_pred(mode)
                .run(&seq, &loss, &x, &y)
                .unwrap();
            let pc = grads(&vs);
            for l in [1, 3, 5] {
                let exact = n > layers - l; // n >= L-l+1
                for name in layer_params(model, l) {
                    let e = rel_err(&pc[&name], &bp[&name]);
                    if exact {
                        assert!(
                            e < 1e-10,
                            "{mode:?} n={n} layer {l} {name} should be exact: {e:e}"
                        );
                    } else {
                        assert!(
                            e > 0.5,
                            "{mode:?} n={n} layer {l} {name} should not be exact: {e:e}"
                        );
                    }
                }
            }
        }
        // n >= L: everything equals Exact, including ε and v.
        let fp = PcInfer::new(ErrType::FixedPred)
            .eta(1.0)
            .n(layers)
            .fixed_pred(mode)
            .run(&seq, &loss, &x, &y)
            .unwrap();
        let ex = PcInfer::new(ErrType::Exact)
            .run(&seq, &loss, &x, &y)
            .unwrap();
        for l in 1..=layers {
            assert!(
                rel_err(&fp.epsilon[l], &ex.epsilon[l]) < 1e-10,
                "{mode:?} eps {l}"
            );
        }
        // FixedPred never moves the output belief (v_L = v̂_L); below it v = v̂ - ε as in Exact.
        assert!(fp.v[layers].equal(&fp.vhat[layers]));
        for l in 1..layers {
            assert!(rel_err(&fp.v[l], &ex.v[l]) < 1e-10, "{mode:?} v {l}");
        }
    }
}

#[test]
fn fixedpred_matches_binomial_closed_form() {
    let _rng = rng_lock();
    for model in ["mlp", "cnn", "pfree"] {
        let (_vs, seq, x, y) = setup(model, F64, CPU, 5);
        let loss = loss_for(model);
        let layers = seq.len();
        let ex = pc_infer(&seq, &loss, &x, &y, ErrType::Exact, 0.1, 1, None).unwrap();
        for &eta in &[0.1, 0.3, 0.5, 0.9] {
            for &n in &[1usize, 2, 3, 7, 20] {
                let out = PcInfer::new(ErrType::FixedPred)
                    .eta(eta)
                    .n(n)
                    .fixed_pred(FixedPredMode::Literal)
                    .run(&seq, &loss, &x, &y)
                    .unwrap();
                for l in 1..=layers {
                    let c = tch2pc::binomial_tail(n - 1, eta, layers - l);
                    let want = &ex.epsilon[l] * c;
                    let got = &out.epsilon[l];
                    if c == 0.0 {
                        assert_eq!(
                            got.abs().max().double_value(&[]),
                            0.0,
                            "{model} eta {eta} n {n} l {l}"
                        );
                    } else {
                        let e = rel_err(got, &want);
                        assert!(e < 1e-10, "{model} eta {eta} n {n} l {l}: {e:e}");
                    }
                }
            }
        }
    }
}

#[test]
fn fixedpred_closed_form_equals_literal_loop() {
    let _rng = rng_lock();
    for model in ["mlp", "cnn", "pfree"] {
        let (vs, seq, x, y) = setup(model, F64, CPU, 13);
        let loss = loss_for(model);
        let layers = seq.len();
        for &eta in &[0.1, 0.5, 1.0] {
            for n in [1, 2, layers - 1, layers, 20] {
                let n = n.max(1);
                let lit = PcInfer::new(ErrType::FixedPred)
                    .eta(eta)
                    .n(n)
                    .fixed_pred(FixedPredMode::Literal)
                    .run(&seq, &loss, &x, &y)
                    .unwrap();
                let g_lit = grads(&vs);
                let cf = PcInfer::new(ErrType::FixedPred)
                    .eta(eta)
                    .n(n)
                    .run(&seq, &loss, &x, &y)
                    .unwrap();
                let g_cf = grads(&vs);
                let ctx = format!("{model} eta {eta} n {n}");
                for l in 0..=layers {
                    for (what, a, b) in [
                        ("eps", &cf.epsilon[l], &lit.epsilon[l]),
                        ("v", &cf.v[l], &lit.v[l]),
                        ("vhat", &cf.vhat[l], &lit.vhat[l]),
                    ] {
                        if b.abs().max().double_value(&[]) == 0.0 {
                            assert_eq!(
                                a.abs().max().double_value(&[]),
                                0.0,
                                "{ctx}: {what}[{l}] should be exactly 0"
                            );
                        } else {
                            let e = rel_err(a, b);
                            assert!(e < 1e-10, "{ctx}: {what}[{l}] {e:e}");
                        }
                    }
                }
                for (name, g) in &g_lit {
                    if g.abs().max().double_value(&[]) == 0.0 {
                        assert_eq!(
                            g_cf[name].abs().max().double_value(&[]),
                            0.0,
                            "{ctx}: {name} should be exactly 0"
                        );
                    } else {
                        assert!(rel_err(&g_cf[name], g) < 1e-10, "{ctx}: {name}");
                    }
                }
                assert_eq!(cf.report.energy.len(), lit.report.energy.len());
                for (a, b) in cf.report.energy.iter().zip(&lit.report.energy) {
                    assert!((a - b).abs() <= 1e-10 * b.abs(), "{ctx}: energy {a} vs {b}");
                }
            }
        }
    }
}

/// Relative difference between Strict's and Exact's updates, for a loss `loss`.
fn strict_vs_exact<F: Fn(&Tensor, &Tensor) -> Tensor>(
    vs: &tch::nn::VarStore,
    seq: &tch2pc::Sequential,
    loss: &F,
    x: &Tensor,
    y: &Tensor,
    n: usize,
) -> f64 {
    pc_infer(seq, loss, x, y, ErrType::Exact, 0.1, 1, None).unwrap();
    let ex = flat(&grads(vs));
    pc_infer(seq, loss, x, y, ErrType::Strict, 0.1, n, None).unwrap();
    let st = flat(&grads(vs));
    (&st - &ex).norm().double_value(&[]) / ex.norm().double_value(&[])
}

/// Targets moved toward the output, `y = ŷ + s (t - ŷ)`: the relative difference falls
/// monotonically over four scales of `s`. It converges to a non-zero floor, not to 0: at the
/// equilibrium `ε_L = ∂ℓ/∂f_L(v_{L-1})` is taken at an output that the hidden errors have
/// moved by `-J Jᵀ ε_L`, a change proportional to the output error itself, so the relative
/// deviation keeps a term set by the loss curvature (the same holds for the seed's code:
/// 0.136, 0.0457, 0.0430, 0.0429 on this MLP). The approach to the floor is linear in `s`.
#[test]
fn strict_approaches_exact_as_output_error_shrinks() {
    let _rng = rng_lock();
    for model in ["mlp", "pfree"] {
        let (vs, seq, x, _) = setup(model, F64, CPU, 17);
        let layers = seq.len();
        // Drawn before any call: a call in training mode reseeds the global generator.
        let target = Tensor::randn([x.size()[0], 3], (F64, CPU));
        let vhat = pc_infer(
            &seq,
            &tch2pc::loss::mse,
            &x,
            &Tensor::zeros([x.size()[0], 3], (F64, CPU)),
            ErrType::Exact,
            0.1,
            1,
            None,
        )
        .unwrap()
        .vhat;
        let diffs: Vec<f64> = [1.0, 0.1, 0.01, 0.001]
            .iter()
            .map(|s| {
                let y = &vhat[layers] + (&target - &vhat[layers]) * *s;
                strict_vs_exact(&vs, &seq, &tch2pc::loss::mse, &x, &y, 200)
            })
            .collect();
        eprintln!("{model}: Strict vs Exact, targets moved toward the output: {diffs:?}");
        for w in diffs.windows(2) {
            assert!(
                w[1] < w[0],
                "{model}: relative difference did not fall: {diffs:?}"
            );
        }
        // Linear approach to the floor: each decade of s shrinks the remaining gap ~10x.
        let steps: Vec<f64> = diffs.windows(2).map(|w| w[0] - w[1]).collect();
        for w in steps.windows(2) {
            assert!(
                w[1] < w[0] / 5.0,
                "{model}: not converging linearly: {diffs:?}"
            );
        }
    }
}

/// The limit in which Strict PC is backprop (Whittington and Bogacz 2017): the output error
/// weighted down, `ℓ_β = β · MSE`. Then, with the relaxation run to equilibrium, the
/// relative difference is proportional to β.
#[test]
fn strict_converges_to_exact_as_output_weight_shrinks() {
    let _rng = rng_lock();
    for model in ["mlp", "pfree"] {
        let (vs, seq, x, _) = setup(model, F64, CPU, 17);
        let y = Tensor::randn([x.size()[0], 3], (F64, CPU));
        let diffs: Vec<f64> = [1.0, 0.1, 0.01, 0.001]
            .iter()
            .map(|&b| {
                strict_vs_exact(
                    &vs,
                    &seq,
                    &move |o: &Tensor, t: &Tensor| tch2pc::loss::mse(o, t) * b,
                    &x,
                    &y,
                    3000,
                )
            })
            .collect();
        eprintln!("{model}: Strict vs Exact, output weight beta: {diffs:?}");
        for w in diffs.windows(2) {
            assert!(
                w[1] < w[0] / 5.0,
                "{model}: not proportional to beta: {diffs:?}"
            );
        }
        assert!(diffs[3] < 1e-3, "{model}: {diffs:?}");
    }
}

#[test]
fn strict_with_vinit_at_vhat_equals_default() {
    let _rng = rng_lock();
    let (_vs, seq, x, y) = setup("cnn", F64, CPU, 19);
    let a = pc_infer(
        &seq,
        &tch2pc::loss::cross_entropy,
        &x,
        &y,
        ErrType::Strict,
        0.1,
        10,
        None,
    )
    .unwrap();
    let b = pc_infer(
        &seq,
        &tch2pc::loss::cross_entropy,
        &x,
        &y,
        ErrType::Strict,
        0.1,
        10,
        Some(&a.vhat),
    )
    .unwrap();
    for l in 0..=seq.len() {
        assert!(a.v[l].equal(&b.v[l]));
        assert!(a.epsilon[l].equal(&b.epsilon[l]));
    }
}

#[test]
fn float32_smoke() {
    let _rng = rng_lock();
    for model in ["mlp", "cnn", "pfree"] {
        let (vs, seq, x, y) = setup(model, Kind::Float, CPU, 23);
        let loss = loss_for(model);
        let bp = backprop(&vs, &seq, &loss, &x, &y);
        for err in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
            let out = pc_infer(&seq, &loss, &x, &y, err, 0.1, 20, None).unwrap();
            assert_eq!(out.loss.kind(), Kind::Float);
            for l in 0..=seq.len() {
                assert_eq!(out.v[l].kind(), Kind::Float);
                assert!(bool::try_from(out.v[l].isfinite().all()).unwrap());
            }
            let pc = grads(&vs);
            for (name, g) in &bp {
                assert_eq!(pc[name].kind(), Kind::Float);
                let e = rel_err(&pc[name], g);
                match err {
                    ErrType::Exact => assert!(e < 1e-5, "{model} {name} {e:e}"),
                    _ => assert!(e.is_finite() && e < 1.0, "{model} {err} {name} {e:e}"),
                }
            }
        }
        // FixedPred with eta = 1, n = L is backprop in float32 too.
        PcInfer::new(ErrType::FixedPred)
            .eta(1.0)
            .n(seq.len())
            .run(&seq, &loss, &x, &y)
            .unwrap();
        assert_grads_match(&vs, &bp, 1e-5, model);
    }
}

#[test]
fn adam_step_trains_with_every_algorithm() {
    let _rng = rng_lock();
    use tch::nn::OptimizerConfig;
    for err in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        let (vs, seq, x, y) = setup("mlp", F64, CPU, 29);
        let mut opt = tch::nn::Adam::default().build(&vs, 1e-2).unwrap();
        let first = pc_infer(&seq, &tch2pc::loss::mse, &x, &y, err, 0.1, 20, None)
            .unwrap()
            .loss
            .double_value(&[]);
        let mut last = first;
        for _ in 0..50 {
            opt.step();
            last = pc_infer(&seq, &tch2pc::loss::mse, &x, &y, err, 0.1, 20, None)
                .unwrap()
                .loss
                .double_value(&[]);
        }
        assert!(last < 0.5 * first, "{err}: loss {first} -> {last}");
    }
}

#[test]
fn single_layer_models_are_backprop_for_every_algorithm() {
    let _rng = rng_lock();
    tch::manual_seed(71);
    let mut vs = tch::nn::VarStore::new(CPU);
    vs.set_kind(F64);
    let seq = tch2pc::Sequential::new(&vs).add(tch::nn::linear(
        vs.root() / "0",
        4,
        3,
        Default::default(),
    ));
    let x = Tensor::randn([5, 4], (F64, CPU));
    let y = Tensor::randn([5, 3], (F64, CPU));
    let bp = backprop(&vs, &seq, &tch2pc::loss::mse, &x, &y);
    for err in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        let out = pc_infer(&seq, &tch2pc::loss::mse, &x, &y, err, 0.1, 7, None).unwrap();
        assert_eq!(out.v.len(), 2);
        assert!(out.epsilon[1].equal(&out.dldy), "{err}");
        assert_grads_match(&vs, &bp, 1e-12, err.as_str());
    }
}

#[test]
fn parameter_free_first_layer() {
    let _rng = rng_lock();
    // Layer 1 has no parameters (and the input is clamped): nothing needs its gradient.
    tch::manual_seed(73);
    let mut vs = tch::nn::VarStore::new(CPU);
    vs.set_kind(F64);
    let root = vs.root();
    let seq = tch2pc::Sequential::new(&vs)
        .add_fn(|x| x.tanh())
        .add(tch::nn::linear(&root / "1", 4, 6, Default::default()))
        .add_fn(|x| x.sigmoid())
        .add(tch::nn::linear(&root / "3", 6, 2, Default::default()));
    let x = Tensor::randn([5, 4], (F64, CPU));
    let y = Tensor::randn([5, 2], (F64, CPU));
    let bp = backprop(&vs, &seq, &tch2pc::loss::mse, &x, &y);
    pc_infer(
        &seq,
        &tch2pc::loss::mse,
        &x,
        &y,
        ErrType::Exact,
        0.1,
        1,
        None,
    )
    .unwrap();
    assert_grads_match(&vs, &bp, 1e-12, "exact");
    PcInfer::new(ErrType::FixedPred)
        .eta(1.0)
        .n(4)
        .run(&seq, &tch2pc::loss::mse, &x, &y)
        .unwrap();
    assert_grads_match(&vs, &bp, 1e-12, "fixedpred");
    let lit = PcInfer::new(ErrType::FixedPred)
        .fixed_pred(FixedPredMode::Literal)
        .run(&seq, &tch2pc::loss::mse, &x, &y)
        .unwrap();
    let cf = PcInfer::new(ErrType::FixedPred)
        .run(&seq, &tch2pc::loss::mse, &x, &y)
        .unwrap();
    for l in 1..=4 {
        assert!(
            rel_err(&cf.epsilon[l], &lit.epsilon[l]) < 1e-10
                || lit.epsilon[l].abs().max().double_value(&[]) == 0.0
        );
    }
    let out = pc_infer(
        &seq,
        &tch2pc::loss::mse,
        &x,
        &y,
        ErrType::Strict,
        0.1,
        20,
        None,
    )
    .unwrap();
    assert!(out.report.final_energy.unwrap() <= out.report.energy[0]);
}
