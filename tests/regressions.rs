//! Defects found by trying the library as a new user, each with its right value.

use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use tch2pc::{loss, ErrType, FixedPredMode, Graph, PcError, PcInfer, StopReason};

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).abs().max().double_value(&[]);
    d / b.abs().max().double_value(&[]).max(1e-300)
}

/// A node whose value is its parent's tensor (dropout in evaluation mode returns its input)
/// while the parent has another child: Exact's ε of that node is `∂ℓ/∂` of the node alone,
/// and FixedPred's closed forms equal the literal loop.
#[test]
fn a_node_returning_its_input_keeps_its_own_error() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    let root = vs.root();
    tch::manual_seed(3);
    let mut g = Graph::new(&vs);
    let h1 = g.add(
        g.input(),
        nn::linear(&root / "h1", 4, 5, Default::default()),
    );
    let d = g.add_t(h1, nn::func_t(|x, t| x.dropout(0.3, t)));
    let s = g.add_fn(&[d, h1], |xs: &[Tensor]| &xs[0] + &xs[1]);
    let lin = nn::linear(&root / "out", 5, 3, Default::default());
    g.add_fn(&[s], move |xs: &[Tensor]| lin.forward(&xs[0].tanh()));
    g.eval();
    let x = Tensor::randn([6, 4], (Kind::Double, Device::Cpu));
    let y = Tensor::randn([6, 3], (Kind::Double, Device::Cpu));
    let ex = PcInfer::new(ErrType::Exact)
        .run(&g, &loss::mse, &x, &y)
        .unwrap();
    // ∂ℓ/∂d = ∂ℓ/∂s (s = d + h1), and ∂ℓ/∂h1 = 2 ∂ℓ/∂s.
    assert!(rel(&ex.epsilon[2], &ex.epsilon[3]) < 1e-12);
    assert!(rel(&ex.epsilon[1], &(&ex.epsilon[3] * 2.0)) < 1e-12);
    for eta in [0.5, 1.0] {
        for n in [1, 2, 3, 5] {
            let run = |mode| {
                PcInfer::new(ErrType::FixedPred)
                    .eta(eta)
                    .n(n)
                    .fixed_pred(mode)
                    .run(&g, &loss::mse, &x, &y)
                    .unwrap()
            };
            let lit = run(FixedPredMode::Literal);
            for mode in [FixedPredMode::ClosedForm, FixedPredMode::Graded] {
                let cf = run(mode);
                for i in 1..cf.v.len() {
                    let scale = lit.vhat[i].abs().max().double_value(&[]);
                    let dv = (&cf.v[i] - &lit.v[i]).abs().max().double_value(&[]);
                    let de = (&cf.epsilon[i] - &lit.epsilon[i])
                        .abs()
                        .max()
                        .double_value(&[]);
                    assert!(
                        dv < 1e-12 * scale.max(1.0) && de < 1e-12,
                        "{mode:?} eta {eta} n {n} node {i}"
                    );
                }
            }
        }
    }
}

/// `alignment` writes nothing, also when the configuration carries an incremental optimizer.
#[test]
fn alignment_does_not_step_an_incremental_optimizer() {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let mut g = Graph::new(&vs);
    let h = g.add(g.input(), nn::linear(&root / "a", 3, 4, Default::default()));
    g.add(h, nn::linear(&root / "b", 4, 2, Default::default()));
    let x = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
    let y = Tensor::randn([5, 2], (Kind::Float, Device::Cpu));
    let mut opt = nn::Sgd::default().build(&vs, 0.5).unwrap();
    let before: Vec<Tensor> = vs.trainable_variables().iter().map(|t| t.copy()).collect();
    PcInfer::new(ErrType::Strict)
        .n(3)
        .incremental(&mut opt)
        .alignment(&g, &loss::mse, &x, &y)
        .unwrap();
    for (a, b) in before.iter().zip(vs.trainable_variables()) {
        assert!(a.equal(&b));
        assert!(!b.grad().defined());
    }
}

/// An undefined `x` is an error, not a panic; a huge `n` with a tolerance is not a crash.
#[test]
fn undefined_input_and_huge_n() {
    let vs = nn::VarStore::new(Device::Cpu);
    let mut g = Graph::new(&vs);
    let h = g.add(
        g.input(),
        nn::linear(vs.root() / "a", 3, 4, Default::default()),
    );
    g.add_fn(&[h], |xs: &[Tensor]| xs[0].tanh());
    let y = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
    for e in [
        PcInfer::new(ErrType::Exact)
            .run(&g, &loss::mse, &Tensor::default(), &y)
            .unwrap_err(),
        PcInfer::new(ErrType::Exact)
            .alignment(&g, &loss::mse, &Tensor::default(), &y)
            .unwrap_err(),
    ] {
        assert!(matches!(e, PcError::InvalidConfig(_)), "{e:?}");
    }
    let x = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
    let out = PcInfer::new(ErrType::Strict)
        .n(usize::MAX)
        .tol(1e-3)
        .run(&g, &loss::mse, &x, &y)
        .unwrap();
    assert!(matches!(out.report.stop, StopReason::Converged { .. }));
}

fn small_chain(vs: &nn::VarStore) -> tch2pc::Sequential {
    let root = vs.root();
    tch2pc::Sequential::new(vs)
        .add(nn::linear(&root / "0", 4, 6, Default::default()))
        .add_fn(|x| x.tanh())
        .add(nn::linear(&root / "2", 6, 3, Default::default()))
}

/// An observer that panics stops the call with `PcError::Observer` (no panic escapes), and
/// nothing is written: parameters and `.grad` as before, also under incremental PC.
#[test]
fn a_panicking_observer_is_an_error_and_writes_nothing() {
    struct Bomb;
    impl tch2pc::Observer for Bomb {
        fn observe(&mut self, it: &tch2pc::Iteration<'_>) {
            if it.iteration == 2 {
                panic!("observer bomb");
            }
        }
    }
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    tch::manual_seed(11);
    let model = small_chain(&vs);
    let x = Tensor::randn([5, 4], (Kind::Double, Device::Cpu));
    let y = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
    PcInfer::new(ErrType::Exact)
        .run(&model, &loss::mse, &x, &y)
        .unwrap();
    let before: Vec<(Tensor, Tensor)> = vs
        .trainable_variables()
        .iter()
        .map(|v| (v.copy(), v.grad().copy()))
        .collect();
    let mut opt = nn::Sgd::default().build(&vs, 0.1).unwrap();
    for (err_type, incremental) in [
        (ErrType::Strict, false),
        (ErrType::FixedPred, false),
        (ErrType::Strict, true),
    ] {
        let mut bomb = Bomb;
        let mut cfg = PcInfer::new(err_type)
            .eta(0.1)
            .n(5)
            .fixed_pred(FixedPredMode::Literal)
            .observer(&mut bomb);
        if incremental {
            cfg = cfg.incremental(&mut opt);
        }
        match cfg.run(&model, &loss::mse, &x, &y) {
            Err(PcError::Observer { iteration, message }) => {
                assert_eq!(iteration, 2, "{err_type:?}");
                assert!(message.contains("observer bomb"), "{message}");
            }
            other => panic!("{err_type:?}: expected PcError::Observer, got {other:?}"),
        }
        for ((value, grad), v) in before.iter().zip(vs.trainable_variables()) {
            assert!(
                v.equal(value),
                "{err_type:?} incremental {incremental}: a parameter changed"
            );
            assert!(v.grad().equal(grad), "{err_type:?}: a .grad changed");
        }
    }
}

/// `vinit[0]` is ignored by Strict and may be undefined: the result equals a call with
/// `vinit[0] = x`, value for value.
#[test]
fn an_undefined_vinit_0_is_ignored() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    tch::manual_seed(12);
    let model = small_chain(&vs);
    let x = Tensor::randn([5, 4], (Kind::Double, Device::Cpu));
    let y = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
    let ff = PcInfer::new(ErrType::Exact)
        .run(&model, &loss::mse, &x, &y)
        .unwrap();
    let mut v0: Vec<Tensor> = ff.v.iter().map(|t| t.copy()).collect();
    let with_x = PcInfer::new(ErrType::Strict)
        .eta(0.1)
        .n(4)
        .vinit(&v0)
        .run(&model, &loss::mse, &x, &y)
        .unwrap();
    v0[0] = Tensor::default();
    let without = PcInfer::new(ErrType::Strict)
        .eta(0.1)
        .n(4)
        .vinit(&v0)
        .run(&model, &loss::mse, &x, &y)
        .unwrap();
    for i in 0..with_x.v.len() {
        assert!(without.v[i].equal(&with_x.v[i]), "v[{i}]");
        assert!(without.epsilon[i].equal(&with_x.epsilon[i]), "epsilon[{i}]");
    }
    assert!(without.v[0].equal(&x));
}

/// Exact's beliefs are `v̂ − ε` exactly, each its own tensor: writing into one leaves the
/// others as they were.
#[test]
fn exact_beliefs_are_independent_tensors() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    tch::manual_seed(13);
    let model = small_chain(&vs);
    let x = Tensor::randn([5, 4], (Kind::Double, Device::Cpu));
    let y = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
    let out = PcInfer::new(ErrType::Exact)
        .run(&model, &loss::mse, &x, &y)
        .unwrap();
    for i in 1..out.v.len() {
        assert!(out.v[i].equal(&(&out.vhat[i] - &out.epsilon[i])), "v[{i}]");
    }
    let keep: Vec<Tensor> = out.v.iter().map(|t| t.copy()).collect();
    let mut v1 = out.v[1].shallow_clone();
    let _ = v1.fill_(f64::NAN);
    for (i, (v, kept)) in out.v.iter().zip(&keep).enumerate().skip(2) {
        assert!(v.equal(kept), "v[{i}] changed when v[1] was written");
    }
}

/// A node that writes into its parent's value in place (`relu_`) is refused with a clear
/// `PcError::Forward` by every algorithm (Exact used to return errors of the modified
/// value), and nothing is written.
#[test]
fn a_node_writing_into_its_input_is_an_error() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    tch::manual_seed(14);
    let root = vs.root();
    let model = tch2pc::Sequential::new(&vs)
        .add(nn::linear(&root / "0", 4, 6, Default::default()))
        .add_fn(|x| {
            let mut y = x.shallow_clone();
            y.relu_()
        })
        .add(nn::linear(&root / "2", 6, 3, Default::default()));
    let x = Tensor::randn([5, 4], (Kind::Double, Device::Cpu));
    let y = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
    let before: Vec<Tensor> = vs.trainable_variables().iter().map(|v| v.copy()).collect();
    for err_type in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        match PcInfer::new(err_type)
            .eta(0.1)
            .n(3)
            .run(&model, &loss::mse, &x, &y)
        {
            Err(PcError::Forward { layer, message, .. }) => {
                assert_eq!(layer, 2, "{err_type:?}");
                // Strict's beliefs are autograd leaves: libtorch refuses the write itself.
                assert!(
                    message.contains("in place") || message.contains("in-place"),
                    "{err_type:?}: {message}"
                );
            }
            other => panic!("{err_type:?}: expected PcError::Forward, got {other:?}"),
        }
        for (v, b) in vs.trainable_variables().iter().zip(&before) {
            assert!(
                v.equal(b) && !v.grad().defined(),
                "{err_type:?}: something was written"
            );
        }
    }
}

/// A BatchNorm in training mode on a batch of one example (one value per channel) would
/// leave a NaN running variance; the call refuses with `PcError::NonFiniteBuffer` and
/// writes nothing: buffers, parameters and `.grad` as before. A batch of two trains.
#[test]
fn batch_norm_on_one_example_is_refused_before_its_nan_statistics_land() {
    let mut vs = nn::VarStore::new(Device::Cpu);
    tch::manual_seed(15);
    let root = vs.root();
    let model = tch2pc::Sequential::new(&vs)
        .add(nn::linear(&root / "0", 4, 6, Default::default()))
        .add_t(nn::batch_norm1d(&root / "bn", 6, Default::default()))
        .add_fn(|x| x.tanh())
        .add(nn::linear(&root / "2", 6, 3, Default::default()));
    vs.set_kind(Kind::Double);
    let snapshot = |vs: &nn::VarStore| -> Vec<(String, Tensor)> {
        let mut all: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.copy()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    };
    let before = snapshot(&vs);
    let x = Tensor::randn([1, 4], (Kind::Double, Device::Cpu));
    let y = Tensor::randn([1, 3], (Kind::Double, Device::Cpu));
    for err_type in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        match PcInfer::new(err_type)
            .eta(0.1)
            .n(3)
            .run(&model, &loss::mse, &x, &y)
        {
            Err(PcError::NonFiniteBuffer(name)) => {
                assert!(name.contains("running_var"), "{err_type:?}: {name}")
            }
            other => panic!("{err_type:?}: expected NonFiniteBuffer, got {other:?}"),
        }
        for ((k, a), (_, b)) in snapshot(&vs).iter().zip(&before) {
            assert!(a.equal(b), "{err_type:?}: {k} changed");
        }
        for v in vs.trainable_variables() {
            assert!(!v.grad().defined(), "{err_type:?}: a .grad was written");
        }
    }
    let x2 = Tensor::randn([2, 4], (Kind::Double, Device::Cpu));
    let y2 = Tensor::randn([2, 3], (Kind::Double, Device::Cpu));
    PcInfer::new(ErrType::Exact)
        .run(&model, &loss::mse, &x2, &y2)
        .unwrap();
    for (k, v) in vs.variables() {
        assert!(
            v.isfinite().all().int64_value(&[]) != 0,
            "{k} not finite after a batch of two"
        );
    }
}

/// Settings whose scalars overflow the model's dtype (FixedPred's closed form at eta 50
/// needs gradient scales beyond float32; Strict at eta 1e39) are errors, not panics (tch
/// panics on some libtorch errors of ops that take a Scalar), and nothing is written.
#[test]
fn scalars_beyond_the_dtype_are_errors_not_panics() {
    let vs = nn::VarStore::new(Device::Cpu);
    tch::manual_seed(16);
    let root = vs.root();
    let mut model = tch2pc::Sequential::new(&vs);
    for l in 0..4 {
        model = model
            .add(nn::linear(&root / l, 6, 6, Default::default()))
            .add_fn(|x| x.tanh());
    }
    let x = Tensor::randn([5, 6], (Kind::Float, Device::Cpu));
    let y = Tensor::randn([5, 6], (Kind::Float, Device::Cpu));
    let before: Vec<Tensor> = vs.trainable_variables().iter().map(|v| v.copy()).collect();
    let cases = [
        (ErrType::FixedPred, 50.0, 24),
        (ErrType::FixedPred, 1e39, 3),
        (ErrType::Strict, 1e39, 3),
    ];
    for (err_type, eta, n) in cases {
        let r = PcInfer::new(err_type)
            .eta(eta)
            .n(n)
            .run(&model, &loss::mse, &x, &y);
        assert!(r.is_err(), "{err_type:?} eta {eta} n {n}: {r:?}");
        if let (ErrType::FixedPred, Err(e)) = (err_type, &r) {
            assert!(e.to_string().contains("beyond the range of Float"), "{e}");
        }
        for (v, b) in vs.trainable_variables().iter().zip(&before) {
            assert!(v.equal(b) && !v.grad().defined(), "{err_type:?}: written");
        }
    }
}

/// FixedPred's closed form records one energy per sweep: an absurd `n` is a clear error
/// (not a hang or an out-of-memory abort), a large one works.
#[test]
fn fixedpred_closed_form_with_an_absurd_n_is_an_error() {
    let vs = nn::VarStore::new(Device::Cpu);
    tch::manual_seed(17);
    let model = small_chain(&vs);
    let x = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
    let y = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
    for mode in [FixedPredMode::ClosedForm, FixedPredMode::Graded] {
        let r = PcInfer::new(ErrType::FixedPred)
            .n(usize::MAX)
            .fixed_pred(mode)
            .run(&model, &loss::mse, &x, &y);
        assert!(
            matches!(r, Err(PcError::InvalidConfig(_))),
            "{mode:?}: {r:?}"
        );
        for v in vs.trainable_variables() {
            assert!(!v.grad().defined(), "{mode:?}: a .grad was written");
        }
    }
    let out = PcInfer::new(ErrType::FixedPred)
        .n(100_000)
        .run(&model, &loss::mse, &x, &y)
        .unwrap();
    assert_eq!(out.report.energy.len(), 100_000);
}

/// `y`'s dtype is checked against the model's output, not against `x`: a model that
/// changes dtype on the way (float32 in, float64 out) trains with a float64 target, and a
/// float32 target is a `DtypeMismatch` naming the output's dtype. A `vinit` of the wrong
/// dtype is named as such, also with token-id inputs.
#[test]
fn target_and_vinit_dtypes_are_checked_against_the_model_values() {
    let vs = nn::VarStore::new(Device::Cpu);
    tch::manual_seed(18);
    let model = small_chain(&vs).add_fn(|t| t.to_kind(Kind::Double));
    let x = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
    let y64 = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
    let out = PcInfer::new(ErrType::Exact)
        .run(&model, &loss::mse, &x, &y64)
        .unwrap();
    assert_eq!(out.vhat[4].kind(), Kind::Double);
    assert_eq!(out.epsilon[4].kind(), Kind::Double);
    match PcInfer::new(ErrType::Exact).run(&model, &loss::mse, &x, &y64.to_kind(Kind::Float)) {
        Err(PcError::DtypeMismatch {
            what,
            expected,
            found,
        }) => {
            assert_eq!(
                (what.as_str(), expected, found),
                ("y", Kind::Double, Kind::Float)
            );
        }
        other => panic!("expected DtypeMismatch for y, got {other:?}"),
    }

    let mut vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let model = tch2pc::Sequential::new(&vs)
        .add(nn::embedding(&root / "emb", 10, 4, Default::default()))
        .add_fn(|t| t.mean_dim(1, false, None::<Kind>))
        .add(nn::linear(&root / "out", 4, 3, Default::default()));
    vs.set_kind(Kind::Double);
    let ids = Tensor::randint(10, [5, 7], (Kind::Int64, Device::Cpu));
    let y = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
    let ff = PcInfer::new(ErrType::Exact)
        .run(&model, &loss::mse, &ids, &y)
        .unwrap();
    let mut v0: Vec<Tensor> = ff.v.iter().map(|t| t.copy()).collect();
    v0[1] = v0[1].to_kind(Kind::Float);
    match PcInfer::new(ErrType::Strict)
        .n(3)
        .vinit(&v0)
        .run(&model, &loss::mse, &ids, &y)
    {
        Err(PcError::DtypeMismatch { what, expected, .. }) => {
            assert_eq!((what.as_str(), expected), ("vinit[1]", Kind::Double));
        }
        other => panic!("expected DtypeMismatch for vinit[1], got {other:?}"),
    }
}
