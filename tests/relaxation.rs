//! Convergence tolerance, divergence guard, observers, float64 relaxation and alignment.

mod common;

use common::*;
use tch::{Device, Kind, Tensor};
use tch2pc::{
    loss, pc_infer, ErrType, FixedPredMode, OnDiverge, PcError, PcInfer, Recorder, StopReason,
};

const F64: Kind = Kind::Double;
const CPU: Device = Device::Cpu;

/// A Strict case whose fixed-step relaxation diverges: a large step on the MLP.
fn diverging() -> (tch::nn::VarStore, tch2pc::Sequential, Tensor, Tensor, f64) {
    let (vs, seq, x, y) = setup("mlp", F64, CPU, 41);
    (vs, seq, x, y * 3.0, 2.5)
}

#[test]
fn error_policy_reports_divergence_and_leaves_gradients() {
    let _rng = rng_lock();
    let (vs, seq, x, y, eta) = diverging();
    pc_infer(&seq, &loss::mse, &x, &y, ErrType::Exact, 0.1, 1, None).unwrap();
    let before = snapshot(&vs);
    let err = pc_infer(&seq, &loss::mse, &x, &y, ErrType::Strict, eta, 50, None).unwrap_err();
    match &err {
        PcError::Diverged {
            iteration,
            energy,
            initial_energy,
            ..
        } => {
            assert!(*iteration >= 1 && *iteration <= 50);
            assert!(energy > initial_energy);
        }
        other => panic!("expected Diverged, got {other:?}"),
    }
    assert!(err.to_string().contains("diverged"));
    assert_same(&before, &snapshot(&vs));
}

#[test]
fn backtrack_makes_the_energy_non_increasing() {
    let _rng = rng_lock();
    let (vs, seq, x, y, eta) = diverging();
    // With the fixed step (and the guard off) the energy does rise.
    let mut rec = Recorder::default();
    let _ = PcInfer::new(ErrType::Strict)
        .eta(eta)
        .n(50)
        .divergence_tolerance(f64::MAX)
        .observer(&mut rec)
        .run(&seq, &loss::mse, &x, &y);
    assert!(
        rec.energy.windows(2).any(|w| w[1] > w[0]),
        "the fixed step should raise the energy: {:?}",
        rec.energy
    );

    let mut rec = Recorder::default();
    let out = PcInfer::new(ErrType::Strict)
        .eta(eta)
        .n(50)
        .on_diverge(OnDiverge::Backtrack)
        .observer(&mut rec)
        .run(&seq, &loss::mse, &x, &y)
        .unwrap();
    let r = &out.report;
    assert!(r.backtracks > 0);
    assert!(r.final_eta < eta);
    let mut energies = r.energy.clone();
    energies.push(r.final_energy.unwrap());
    for w in energies.windows(2) {
        assert!(w[1] <= w[0], "energy rose: {energies:?}");
    }
    assert!(energies.last().unwrap() < &energies[0]);
    assert_eq!(rec.energy, r.energy);
    // The updates are finite and written.
    let g = flat(&grads(&vs));
    assert!(bool::try_from(g.isfinite().all()).unwrap());
    assert!(g.norm().double_value(&[]) > 0.0);
}

#[test]
fn backtrack_changes_nothing_when_the_step_is_fine() {
    let _rng = rng_lock();
    let (vs, seq, x, y) = setup("cnn", F64, CPU, 43);
    let a = pc_infer(
        &seq,
        &loss::cross_entropy,
        &x,
        &y,
        ErrType::Strict,
        0.1,
        20,
        None,
    )
    .unwrap();
    let ga = flat(&grads(&vs));
    let b = PcInfer::new(ErrType::Strict)
        .on_diverge(OnDiverge::Backtrack)
        .run(&seq, &loss::cross_entropy, &x, &y)
        .unwrap();
    let gb = flat(&grads(&vs));
    assert_eq!(b.report.backtracks, 0);
    assert!(ga.equal(&gb));
    for l in 0..=seq.len() {
        assert!(a.v[l].equal(&b.v[l]));
    }
}

#[test]
fn tol_stops_early_and_reports_converged() {
    let _rng = rng_lock();
    let (_vs, seq, x, y) = setup("mlp", F64, CPU, 47);
    let out = PcInfer::new(ErrType::Strict)
        .eta(0.2)
        .n(10_000)
        .tol(1e-6)
        .run(&seq, &loss::mse, &x, &y)
        .unwrap();
    match out.report.stop {
        StopReason::Converged { iteration, change } => {
            assert!(iteration < 10_000);
            assert!(change < 1e-6);
            assert_eq!(out.report.iterations, iteration);
            assert_eq!(out.report.energy.len(), iteration);
        }
        other => panic!("expected Converged, got {other:?}"),
    }
    // Converged means the beliefs are at the energy's minimum: another long run agrees.
    let long = PcInfer::new(ErrType::Strict)
        .eta(0.2)
        .n(20_000)
        .run(&seq, &loss::mse, &x, &y)
        .unwrap();
    for l in 1..seq.len() {
        assert!(rel_err(&out.v[l], &long.v[l]) < 1e-4, "layer {l}");
    }
    // FixedPred with tol (the literal loop) converges too.
    let fp = PcInfer::new(ErrType::FixedPred)
        .eta(0.5)
        .n(1000)
        .tol(1e-8)
        .run(&seq, &loss::mse, &x, &y)
        .unwrap();
    assert!(
        matches!(fp.report.stop, StopReason::Converged { .. }),
        "{:?}",
        fp.report.stop
    );
}

/// Without `tol`, Strict's results are the seed's bit for bit: compared, in this process, with
/// the seed's loop written out plainly (`common::seed_strict`), and with the golden files (made
/// by another process, possibly on another CPU, so only to `GOLDEN_TOL`).
#[test]
fn without_tol_results_equal_the_seed_bit_for_bit() {
    let _rng = rng_lock();
    for (case, model) in [
        ("mlp_strict", "mlp"),
        ("cnn_strict", "cnn"),
        ("pfree_strict", "pfree"),
        ("mlp_strict_vinit", "mlp"),
        ("pfree_strict_eta03_n7", "pfree"),
    ] {
        let g = Golden::load(case);
        let (vs, seq) = build(model, F64, CPU);
        load_params(&vs, &g);
        let layers = seq.len();
        let (x, y) = (g.get("x"), g.get("y"));
        let (eta, n) = (g.scalar("eta"), g.scalar("n") as usize);
        // Copies: the library must not write into the caller's initial beliefs.
        let vinit: Vec<Tensor> = (0..=layers)
            .filter_map(|l| g.0.get(&format!("vinit.{l}")).map(|t| t.copy()))
            .collect();
        let vinit = (!vinit.is_empty()).then_some(vinit);
        let seed = seed_strict(&vs, &seq, &loss_for(model), x, y, eta, n, vinit.as_deref());
        // The plain loop is the seed's algorithm: it reproduces the golden files.
        for l in 1..=layers {
            assert_golden_close(
                &format!("{case} seed loop v.{l}"),
                &seed.v[l],
                g.get(&format!("v.{l}")),
            );
            assert_golden_close(
                &format!("{case} seed loop eps.{l}"),
                &seed.eps[l],
                g.get(&format!("eps.{l}")),
            );
        }
        assert_eq!(seed.grads.len(), vs.variables().len());
        for (name, grad) in &seed.grads {
            assert_golden_close(
                &format!("{case} seed loop grad.{name}"),
                grad,
                g.get(&format!("grad.{name}")),
            );
        }
        // Error updates the beliefs in place, Backtrack keeps each direction for retries.
        for policy in [OnDiverge::Error, OnDiverge::Backtrack] {
            let mut cfg = PcInfer::new(ErrType::Strict)
                .eta(eta)
                .n(n)
                .on_diverge(policy);
            if let Some(v0) = &vinit {
                cfg = cfg.vinit(v0);
            }
            let out = cfg.run(&seq, &loss_for(model), x, y).unwrap();
            assert_eq!(out.report.backtracks, 0, "{case} {policy:?}");
            for l in 1..=layers {
                assert!(out.v[l].equal(&seed.v[l]), "{case} {policy:?} v.{l}");
                assert!(
                    out.epsilon[l].equal(&seed.eps[l]),
                    "{case} {policy:?} eps.{l}"
                );
                assert_golden_close(
                    &format!("{case} {policy:?} v.{l}"),
                    &out.v[l],
                    g.get(&format!("v.{l}")),
                );
            }
            for (name, v) in vs.variables() {
                assert!(
                    v.grad().equal(&seed.grads[&name]),
                    "{case} {policy:?} grad.{name}"
                );
            }
            // The caller's initial beliefs are read, never written.
            for (l, t) in vinit.iter().flatten().enumerate() {
                assert!(t.equal(g.get(&format!("vinit.{l}"))), "{case} vinit.{l}");
            }
        }
    }
}

/// Layers that return their input (a tensor sharing the belief's memory) make autograd hand
/// back gradients that alias other gradients; the in-place belief update must notice and
/// give exactly the values of the same model with copying identities (`x * 1`).
#[test]
fn strict_is_unaffected_by_layers_that_alias_their_input() {
    let _rng = rng_lock();
    let build = |copy: bool| {
        tch::manual_seed(7);
        let vs = tch::nn::VarStore::new(CPU);
        let root = vs.root();
        let id = move |x: &Tensor| if copy { x * 1.0 } else { x.shallow_clone() };
        let seq = tch2pc::Sequential::new(&vs)
            .add(tch::nn::linear(&root / "0", 5, 4, Default::default()))
            .add_fn(move |x| id(x))
            .add(tch::nn::linear(&root / "2", 4, 4, Default::default()))
            .add_fn(move |x| id(x).tanh())
            .add_fn(move |x| id(x));
        (vs, seq)
    };
    tch::manual_seed(8);
    let x = Tensor::randn([6, 5], (F64, CPU));
    let y = Tensor::randn([6, 4], (F64, CPU));
    let run = |copy: bool, policy: OnDiverge| {
        let (mut vs, seq) = build(copy);
        vs.double();
        let out = PcInfer::new(ErrType::Strict)
            .eta(0.2)
            .n(6)
            .on_diverge(policy)
            .run(&seq, &loss::mse, &x, &y)
            .unwrap();
        let mut fresh = vec![x.shallow_clone()];
        for l in 1..=seq.len() {
            let h = tch::no_grad(|| seq.f_layer_forward(l, &fresh[l - 1]).unwrap());
            fresh.push(h);
        }
        for (l, (a, b)) in out.vhat.iter().zip(&fresh).enumerate() {
            assert!(a.equal(b), "vhat.{l} changed after the call");
        }
        (out, grads(&vs))
    };
    for policy in [OnDiverge::Error, OnDiverge::Backtrack] {
        let (want, want_g) = run(true, policy);
        let (got, got_g) = run(false, policy);
        for l in 1..want.v.len() {
            assert!(got.v[l].equal(&want.v[l]), "{policy:?} v.{l}");
            assert!(got.epsilon[l].equal(&want.epsilon[l]), "{policy:?} eps.{l}");
        }
        for (name, g) in &want_g {
            assert!(got_g[name].equal(g), "{policy:?} grad.{name}");
        }
        assert!(got.v[1].ne_tensor(&got.vhat[1]).any().int64_value(&[]) != 0);
    }
}

#[test]
fn observer_sees_every_sweep() {
    let _rng = rng_lock();
    for err in [ErrType::Strict, ErrType::FixedPred] {
        let (_vs, seq, x, y) = setup("pfree", F64, CPU, 53);
        let mut rec = Recorder::default();
        let out = PcInfer::new(err)
            .eta(0.1)
            .n(15)
            .observer(&mut rec)
            .run(&seq, &loss::cross_entropy, &x, &y)
            .unwrap();
        assert_eq!(rec.energy.len(), 15);
        assert_eq!(rec.energy, out.report.energy);
        assert!(rec.eps_norms.iter().all(|e| e.len() == seq.len()));
        // The first sweep starts at v̂: only the output error is non-zero, energy = loss.
        assert!((rec.energy[0] - out.loss.double_value(&[])).abs() < 1e-12);
        assert!(rec.eps_norms[0][..seq.len() - 1].iter().all(|&e| e == 0.0));
        // The last sweep's norms are those of the returned errors.
        for l in 1..=seq.len() {
            let want = out.epsilon[l].norm().double_value(&[]);
            assert!(
                (rec.eps_norms[14][l - 1] - want).abs() <= 1e-10 * want.max(1e-300),
                "{err} layer {l}"
            );
        }
    }
}

#[test]
fn float64_relaxation_for_a_float32_model() {
    let _rng = rng_lock();
    // Targets very close to the output: errors ~1e-6 of the activations, where float32's
    // ε = f(v) - v loses digits.
    let (vs32, seq32, x32, _) = setup("pfree", Kind::Float, CPU, 59);
    let (vs64, seq64) = build("pfree", F64, CPU);
    tch::no_grad(|| {
        let v64 = vs64.variables();
        for (name, v) in vs32.variables() {
            v64[&name].shallow_clone().copy_(&v.to_kind(F64));
        }
    });
    let x64 = x32.to_kind(F64);
    let out = PcInfer::new(ErrType::Exact)
        .run(&seq64, &loss::mse, &x64, &Tensor::zeros([6, 3], (F64, CPU)))
        .unwrap();
    let yhat = &out.vhat[seq64.len()];
    // Targets representable in float32, so that both runs see the same problem.
    let y32 = (yhat + Tensor::randn(yhat.size(), (F64, CPU)) * 1e-5).to_kind(Kind::Float);
    let y64 = y32.to_kind(F64);

    let reference = |loss_fn: fn(&Tensor, &Tensor) -> Tensor| {
        PcInfer::new(ErrType::Strict)
            .n(50)
            .run(&seq64, &loss_fn, &x64, &y64)
            .unwrap();
        flat(&grads(&vs64))
    };
    let want = reference(loss::mse);
    let before = snapshot(&vs32);
    PcInfer::new(ErrType::Strict)
        .n(50)
        .relax_kind(F64)
        .run(&seq32, &loss::mse, &x32, &y32)
        .unwrap();
    let wide = flat(&grads(&vs32));
    PcInfer::new(ErrType::Strict)
        .n(50)
        .run(&seq32, &loss::mse, &x32, &y32)
        .unwrap();
    let plain = flat(&grads(&vs32));
    let err = |g: &Tensor| (g - &want).norm().double_value(&[]) / want.norm().double_value(&[]);
    let (e_wide, e_plain) = (err(&wide), err(&plain));
    eprintln!("Strict updates of a float32 model vs float64: relax_kind(Double) {e_wide:.2e}, plain float32 {e_plain:.2e}");
    assert!(e_wide < 1e-5, "{e_wide:e}");
    assert!(e_plain > e_wide);
    // The parameters are float32 again, bit for bit as before, and so are the updates.
    for (name, v) in vs32.variables() {
        assert_eq!(v.kind(), Kind::Float, "{name}");
        assert_eq!(v.grad().kind(), Kind::Float, "{name}");
    }
    for ((name, a, _), (_, b, _)) in before.iter().zip(&snapshot(&vs32)) {
        assert!(a.equal(b), "{name} changed");
    }
}

#[test]
fn relax_kind_restores_parameters_exactly_even_on_error() {
    let _rng = rng_lock();
    let (vs, seq, x, y) = setup("mlp", Kind::Float, CPU, 61);
    pc_infer(&seq, &loss::mse, &x, &y, ErrType::Exact, 0.1, 1, None).unwrap();
    let before = snapshot(&vs);
    let err = PcInfer::new(ErrType::Strict)
        .eta(1e3)
        .relax_kind(F64)
        .run(&seq, &loss::mse, &x, &y)
        .unwrap_err();
    assert!(matches!(err, PcError::Diverged { .. }));
    assert_same(&before, &snapshot(&vs));
    PcInfer::new(ErrType::Strict)
        .relax_kind(F64)
        .run(&seq, &loss::mse, &x, &y)
        .unwrap();
    for ((n, a, _), (_, b, _)) in before.iter().zip(&snapshot(&vs)) {
        assert!(a.equal(b), "{n}");
    }
}

#[test]
fn alignment_exact_is_zero_and_fixedpred_is_closed_form() {
    let _rng = rng_lock();
    for model in ["mlp", "cnn", "pfree"] {
        let (vs, seq, x, y) = setup(model, F64, CPU, 67);
        let l_fn = loss_for(model);
        let layers = seq.len();
        pc_infer(&seq, &l_fn, &x, &y, ErrType::Exact, 0.1, 1, None).unwrap();
        let before = snapshot(&vs);
        let a = PcInfer::new(ErrType::Exact)
            .alignment(&seq, &l_fn, &x, &y)
            .unwrap()
            .layers;
        assert_eq!(a.len(), 3, "{model}: three layers with parameters");
        for la in &a {
            assert_eq!(la.rel_error, 0.0);
            assert_eq!(la.angle_deg, 0.0);
        }
        for &eta in &[0.1, 0.5, 1.0] {
            for &n in &[1usize, 2, 3, 5, 20] {
                for mode in [FixedPredMode::ClosedForm, FixedPredMode::Literal] {
                    let a = PcInfer::new(ErrType::FixedPred)
                        .eta(eta)
                        .n(n)
                        .fixed_pred(mode)
                        .alignment(&seq, &l_fn, &x, &y)
                        .unwrap();
                    assert_eq!(a.report.iterations, n);
                    for la in &a.layers {
                        let c = tch2pc::binomial_tail(n - 1, eta, layers - la.layer);
                        assert!(
                            (la.rel_error - (1.0 - c)).abs() < 1e-10,
                            "{model} eta {eta} n {n} layer {}: {} vs {}",
                            la.layer,
                            la.rel_error,
                            1.0 - c
                        );
                        if c > 0.0 {
                            assert!(la.angle_deg.abs() < 1e-6, "{model} angle {}", la.angle_deg);
                        } else {
                            assert!(la.angle_deg.is_nan());
                        }
                    }
                }
            }
        }
        let s = PcInfer::new(ErrType::Strict)
            .alignment(&seq, &l_fn, &x, &y)
            .unwrap()
            .layers;
        assert!(s
            .iter()
            .all(|la| la.rel_error.is_finite() && la.angle_deg >= 0.0 && la.angle_deg < 90.0));
        // alignment() writes nothing.
        assert_same(&before, &snapshot(&vs));
    }
}
