//! Belief optimisers (plain steps, momentum, Nesterov, Adam) and incremental PC, in float64
//! on the CPU: the first sweeps against a relaxation written out here in plain tch ops, the
//! seed's values for plain steps, convergence, backtracking, observers, incremental PC
//! (against a Strict call followed by an optimizer step, and its restore on error) and the
//! validation of the settings.

mod common;

use common::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Reduction, Tensor};
use tch2pc::{
    loss, BeliefOptimizer, ErrType, FixedPredMode, OnDiverge, PcError, PcInfer, PcOutput, Recorder,
    Sequential, StopReason,
};

const F64: Kind = Kind::Double;
const CPU: Device = Device::Cpu;

/// The rules under test, with non-default parameters among them.
fn rules() -> Vec<BeliefOptimizer> {
    vec![
        BeliefOptimizer::Plain,
        BeliefOptimizer::Momentum { beta: 0.9 },
        BeliefOptimizer::Nesterov { beta: 0.8 },
        BeliefOptimizer::adam(),
        BeliefOptimizer::Adam {
            beta1: 0.5,
            beta2: 0.9,
            eps: 1e-3,
        },
    ]
}

/// `max |a - b| / max |b|`, or `max |a|` when `b` is all zeros.
fn err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shape mismatch");
    let diff = (a - b).abs().max().double_value(&[]);
    let scale = b.abs().max().double_value(&[]);
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

/// `|a - b| / |b|`, or `|a|` when `b` is zero.
fn err_f(a: f64, b: f64) -> f64 {
    if b != 0.0 {
        (a - b).abs() / b.abs()
    } else {
        a.abs()
    }
}

fn sq(t: &Tensor) -> f64 {
    t.square().sum(F64).double_value(&[])
}

/// `∂root/∂wrt` by autograd.
fn grad_of(root: &Tensor, wrt: &Tensor) -> Tensor {
    Tensor::run_backward(&[root], &[wrt], false, false)
        .pop()
        .unwrap()
}

/// The golden MLP of `tests/common` ("mlp": 5 → 8 → 6 → 3) written out in plain tch ops on
/// copies of its parameters: `f_l(v) = tanh(v W_lᵀ + b_l)` for `l = 1, 2`,
/// `f_3(v) = v W_3ᵀ + b_3`.
struct HandMlp {
    names: Vec<String>,
    /// `W_1, b_1, W_2, b_2, W_3, b_3`, leaves that require grad.
    params: Vec<Tensor>,
}

const L: usize = 3;

impl HandMlp {
    fn of(vs: &nn::VarStore) -> HandMlp {
        let vars = vs.variables();
        let mut names = Vec::new();
        let mut params = Vec::new();
        for p in ["0.0", "1.0", "2"] {
            for s in ["weight", "bias"] {
                let name = format!("{p}.{s}");
                params.push(vars[&name].detach().copy().set_requires_grad(true));
                names.push(name);
            }
        }
        HandMlp { names, params }
    }

    fn f(&self, l: usize, v: &Tensor) -> Tensor {
        let z = v.linear(&self.params[2 * (l - 1)], Some(&self.params[2 * l - 1]));
        if l < L {
            z.tanh()
        } else {
            z
        }
    }

    fn loss(out: &Tensor, y: &Tensor) -> Tensor {
        out.mse_loss(y, Reduction::Mean)
    }

    /// `Σ_l ⟨f_l(inputs[l-1]), eps[l]⟩` differentiated with respect to the parameters.
    fn param_grads(&self, inputs: &[Tensor], eps: &[Tensor]) -> HashMap<String, Tensor> {
        let root = (1..=L)
            .map(|l| (self.f(l, &inputs[l - 1].detach()) * &eps[l]).sum(F64))
            .reduce(|a, b| a + b)
            .unwrap();
        let g = Tensor::run_backward(&[root], &self.params, false, false);
        self.names.iter().cloned().zip(g).collect()
    }
}

/// The belief optimizers' equations, one hidden belief at a time.
struct HandOpt {
    rule: BeliefOptimizer,
    m: Vec<Tensor>,
    s: Vec<Tensor>,
    t: i32,
}

impl HandOpt {
    fn new(rule: BeliefOptimizer, like: &[Tensor]) -> HandOpt {
        HandOpt {
            rule,
            m: like.iter().map(|t| t.zeros_like()).collect(),
            s: like.iter().map(|t| t.zeros_like()).collect(),
            t: 0,
        }
    }

    /// `Δv_l` for direction `d = -∂F/∂v_l`; call `sweep` once before each sweep.
    fn delta(&mut self, l: usize, d: &Tensor, eta: f64) -> Tensor {
        match self.rule {
            BeliefOptimizer::Plain => d * eta,
            BeliefOptimizer::Momentum { beta } => {
                self.m[l] = &self.m[l] * beta + d;
                &self.m[l] * eta
            }
            BeliefOptimizer::Nesterov { beta } => {
                self.m[l] = &self.m[l] * beta + d;
                (d + &self.m[l] * beta) * eta
            }
            BeliefOptimizer::Adam { beta1, beta2, eps } => {
                let g = -d;
                self.m[l] = &self.m[l] * beta1 + &g * (1.0 - beta1);
                self.s[l] = &self.s[l] * beta2 + g.square() * (1.0 - beta2);
                let m_hat = &self.m[l] / (1.0 - beta1.powi(self.t));
                let s_hat = &self.s[l] / (1.0 - beta2.powi(self.t));
                -(m_hat / (s_hat.sqrt() + eps)) * eta
            }
        }
    }

    fn sweep(&mut self) {
        self.t += 1;
    }

    /// `‖m‖₂` over the hidden beliefs.
    fn state_norm(&self) -> f64 {
        self.m[1..L].iter().map(sq).sum::<f64>().sqrt()
    }
}

/// What a hand relaxation gives.
struct Relaxed {
    v: Vec<Tensor>,
    eps: Vec<Tensor>,
    grads: HashMap<String, Tensor>,
    energy: Vec<f64>,
    update_norm: Vec<f64>,
    state_norm: Vec<f64>,
}

/// `n` Strict sweeps from `start`: `ε_L = ∂ℓ/∂f_L(v_{L-1})`, `ε_l = f_l(v_{l-1}) - v_l`,
/// `d_l = ε_l - J_{l+1}(v_l)ᵀ ε_{l+1}`, `v_l += Δv_l(d_l)`; then the parameter updates at
/// the final beliefs with the last sweep's errors.
fn hand_strict(
    h: &HandMlp,
    x: &Tensor,
    y: &Tensor,
    start: &[Tensor],
    eta: f64,
    rule: BeliefOptimizer,
    n: usize,
) -> Relaxed {
    let mut v: Vec<Tensor> = start.iter().map(|t| t.detach().copy()).collect();
    v[0] = x.shallow_clone();
    let mut opt = HandOpt::new(rule, &v);
    let mut eps: Vec<Tensor> = (0..=L).map(|_| Tensor::new()).collect();
    let (mut energy, mut update_norm, mut state_norm) = (vec![], vec![], vec![]);
    for _ in 0..n {
        let leaves: Vec<Tensor> = (0..L)
            .map(|l| {
                if l == 0 {
                    x.shallow_clone()
                } else {
                    v[l].detach().set_requires_grad(true)
                }
            })
            .collect();
        // preds[l] = f_l(v_{l-1}), preds[0] unused.
        let preds: Vec<Tensor> = std::iter::once(Tensor::new())
            .chain((1..=L).map(|l| h.f(l, &leaves[l - 1])))
            .collect();
        let out = preds[L].detach().set_requires_grad(true);
        let l_out = HandMlp::loss(&out, y);
        let mut e = l_out.double_value(&[]);
        eps[L] = grad_of(&l_out, &out);
        for l in 1..L {
            eps[l] = preds[l].detach() - &v[l];
            e += 0.5 * sq(&eps[l]);
        }
        energy.push(e);
        let dirs: Vec<Tensor> = (1..L)
            .map(|l| &eps[l] - grad_of(&(&preds[l + 1] * &eps[l + 1]).sum(F64), &leaves[l]))
            .collect();
        opt.sweep();
        let mut upd = 0.0;
        for l in 1..L {
            let delta = opt.delta(l, &dirs[l - 1], eta);
            upd += sq(&delta);
            v[l] = &v[l] + &delta;
        }
        update_norm.push(upd.sqrt());
        state_norm.push(opt.state_norm());
    }
    let grads = h.param_grads(&v, &eps);
    Relaxed {
        v,
        eps,
        grads,
        energy,
        update_norm,
        state_norm,
    }
}

/// `n` sweeps of FixedPred's literal loop: `ε_l = v̂_l - v_l`, `ε_L = ∂ℓ/∂v̂_L`,
/// `d_l = ε_l - J_{l+1}(v̂_l)ᵀ ε_{l+1}`, `v_l += Δv_l(d_l)`; the updates at `v̂`.
fn hand_fixed_pred(
    h: &HandMlp,
    x: &Tensor,
    y: &Tensor,
    vhat: &[Tensor],
    eta: f64,
    rule: BeliefOptimizer,
    n: usize,
) -> Relaxed {
    let mut v: Vec<Tensor> = vhat.iter().map(|t| t.detach().copy()).collect();
    v[0] = x.shallow_clone();
    let mut opt = HandOpt::new(rule, &v);
    let out = vhat[L].detach().set_requires_grad(true);
    let l_out = HandMlp::loss(&out, y);
    let loss_value = l_out.double_value(&[]);
    let mut eps: Vec<Tensor> = (0..=L).map(|_| Tensor::new()).collect();
    eps[L] = grad_of(&l_out, &out);
    let (mut energy, mut update_norm, mut state_norm) = (vec![], vec![], vec![]);
    for _ in 0..n {
        let mut e = loss_value;
        for l in 1..L {
            eps[l] = &vhat[l] - &v[l];
            e += 0.5 * sq(&eps[l]);
        }
        energy.push(e);
        let dirs: Vec<Tensor> = (1..L)
            .map(|l| {
                let a = vhat[l].detach().set_requires_grad(true);
                &eps[l] - grad_of(&(h.f(l + 1, &a) * &eps[l + 1]).sum(F64), &a)
            })
            .collect();
        opt.sweep();
        let mut upd = 0.0;
        for l in 1..L {
            let delta = opt.delta(l, &dirs[l - 1], eta);
            upd += sq(&delta);
            v[l] = &v[l] + &delta;
        }
        update_norm.push(upd.sqrt());
        state_norm.push(opt.state_norm());
    }
    let grads = h.param_grads(vhat, &eps);
    Relaxed {
        v,
        eps,
        grads,
        energy,
        update_norm,
        state_norm,
    }
}

/// The largest difference between the library's output (and `.grad`, and recorder) and a
/// hand relaxation.
fn worst_difference(
    out: &PcOutput,
    vs: &nn::VarStore,
    rec: &Recorder,
    hand: &Relaxed,
    what: &str,
) -> f64 {
    let mut worst: f64 = 0.0;
    let mut check = |name: String, e: f64| {
        assert!(e <= 1e-12, "{what}: {name} differs by {e:e}");
        worst = worst.max(e);
    };
    for l in 1..L {
        check(format!("v.{l}"), err(&out.v[l], &hand.v[l]));
    }
    for l in 1..=L {
        check(format!("eps.{l}"), err(&out.epsilon[l], &hand.eps[l]));
    }
    let got = grads(vs);
    for (name, want) in &hand.grads {
        check(format!("grad.{name}"), err(&got[name], want));
    }
    assert_eq!(rec.energy.len(), hand.energy.len(), "{what}: sweeps");
    for k in 0..hand.energy.len() {
        check(format!("energy[{k}]"), err_f(rec.energy[k], hand.energy[k]));
        check(
            format!("update_norm[{k}]"),
            err_f(rec.update_norm[k], hand.update_norm[k]),
        );
        check(
            format!("state_norm[{k}]"),
            err_f(rec.state_norm[k], hand.state_norm[k]),
        );
    }
    assert_eq!(rec.energy, out.report.energy, "{what}: report.energy");
    worst
}

#[test]
fn strict_first_sweeps_equal_the_update_equations() {
    let _rng = rng_lock();
    let (vs, seq, x, y) = setup("mlp", F64, CPU, 101);
    let h = HandMlp::of(&vs);
    let eta = 0.1;
    let vhat = PcInfer::new(ErrType::Exact)
        .run(&seq, &loss::mse, &x, &y)
        .unwrap()
        .vhat;
    // From v̂ (only ε_L ≠ 0 in the first sweep) and from perturbed beliefs (every error
    // non-zero from the first sweep on).
    tch::manual_seed(102);
    let perturbed: Vec<Tensor> = vhat.iter().map(|t| t + t.randn_like() * 0.3).collect();
    for rule in rules() {
        for (start, from_vhat) in [(&vhat, true), (&perturbed, false)] {
            let mut worst: f64 = 0.0;
            for n in 1..=3 {
                let mut rec = Recorder::default();
                let mut cfg = PcInfer::new(ErrType::Strict)
                    .eta(eta)
                    .n(n)
                    .belief_optimizer(rule)
                    .observer(&mut rec);
                if !from_vhat {
                    cfg = cfg.vinit(start);
                }
                let out = cfg.run(&seq, &loss::mse, &x, &y).unwrap();
                assert_eq!(out.report.iterations, n);
                assert_eq!(out.report.param_steps, 0);
                let hand = hand_strict(&h, &x, &y, start, eta, rule, n);
                let what = format!("{rule:?} from_vhat={from_vhat} n={n}");
                worst = worst.max(worst_difference(&out, &vs, &rec, &hand, &what));
            }
            eprintln!("Strict {rule:?} from_vhat={from_vhat}: worst difference {worst:.2e}");
        }
    }
}

#[test]
fn fixed_pred_literal_first_sweeps_equal_the_update_equations() {
    let _rng = rng_lock();
    let (vs, seq, x, y) = setup("mlp", F64, CPU, 103);
    let h = HandMlp::of(&vs);
    let eta = 0.2;
    for rule in rules() {
        let mut worst: f64 = 0.0;
        for n in 1..=3 {
            let mut rec = Recorder::default();
            let out = PcInfer::new(ErrType::FixedPred)
                .eta(eta)
                .n(n)
                .fixed_pred(FixedPredMode::Literal)
                .belief_optimizer(rule)
                .observer(&mut rec)
                .run(&seq, &loss::mse, &x, &y)
                .unwrap();
            let hand = hand_fixed_pred(&h, &x, &y, &out.vhat, eta, rule, n);
            let what = format!("FixedPred {rule:?} n={n}");
            worst = worst.max(worst_difference(&out, &vs, &rec, &hand, &what));
            // A belief optimizer other than plain steps selects the literal loop whatever
            // the mode: the same values bit for bit.
            if rule != BeliefOptimizer::Plain {
                let g_literal = flat(&grads(&vs));
                let auto = PcInfer::new(ErrType::FixedPred)
                    .eta(eta)
                    .n(n)
                    .belief_optimizer(rule)
                    .run(&seq, &loss::mse, &x, &y)
                    .unwrap();
                for l in 0..=L {
                    assert!(auto.v[l].equal(&out.v[l]), "{what}: v.{l}");
                    assert!(auto.epsilon[l].equal(&out.epsilon[l]), "{what}: eps.{l}");
                }
                assert!(flat(&grads(&vs)).equal(&g_literal), "{what}: grads");
            }
        }
        eprintln!("FixedPred literal {rule:?}: worst difference {worst:.2e}");
    }
}

/// Runs golden case `case` with the settings of the file and, if given, `rule`.
fn run_golden(
    case: &str,
    model: &str,
    err_type: ErrType,
    rule: Option<BeliefOptimizer>,
) -> (PcOutput, HashMap<String, Tensor>, Golden) {
    let g = Golden::load(case);
    let (vs, seq) = build(model, F64, CPU);
    load_params(&vs, &g);
    let layers = g.scalar("L") as usize;
    let vinit: Vec<Tensor> = (0..=layers)
        .filter(|l| g.has(&format!("vinit.{l}")))
        .map(|l| g.get(&format!("vinit.{l}")).shallow_clone())
        .collect();
    let mut cfg = PcInfer::new(err_type)
        .eta(g.scalar("eta"))
        .n(g.scalar("n") as usize);
    if !vinit.is_empty() {
        cfg = cfg.vinit(&vinit);
    }
    if let Some(r) = rule {
        cfg = cfg.belief_optimizer(r);
    }
    let out = cfg
        .run(&seq, &loss_for(model), g.get("x"), g.get("y"))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    (out, grads(&vs), g)
}

#[test]
fn explicit_plain_steps_equal_the_default_and_the_seed() {
    let _rng = rng_lock();
    for (case, model, err_type) in [
        ("mlp_strict", "mlp", ErrType::Strict),
        ("cnn_strict", "cnn", ErrType::Strict),
        ("pfree_strict", "pfree", ErrType::Strict),
        ("mlp_strict_vinit", "mlp", ErrType::Strict),
        ("pfree_strict_eta03_n7", "pfree", ErrType::Strict),
        ("mlp_fixedpred", "mlp", ErrType::FixedPred),
        ("mlp_fixedpred_eta05_n2", "mlp", ErrType::FixedPred),
    ] {
        let (plain, plain_grads, g) =
            run_golden(case, model, err_type, Some(BeliefOptimizer::Plain));
        let (default, default_grads, _) = run_golden(case, model, err_type, None);
        // In-process: bit for bit.
        for l in 0..plain.v.len() {
            assert!(plain.v[l].equal(&default.v[l]), "{case}: v.{l}");
            assert!(
                plain.epsilon[l].equal(&default.epsilon[l]),
                "{case}: eps.{l}"
            );
        }
        for (name, t) in &plain_grads {
            assert!(t.equal(&default_grads[name]), "{case}: grad.{name}");
        }
        assert_eq!(plain.report, default.report, "{case}");
        // Against the seed's values (another process): to 1e-9.
        let mut worst: f64 = 0.0;
        let mut cmp = |what: String, a: &Tensor, b: &Tensor| {
            let e = err(a, b);
            assert!(e <= GOLDEN_TOL, "{case}: {what} differs by {e:e}");
            worst = worst.max(e);
        };
        for l in 1..plain.v.len() {
            cmp(format!("v.{l}"), &plain.v[l], g.get(&format!("v.{l}")));
            cmp(
                format!("eps.{l}"),
                &plain.epsilon[l],
                g.get(&format!("eps.{l}")),
            );
        }
        for (name, t) in &plain_grads {
            cmp(format!("grad.{name}"), t, g.get(&format!("grad.{name}")));
        }
        eprintln!("{case}: explicit Plain = default bit for bit; against the seed {worst:.2e}");
    }
}

#[test]
fn zero_momentum_is_plain_steps_bit_for_bit() {
    let _rng = rng_lock();
    let (vs, seq, x, y) = setup("cnn", F64, CPU, 105);
    for policy in [OnDiverge::Error, OnDiverge::Backtrack] {
        let run = |rule| {
            let out = PcInfer::new(ErrType::Strict)
                .n(15)
                .on_diverge(policy)
                .belief_optimizer(rule)
                .run(&seq, &loss::cross_entropy, &x, &y)
                .unwrap();
            (out, flat(&grads(&vs)))
        };
        let (plain, g_plain) = run(BeliefOptimizer::Plain);
        for rule in [
            BeliefOptimizer::Momentum { beta: 0.0 },
            BeliefOptimizer::Nesterov { beta: 0.0 },
        ] {
            let (out, g) = run(rule);
            for l in 0..out.v.len() {
                assert!(out.v[l].equal(&plain.v[l]), "{rule:?}: v.{l}");
                assert!(out.epsilon[l].equal(&plain.epsilon[l]), "{rule:?}: eps.{l}");
            }
            assert!(g.equal(&g_plain), "{rule:?}: grads");
            assert_eq!(out.report.energy, plain.report.energy);
        }
    }
}

/// A tanh MLP 10 → 16 → 16 → 16 → 4 (4 PC layers) on a batch of 8: the energy's landscape is
/// ill-conditioned enough that plain steps of 0.05 need many sweeps.
fn deep_mlp() -> (nn::VarStore, Sequential, Tensor, Tensor) {
    tch::manual_seed(7);
    let mut vs = nn::VarStore::new(CPU);
    vs.set_kind(F64);
    let root = vs.root();
    let mut seq = Sequential::new(&vs);
    let mut inp = 10;
    for l in 0..3 {
        seq = seq.add(
            nn::seq()
                .add(nn::linear(
                    &root / l.to_string(),
                    inp,
                    16,
                    Default::default(),
                ))
                .add_fn(|x| x.tanh()),
        );
        inp = 16;
    }
    seq = seq.add(nn::linear(&root / "3", 16, 4, Default::default()));
    let x = Tensor::randn([8, 10], (F64, CPU));
    let y = Tensor::randn([8, 4], (F64, CPU));
    (vs, seq, x, y)
}

#[test]
fn momentum_nesterov_and_adam_converge_in_fewer_sweeps() {
    let _rng = rng_lock();
    let (_vs, seq, x, y) = deep_mlp();
    let eta = 0.05;
    // The minimum of the energy, to a far tighter tolerance.
    let reference = PcInfer::new(ErrType::Strict)
        .eta(eta)
        .n(20_000)
        .tol(1e-11)
        .belief_optimizer(BeliefOptimizer::Momentum { beta: 0.9 })
        .run(&seq, &loss::mse, &x, &y)
        .unwrap();
    assert!(matches!(
        reference.report.stop,
        StopReason::Converged { .. }
    ));
    let f_min = reference.report.final_energy.unwrap();
    let sweeps = |rule| {
        let out = PcInfer::new(ErrType::Strict)
            .eta(eta)
            .n(2000)
            .tol(1e-5)
            .belief_optimizer(rule)
            .run(&seq, &loss::mse, &x, &y)
            .unwrap();
        let k = match out.report.stop {
            StopReason::Converged { iteration, change } => {
                assert!(change < 1e-5);
                iteration
            }
            other => panic!("{rule:?}: expected Converged, got {other:?}"),
        };
        assert_eq!(out.report.iterations, k);
        let gap = out.report.final_energy.unwrap() - f_min;
        let dv = (1..seq.len())
            .map(|l| rel_err(&out.v[l], &reference.v[l]))
            .fold(0.0, f64::max);
        eprintln!("{rule:?}: converged in {k} sweeps, F - F* = {gap:.2e}, beliefs off by {dv:.2e}");
        (k, gap, dv)
    };
    let (plain, plain_gap, _) = sweeps(BeliefOptimizer::Plain);
    assert!(plain_gap >= -1e-12);
    for rule in [
        BeliefOptimizer::Momentum { beta: 0.9 },
        BeliefOptimizer::Nesterov { beta: 0.9 },
        BeliefOptimizer::adam(),
    ] {
        let (k, gap, dv) = sweeps(rule);
        assert!(
            4 * k <= plain,
            "{rule:?}: {k} sweeps, plain steps {plain}: expected at least 4 times fewer"
        );
        // A genuine convergence: at the minimum, closer to it than plain steps got.
        assert!(
            (-1e-12..1e-7).contains(&gap) && gap < plain_gap,
            "{rule:?}: F - F* = {gap:e}"
        );
        assert!(dv < 1e-3, "{rule:?}: beliefs off by {dv:e}");
    }
}

#[test]
fn backtracking_keeps_the_energy_non_increasing_for_every_optimizer() {
    let _rng = rng_lock();
    // A large step on the MLP: plain fixed steps diverge (tests/relaxation.rs).
    let (_vs, seq, x, y) = setup("mlp", F64, CPU, 41);
    let y = y * 3.0;
    let eta = 2.5;
    let mut total_backtracks = 0;
    for rule in rules() {
        let mut rec = Recorder::default();
        let out = PcInfer::new(ErrType::Strict)
            .eta(eta)
            .n(50)
            .on_diverge(OnDiverge::Backtrack)
            .belief_optimizer(rule)
            .observer(&mut rec)
            .run(&seq, &loss::mse, &x, &y)
            .unwrap_or_else(|e| panic!("{rule:?}: {e}"));
        let r = &out.report;
        let mut energies = r.energy.clone();
        energies.push(r.final_energy.unwrap());
        for w in energies.windows(2) {
            assert!(w[1] <= w[0], "{rule:?}: the energy rose: {energies:?}");
        }
        assert!(energies.last().unwrap() < &energies[0], "{rule:?}");
        assert_eq!(rec.energy, r.energy);
        assert_eq!(rec.eta.last().copied(), Some(r.final_eta));
        assert_eq!(
            r.final_eta,
            eta / 2f64.powi(r.backtracks as i32),
            "{rule:?}"
        );
        eprintln!(
            "{rule:?}: {} sweeps, {} backtracks, energy {:.4e} -> {:.4e}",
            r.iterations,
            r.backtracks,
            energies[0],
            energies.last().unwrap()
        );
        total_backtracks += r.backtracks;
    }
    assert!(
        total_backtracks > 0,
        "no step was rejected: pick a larger eta"
    );
}

#[test]
fn the_recorder_sees_update_and_state_norms_per_sweep() {
    let _rng = rng_lock();
    let (_vs, seq, x, y) = setup("pfree", F64, CPU, 107);
    let (n, eta) = (12, 0.05);
    let cases = [
        (ErrType::Strict, FixedPredMode::ClosedForm),
        (ErrType::FixedPred, FixedPredMode::Literal),
    ];
    for (err_type, mode) in cases {
        for rule in rules() {
            let mut rec = Recorder::default();
            PcInfer::new(err_type)
                .eta(eta)
                .n(n)
                .fixed_pred(mode)
                .belief_optimizer(rule)
                .observer(&mut rec)
                .run(&seq, &loss::cross_entropy, &x, &y)
                .unwrap();
            let what = format!("{err_type} {rule:?}");
            assert_eq!(rec.update_norm.len(), n, "{what}");
            assert_eq!(rec.state_norm.len(), n, "{what}");
            assert!(
                rec.update_norm.iter().all(|u| u.is_finite() && *u > 0.0),
                "{what}: {:?}",
                rec.update_norm
            );
            if rule == BeliefOptimizer::Plain {
                assert!(rec.state_norm.iter().all(|&s| s == 0.0), "{what}");
            } else {
                assert!(
                    rec.state_norm.iter().all(|s| s.is_finite() && *s > 0.0),
                    "{what}: {:?}",
                    rec.state_norm
                );
            }
            // Plain steps and momentum: ‖Δv‖ = η ‖d‖ and ‖Δv‖ = η ‖m‖, so in the first
            // sweep (m = d) both norms give the same ‖Δv‖ / η.
            if let BeliefOptimizer::Momentum { .. } = rule {
                let e = err_f(rec.update_norm[0], eta * rec.state_norm[0]);
                assert!(e < 1e-12, "{what}: {e:e}");
            }
        }
    }
    // FixedPred's closed form does not form the updates: NaN.
    let mut rec = Recorder::default();
    PcInfer::new(ErrType::FixedPred)
        .n(n)
        .observer(&mut rec)
        .run(&seq, &loss::cross_entropy, &x, &y)
        .unwrap();
    assert_eq!(rec.update_norm.len(), n);
    assert!(rec.update_norm.iter().all(|u| u.is_nan()));
    assert!(rec.state_norm.iter().all(|s| s.is_nan()));
}

/// Two copies of the MLP with the same parameters, in two stores.
fn twin_mlps(seed: i64) -> [(nn::VarStore, Sequential); 2] {
    let (vs_a, seq_a, _, _) = setup("mlp", F64, CPU, seed);
    let (mut vs_b, seq_b) = build("mlp", F64, CPU);
    vs_b.copy(&vs_a).unwrap();
    [(vs_a, seq_a), (vs_b, seq_b)]
}

fn mlp_data(seed: i64) -> (Tensor, Tensor) {
    let (_vs, _seq, x, y) = setup("mlp", F64, CPU, seed);
    (x, y)
}

type MakeOpt = fn(&nn::VarStore) -> nn::Optimizer;

fn optimizer_makers() -> [(&'static str, MakeOpt); 3] {
    [
        ("Sgd", |vs| nn::Sgd::default().build(vs, 0.05).unwrap()),
        ("Sgd+momentum", |vs| {
            nn::Sgd {
                momentum: 0.9,
                ..Default::default()
            }
            .build(vs, 0.05)
            .unwrap()
        }),
        ("Adam", |vs| nn::Adam::default().build(vs, 0.01).unwrap()),
    ]
}

/// The largest relative difference between the parameters of two stores.
fn param_difference(a: &nn::VarStore, b: &nn::VarStore) -> f64 {
    let vb = b.variables();
    a.variables()
        .iter()
        .map(|(name, t)| err(t, &vb[name]))
        .fold(0.0, f64::max)
}

/// The largest relative difference between the parameters (and `.grad`) of two stores.
fn store_difference(a: &nn::VarStore, b: &nn::VarStore) -> (f64, f64) {
    let (va, vb) = (a.variables(), b.variables());
    let mut worst = (0.0f64, 0.0f64);
    for (name, t) in &va {
        worst.0 = worst.0.max(err(t, &vb[name]));
        worst.1 = worst.1.max(err(&t.grad(), &vb[name].grad()));
    }
    worst
}

#[test]
fn incremental_with_one_sweep_is_a_strict_call_then_a_step() {
    let _rng = rng_lock();
    let (x, y) = mlp_data(111);
    for (name, make) in optimizer_makers() {
        for rule in [BeliefOptimizer::Plain, BeliefOptimizer::adam()] {
            let [(vs_a, seq_a), (vs_b, seq_b)] = twin_mlps(111);
            let mut opt_a = make(&vs_a);
            let mut opt_b = make(&vs_b);
            let a = PcInfer::new(ErrType::Strict)
                .n(1)
                .belief_optimizer(rule)
                .incremental(&mut opt_a)
                .run(&seq_a, &loss::mse, &x, &y)
                .unwrap();
            let b = PcInfer::new(ErrType::Strict)
                .n(1)
                .belief_optimizer(rule)
                .run(&seq_b, &loss::mse, &x, &y)
                .unwrap();
            opt_b.step();
            assert_eq!(a.report.param_steps, 1);
            assert_eq!(b.report.param_steps, 0);
            let (dp, dg) = store_difference(&vs_a, &vs_b);
            assert!(dp <= 1e-12 && dg <= 1e-12, "{name} {rule:?}: {dp:e} {dg:e}");
            for l in 1..a.v.len() {
                assert!(err(&a.v[l], &b.v[l]) <= 1e-12);
                assert!(err(&a.epsilon[l], &b.epsilon[l]) <= 1e-12);
            }
            // The step did change the parameters.
            let [(vs_0, _), _] = twin_mlps(111);
            assert!(param_difference(&vs_a, &vs_0) > 1e-6, "{name}: no step");
            eprintln!("{name} {rule:?}, n = 1: parameters differ by {dp:.2e}, grads by {dg:.2e}");
        }
    }
}

#[test]
fn incremental_with_n_sweeps_steps_n_times() {
    let _rng = rng_lock();
    let (x, y) = mlp_data(113);
    let n = 4;
    for (name, make) in optimizer_makers() {
        let [(vs_a, seq_a), (vs_b, seq_b)] = twin_mlps(113);
        let mut opt_a = make(&vs_a);
        let mut opt_b = make(&vs_b);
        let a = PcInfer::new(ErrType::Strict)
            .n(n)
            .incremental(&mut opt_a)
            .run(&seq_a, &loss::mse, &x, &y)
            .unwrap();
        assert_eq!(a.report.param_steps, n, "{name}");
        assert_eq!(a.report.iterations, n, "{name}");
        // The same as n one-sweep Strict calls, each from the beliefs the one before
        // reached and each followed by a step.
        let mut v: Option<Vec<Tensor>> = None;
        let mut energies = Vec::new();
        let mut last = None;
        for _ in 0..n {
            let mut cfg = PcInfer::new(ErrType::Strict).n(1);
            if let Some(v0) = &v {
                cfg = cfg.vinit(v0);
            }
            let out = cfg.run(&seq_b, &loss::mse, &x, &y).unwrap();
            opt_b.step();
            energies.push(out.report.energy[0]);
            v = Some(out.v.iter().map(|t| t.copy()).collect());
            last = Some(out);
        }
        let last = last.unwrap();
        let (dp, dg) = store_difference(&vs_a, &vs_b);
        assert!(dp <= 1e-12 && dg <= 1e-12, "{name}: {dp:e} {dg:e}");
        for l in 1..a.v.len() - 1 {
            assert!(err(&a.v[l], &last.v[l]) <= 1e-12, "{name}: v.{l}");
        }
        for l in 1..a.v.len() {
            assert!(
                err(&a.epsilon[l], &last.epsilon[l]) <= 1e-12,
                "{name}: eps.{l}"
            );
        }
        for (k, (e, f)) in a.report.energy.iter().zip(&energies).enumerate() {
            assert!(err_f(*e, *f) <= 1e-12, "{name}: energy[{k}] {e} vs {f}");
        }
        // n steps are not one step.
        let [(vs_c, seq_c), _] = twin_mlps(113);
        let mut opt_c = make(&vs_c);
        let c = PcInfer::new(ErrType::Strict)
            .n(1)
            .incremental(&mut opt_c)
            .run(&seq_c, &loss::mse, &x, &y)
            .unwrap();
        assert_eq!(c.report.param_steps, 1);
        let apart = param_difference(&vs_a, &vs_c);
        assert!(apart > 1e-6, "{name}: {apart:e}");
        eprintln!(
            "{name}, n = {n}: against {n} calls and steps, parameters {dp:.2e}, grads {dg:.2e}; \
             {apart:.2e} away from one step"
        );
    }
    // With a belief optimizer (its state kept across the parameter steps) and tol.
    for rule in [
        BeliefOptimizer::Momentum { beta: 0.5 },
        BeliefOptimizer::adam(),
    ] {
        let [(vs, seq), _] = twin_mlps(113);
        let mut opt = nn::Sgd::default().build(&vs, 0.05).unwrap();
        let out = PcInfer::new(ErrType::Strict)
            .eta(0.05)
            .n(500)
            .tol(1e-4)
            .belief_optimizer(rule)
            .incremental(&mut opt)
            .run(&seq, &loss::mse, &x, &y)
            .unwrap();
        assert!(
            matches!(out.report.stop, StopReason::Converged { .. }),
            "{rule:?}: {:?}",
            out.report.stop
        );
        assert_eq!(out.report.param_steps, out.report.iterations, "{rule:?}");
    }
}

/// `tanh(x Wᵀ + b)` that panics on its `fail_at`-th call and records, at every call, the sum
/// of the parameters in `watch`.
struct Flaky {
    lin: nn::Linear,
    watch: Vec<Tensor>,
    calls: Arc<AtomicUsize>,
    fail_at: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<f64>>>,
}

impl tch2pc::Layer for Flaky {
    fn layer_forward(&self, xs: &Tensor, _train: bool) -> Tensor {
        let k = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let w = tch::no_grad(|| {
            self.watch
                .iter()
                .map(|t| t.sum(F64).double_value(&[]))
                .sum::<f64>()
        });
        self.seen.lock().unwrap().push(w);
        if k == self.fail_at.load(Ordering::SeqCst) {
            panic!("flaky layer: call {k}");
        }
        xs.apply(&self.lin).tanh()
    }
}

struct FlakyMlp {
    vs: nn::VarStore,
    seq: Sequential,
    calls: Arc<AtomicUsize>,
    fail_at: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<f64>>>,
}

/// The MLP with a flaky second layer (never failing until `fail_at` is set).
fn flaky_mlp(seed: i64) -> FlakyMlp {
    tch::manual_seed(seed);
    let mut vs = nn::VarStore::new(CPU);
    vs.set_kind(F64);
    let root = vs.root();
    let calls = Arc::new(AtomicUsize::new(0));
    let fail_at = Arc::new(AtomicUsize::new(usize::MAX));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let first = nn::linear(&root / "0", 5, 8, Default::default());
    let second = nn::linear(&root / "1", 8, 6, Default::default());
    let third = nn::linear(&root / "2", 6, 3, Default::default());
    let seq = Sequential::new(&vs)
        .add(nn::seq().add(first).add_fn(|x| x.tanh()))
        .add_layer(Flaky {
            lin: second,
            watch: vs.trainable_variables(),
            calls: calls.clone(),
            fail_at: fail_at.clone(),
            seen: seen.clone(),
        })
        .add(third);
    FlakyMlp {
        vs,
        seq,
        calls,
        fail_at,
        seen,
    }
}

#[test]
fn incremental_error_mid_call_restores_parameters_and_grads() {
    let _rng = rng_lock();
    let (x, y) = mlp_data(115);
    for (name, make) in optimizer_makers() {
        // A node that fails: its third call comes after the first parameter step (calls: the
        // feed-forward pass, sweep 1, the re-evaluation after the step).
        let m = flaky_mlp(115);
        PcInfer::new(ErrType::Strict)
            .run(&m.seq, &loss::mse, &x, &y)
            .unwrap();
        let mut opt = make(&m.vs);
        m.calls.store(0, Ordering::SeqCst);
        m.fail_at.store(3, Ordering::SeqCst);
        let before = snapshot(&m.vs);
        let e = PcInfer::new(ErrType::Strict)
            .n(5)
            .incremental(&mut opt)
            .run(&m.seq, &loss::mse, &x, &y)
            .unwrap_err();
        assert!(
            matches!(e, PcError::Forward { layer: 2, .. }),
            "{name}: {e:?}"
        );
        let seen = m.seen.lock().unwrap().clone();
        let seen = &seen[seen.len() - 3..];
        assert_eq!(seen[0], seen[1], "{name}: no step before sweep 1");
        assert_ne!(
            seen[2], seen[0],
            "{name}: the error should come after a parameter step"
        );
        assert_same(&before, &snapshot(&m.vs));

        // A loss that turns NaN at its 4th call (the feed-forward pass, sweep 1, the
        // re-evaluation after step 1, sweep 2): NonFiniteBeliefs at sweep 2.
        let m = flaky_mlp(115);
        PcInfer::new(ErrType::Strict)
            .run(&m.seq, &loss::mse, &x, &y)
            .unwrap();
        let mut opt = make(&m.vs);
        let before = snapshot(&m.vs);
        let count = Rc::new(RefCell::new(0usize));
        let w = m.vs.variables()["2.weight"].shallow_clone();
        let weights = Rc::new(RefCell::new(Vec::new()));
        let nan_loss = {
            let (count, weights) = (count.clone(), weights.clone());
            move |o: &Tensor, t: &Tensor| {
                *count.borrow_mut() += 1;
                weights
                    .borrow_mut()
                    .push(tch::no_grad(|| w.sum(F64).double_value(&[])));
                let l = loss::mse(o, t);
                if *count.borrow() >= 4 {
                    l * f64::NAN
                } else {
                    l
                }
            }
        };
        let e = PcInfer::new(ErrType::Strict)
            .n(5)
            .incremental(&mut opt)
            .run(&m.seq, &nan_loss, &x, &y)
            .unwrap_err();
        assert!(
            matches!(e, PcError::NonFiniteBeliefs { iteration: 2, .. }),
            "{name}: {e:?}"
        );
        assert_eq!(*count.borrow(), 4);
        let w = weights.borrow();
        assert_ne!(
            w[2], w[0],
            "{name}: the error should come after a parameter step"
        );
        assert_same(&before, &snapshot(&m.vs));
        eprintln!("{name}: restored after {e}");
    }
}

#[test]
fn incremental_error_with_no_grad_before_restores_parameters_and_unset_grads() {
    let _rng = rng_lock();
    // A fresh store: no .grad yet. The parameters come back bit for bit, and the .grad that
    // the first step created is unset again (through the optimizer's `zero_grad`, libtorch's
    // `set_to_none`): every .grad is exactly as before the call, undefined.
    let (x, y) = mlp_data(117);
    let m = flaky_mlp(117);
    let mut opt = nn::Sgd::default().build(&m.vs, 0.1).unwrap();
    m.fail_at.store(3, Ordering::SeqCst);
    let before = snapshot(&m.vs);
    assert!(before.iter().all(|(_, _, g)| g.is_none()));
    let e = PcInfer::new(ErrType::Strict)
        .n(5)
        .incremental(&mut opt)
        .run(&m.seq, &loss::mse, &x, &y)
        .unwrap_err();
    assert!(matches!(e, PcError::Forward { layer: 2, .. }), "{e:?}");
    assert_same(&before, &snapshot(&m.vs));
}

#[test]
fn incremental_needs_strict_and_no_relax_kind() {
    let _rng = rng_lock();
    let (vs, seq, x, y) = setup("mlp", F64, CPU, 119);
    PcInfer::new(ErrType::Strict)
        .run(&seq, &loss::mse, &x, &y)
        .unwrap();
    let mut opt = nn::Adam::default().build(&vs, 0.01).unwrap();
    let before = snapshot(&vs);
    fn config<'a>(what: &str) -> PcInfer<'a> {
        match what {
            "FixedPred" => PcInfer::new(ErrType::FixedPred),
            "FixedPred literal" => {
                PcInfer::new(ErrType::FixedPred).fixed_pred(FixedPredMode::Literal)
            }
            "Exact" => PcInfer::new(ErrType::Exact),
            _ => PcInfer::new(ErrType::Strict).relax_kind(F64),
        }
    }
    for what in ["FixedPred", "FixedPred literal", "Exact", "relax_kind"] {
        let e = config(what)
            .incremental(&mut opt)
            .run(&seq, &loss::mse, &x, &y)
            .unwrap_err();
        assert!(matches!(e, PcError::InvalidConfig(_)), "{what}: {e:?}");
        assert_same(&before, &snapshot(&vs));
    }
    // The optimizer was not stepped: its first step now equals that of a fresh Adam.
    let [(vs_b, seq_b), _] = twin_mlps(119);
    PcInfer::new(ErrType::Strict)
        .run(&seq_b, &loss::mse, &x, &y)
        .unwrap();
    let mut opt_b = nn::Adam::default().build(&vs_b, 0.01).unwrap();
    opt.step();
    opt_b.step();
    assert_eq!(param_difference(&vs, &vs_b), 0.0);
}

/// Settings out of range, each with what it breaks.
fn bad_rules() -> Vec<BeliefOptimizer> {
    use BeliefOptimizer::*;
    let mut v = Vec::new();
    for b in [
        -0.1,
        -1e-300,
        1.0,
        1.5,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        v.push(Momentum { beta: b });
        v.push(Nesterov { beta: b });
        v.push(Adam {
            beta1: b,
            beta2: 0.999,
            eps: 1e-8,
        });
        v.push(Adam {
            beta1: 0.9,
            beta2: b,
            eps: 1e-8,
        });
    }
    for e in [0.0, -0.0, -1e-8, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        v.push(Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: e,
        });
    }
    v
}

#[test]
fn bad_belief_optimizer_settings_are_rejected_before_anything_changes() {
    let _rng = rng_lock();
    let (vs, seq, x, y) = setup("mlp", F64, CPU, 121);
    PcInfer::new(ErrType::Strict)
        .run(&seq, &loss::mse, &x, &y)
        .unwrap();
    let before = snapshot(&vs);
    let mut opt = nn::Sgd::default().build(&vs, 0.1).unwrap();
    for rule in bad_rules() {
        assert!(
            matches!(rule.validate(), Err(PcError::InvalidConfig(_))),
            "{rule:?}"
        );
        for (what, err_type, mode) in [
            ("Strict", ErrType::Strict, FixedPredMode::ClosedForm),
            ("FixedPred", ErrType::FixedPred, FixedPredMode::ClosedForm),
            (
                "FixedPred literal",
                ErrType::FixedPred,
                FixedPredMode::Literal,
            ),
        ] {
            let mut rec = Recorder::default();
            let e = PcInfer::new(err_type)
                .fixed_pred(mode)
                .belief_optimizer(rule)
                .observer(&mut rec)
                .run(&seq, &loss::mse, &x, &y)
                .unwrap_err();
            assert!(
                matches!(&e, PcError::InvalidConfig(m) if m.contains("beta") || m.contains("eps")),
                "{what} {rule:?}: {e:?}"
            );
            assert!(rec.energy.is_empty(), "{what} {rule:?}: a sweep ran");
            assert_same(&before, &snapshot(&vs));
        }
        let e = PcInfer::new(ErrType::Strict)
            .belief_optimizer(rule)
            .incremental(&mut opt)
            .run(&seq, &loss::mse, &x, &y)
            .unwrap_err();
        assert!(
            matches!(e, PcError::InvalidConfig(_)),
            "incremental {rule:?}: {e:?}"
        );
        assert_same(&before, &snapshot(&vs));
    }
    // The edges of the ranges are accepted.
    for rule in [
        BeliefOptimizer::Momentum { beta: 0.0 },
        BeliefOptimizer::Nesterov { beta: 0.999_999 },
        BeliefOptimizer::Adam {
            beta1: 0.0,
            beta2: 0.0,
            eps: f64::MIN_POSITIVE,
        },
    ] {
        assert!(rule.validate().is_ok(), "{rule:?}");
        PcInfer::new(ErrType::Strict)
            .n(3)
            .belief_optimizer(rule)
            .run(&seq, &loss::mse, &x, &y)
            .unwrap_or_else(|e| panic!("{rule:?}: {e}"));
    }
}
