//! Bad input: a descriptive error, and parameters and gradients exactly as before.

mod common;

use common::*;
use tch::{nn, Device, Kind, Tensor};
use tch2pc::{loss, pc_infer, ErrType, PcError, PcInfer, Sequential};

const F64: Kind = Kind::Double;
const CPU: Device = Device::Cpu;

/// Runs `f` after a successful call (so that gradients exist), and asserts that it fails
/// with an error satisfying `check` and leaves parameters and gradients untouched.
fn assert_rejected(
    model: &str,
    f: impl FnOnce(&Sequential, &Tensor, &Tensor) -> tch2pc::Result<tch2pc::PcOutput>,
    check: impl FnOnce(&PcError) -> bool,
) {
    let (vs, seq, x, y) = setup(model, F64, CPU, 31);
    pc_infer(&seq, &loss_for(model), &x, &y, ErrType::Exact, 0.1, 1, None).unwrap();
    let before = snapshot(&vs);
    let err = f(&seq, &x, &y).expect_err("the call should fail");
    assert!(check(&err), "unexpected error: {err:?}");
    assert!(!err.to_string().is_empty());
    assert_same(&before, &snapshot(&vs));
}

#[test]
fn x_that_does_not_fit_the_model() {
    let _rng = rng_lock();
    assert_rejected(
        "mlp",
        |m, _x, y| {
            pc_infer(
                m,
                &loss::mse,
                &Tensor::randn([4, 7], (F64, CPU)),
                y,
                ErrType::Strict,
                0.1,
                5,
                None,
            )
        },
        |e| {
            matches!(
                e,
                PcError::Forward {
                    layer: 1,
                    layers: 3,
                    ..
                }
            )
        },
    );
    assert_rejected(
        "cnn",
        |m, _x, y| {
            pc_infer(
                m,
                &loss::cross_entropy,
                &Tensor::randn([5, 2, 10, 10], (F64, CPU)),
                y,
                ErrType::FixedPred,
                0.1,
                5,
                None,
            )
        },
        |e| matches!(e, PcError::Forward { layer: 1, .. }),
    );
}

#[test]
fn y_that_does_not_fit_the_loss() {
    let _rng = rng_lock();
    for err in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        assert_rejected(
            "mlp",
            |m, x, _y| {
                pc_infer(
                    m,
                    &loss::mse,
                    x,
                    &Tensor::randn([4, 2], (F64, CPU)),
                    err,
                    0.1,
                    5,
                    None,
                )
            },
            |e| matches!(e, PcError::ShapeMismatch { what, .. } if what.contains("MSE target")),
        );
        assert_rejected(
            "cnn",
            |m, x, _y| {
                pc_infer(
                    m,
                    &loss::cross_entropy,
                    x,
                    &Tensor::from_slice(&[0i64, 1]),
                    err,
                    0.1,
                    5,
                    None,
                )
            },
            |e| matches!(e, PcError::ShapeMismatch { .. }),
        );
    }
    // A user loss that panics on the shapes (tch's infallible methods): a Loss error.
    assert_rejected(
        "mlp",
        |m, x, _y| {
            let y = Tensor::randn([4, 2], (F64, CPU));
            pc_infer(
                m,
                &|o: &Tensor, t: &Tensor| (o - t).square().mean(None::<Kind>),
                x,
                &y,
                ErrType::Exact,
                0.1,
                1,
                None,
            )
        },
        |e| matches!(e, PcError::Loss { .. }),
    );
}

#[test]
fn dtype_mismatches() {
    let _rng = rng_lock();
    assert_rejected(
        "mlp",
        |m, x, y| {
            pc_infer(
                m,
                &loss::mse,
                &x.to_kind(Kind::Float),
                y,
                ErrType::Exact,
                0.1,
                1,
                None,
            )
        },
        |e| matches!(e, PcError::DtypeMismatch { what, expected: Kind::Double, found: Kind::Float } if what == "x"),
    );
    assert_rejected(
        "mlp",
        |m, x, y| {
            pc_infer(
                m,
                &loss::mse,
                x,
                &y.to_kind(Kind::Float),
                ErrType::Strict,
                0.1,
                3,
                None,
            )
        },
        |e| matches!(e, PcError::DtypeMismatch { what, .. } if what == "y"),
    );
    assert_rejected(
        "cnn",
        |m, x, y| {
            pc_infer(
                m,
                &loss::cross_entropy,
                x,
                &y.to_kind(Kind::Bool),
                ErrType::Strict,
                0.1,
                3,
                None,
            )
        },
        |e| matches!(e, PcError::DtypeMismatch { .. }),
    );
    assert_rejected(
        "mlp",
        |m, x, y| {
            pc_infer(
                m,
                &loss::mse,
                &x.to_kind(Kind::Int64),
                y,
                ErrType::Exact,
                0.1,
                1,
                None,
            )
        },
        // Integer inputs are accepted when node 1 maps them to floats (token ids); a linear
        // layer cannot take them: the node's error says so.
        |e| matches!(e, PcError::Forward { layer: 1, .. }),
    );
}

#[test]
fn bad_eta_and_n() {
    let _rng = rng_lock();
    for eta in [f64::NAN, f64::INFINITY, 0.0, -0.1] {
        // Exact does not use eta and does not check it: the same call succeeds.
        let (_vs, seq, x, y) = setup("mlp", F64, CPU, 1);
        pc_infer(&seq, &loss::mse, &x, &y, ErrType::Exact, eta, 5, None).unwrap();
        for err in [ErrType::FixedPred, ErrType::Strict] {
            assert_rejected(
                "mlp",
                |m, x, y| pc_infer(m, &loss::mse, x, y, err, eta, 5, None),
                |e| matches!(e, PcError::InvalidEta(_)),
            );
        }
    }
    for err in [ErrType::FixedPred, ErrType::Strict] {
        assert_rejected(
            "mlp",
            |m, x, y| pc_infer(m, &loss::mse, x, y, err, 0.1, 0, None),
            |e| matches!(e, PcError::ZeroIterations(_)),
        );
    }
    // n = 0 is fine for Exact, which does not iterate.
    let (_vs, seq, x, y) = setup("mlp", F64, CPU, 1);
    pc_infer(&seq, &loss::mse, &x, &y, ErrType::Exact, 0.1, 0, None).unwrap();
    assert_rejected(
        "mlp",
        |m, x, y| {
            PcInfer::new(ErrType::Strict)
                .tol(-1.0)
                .run(m, &loss::mse, x, y)
        },
        |e| matches!(e, PcError::InvalidConfig(_)),
    );
    assert_rejected(
        "mlp",
        |m, x, y| {
            PcInfer::new(ErrType::Strict)
                .relax_kind(Kind::Int)
                .run(m, &loss::mse, x, y)
        },
        |e| matches!(e, PcError::InvalidConfig(_)),
    );
}

#[test]
fn bad_vinit() {
    let _rng = rng_lock();
    let good = |x: &Tensor| -> Vec<Tensor> {
        vec![
            x.shallow_clone(),
            Tensor::zeros([4, 8], (F64, CPU)),
            Tensor::zeros([4, 6], (F64, CPU)),
            Tensor::zeros([4, 3], (F64, CPU)),
        ]
    };
    for err in [ErrType::Strict, ErrType::FixedPred, ErrType::Exact] {
        assert_rejected(
            "mlp",
            |m, x, y| pc_infer(m, &loss::mse, x, y, err, 0.1, 5, Some(&good(x)[..3])),
            |e| matches!(e, PcError::ShapeMismatch { what, .. } if what == "vinit"),
        );
        assert_rejected(
            "mlp",
            |m, x, y| {
                let mut v = good(x);
                v[2] = Tensor::zeros([4, 7], (F64, CPU));
                pc_infer(m, &loss::mse, x, y, err, 0.1, 5, Some(&v))
            },
            |e| matches!(e, PcError::ShapeMismatch { what, .. } if what == "vinit[2]"),
        );
        assert_rejected(
            "mlp",
            |m, x, y| {
                let mut v = good(x);
                v[1] = v[1].to_kind(Kind::Float);
                pc_infer(m, &loss::mse, x, y, err, 0.1, 5, Some(&v))
            },
            |e| matches!(e, PcError::DtypeMismatch { what, .. } if what == "vinit[1]"),
        );
    }
    // A correct vinit is accepted.
    let (_vs, seq, x, y) = setup("mlp", F64, CPU, 1);
    pc_infer(
        &seq,
        &loss::mse,
        &x,
        &y,
        ErrType::Strict,
        0.1,
        5,
        Some(&good(&x)),
    )
    .unwrap();
}

#[test]
fn empty_model() {
    let _rng = rng_lock();
    let vs = nn::VarStore::new(CPU);
    let seq = Sequential::new(&vs);
    let x = Tensor::zeros([2, 3], (F64, CPU));
    let err = pc_infer(&seq, &loss::mse, &x, &x, ErrType::Strict, 0.1, 5, None).unwrap_err();
    assert!(matches!(err, PcError::EmptyModel));
}

#[test]
fn loss_that_is_not_a_scalar() {
    let _rng = rng_lock();
    for err in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        assert_rejected(
            "mlp",
            |m, x, y| {
                pc_infer(
                    m,
                    &|o: &Tensor, t: &Tensor| (o - t).square(),
                    x,
                    y,
                    err,
                    0.1,
                    3,
                    None,
                )
            },
            |e| matches!(e, PcError::NonScalarLoss(s) if s == &[4, 3]),
        );
    }
}

#[test]
fn labels_out_of_range() {
    let _rng = rng_lock();
    for err in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        assert_rejected(
            "cnn",
            |m, x, _y| {
                pc_infer(
                    m,
                    &loss::cross_entropy,
                    x,
                    &Tensor::from_slice(&[0i64, 1, 2, 3, 4]),
                    err,
                    0.1,
                    3,
                    None,
                )
            },
            |e| {
                matches!(
                    e,
                    PcError::LabelOutOfRange {
                        min: 0,
                        max: 4,
                        classes: 4
                    }
                )
            },
        );
        assert_rejected(
            "cnn",
            |m, x, _y| {
                pc_infer(
                    m,
                    &loss::cross_entropy,
                    x,
                    &Tensor::from_slice(&[0i64, -1, 2, 3, 1]),
                    err,
                    0.1,
                    3,
                    None,
                )
            },
            |e| matches!(e, PcError::LabelOutOfRange { min: -1, .. }),
        );
    }
}

#[test]
fn non_finite_loss() {
    let _rng = rng_lock();
    for err in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        assert_rejected(
            "mlp",
            |m, x, y| {
                let x = x.copy();
                let _ = x.get(0).get(0).fill_(f64::NAN);
                pc_infer(m, &loss::mse, &x, y, err, 0.1, 3, None)
            },
            |e| matches!(e, PcError::NonFiniteLoss(v) if v.is_nan()),
        );
    }
}

#[test]
fn beliefs_that_become_non_finite() {
    let _rng = rng_lock();
    // A huge step makes the Strict relaxation blow up: by default the energy rising past its
    // start is caught at the first sweep; with the rise allowed, the overflow to inf/NaN is.
    assert_rejected(
        "mlp",
        |m, x, y| pc_infer(m, &loss::mse, x, y, ErrType::Strict, 1e3, 20, None),
        |e| matches!(e, PcError::Diverged { iteration: 1, .. }),
    );
    assert_rejected(
        "pfree",
        |m, x, y| {
            PcInfer::new(ErrType::Strict)
                .eta(1e150)
                .n(50)
                .divergence_tolerance(f64::MAX)
                .run(m, &loss::cross_entropy, x, y)
        },
        |e| matches!(e, PcError::NonFiniteBeliefs { iteration, .. } if *iteration >= 1),
    );
}

#[test]
fn a_layer_that_fails_mid_relaxation_is_an_error_not_a_panic() {
    let _rng = rng_lock();
    // The second layer panics when its input leaves [-10, 10] (as a user's module might).
    let vs = nn::VarStore::new(CPU);
    let root = vs.root();
    let seq = Sequential::new(&vs)
        .add(nn::linear(&root / "0", 3, 4, Default::default()))
        .add_fn(|x| {
            assert!(x.abs().max().double_value(&[]) < 10.0, "input out of range");
            x.tanh()
        })
        .add(nn::linear(&root / "2", 4, 2, Default::default()));
    let x = Tensor::randn([5, 3], (Kind::Float, CPU));
    let y = Tensor::randn([5, 2], (Kind::Float, CPU)) * 100.0;
    let err = PcInfer::new(ErrType::Strict)
        .eta(50.0)
        .n(50)
        .divergence_tolerance(f64::MAX)
        .run(&seq, &loss::mse, &x, &y)
        .unwrap_err();
    match err {
        PcError::Forward {
            layer: 2, message, ..
        } => assert!(message.contains("input out of range"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unknown_err_type_string() {
    let _rng = rng_lock();
    let e = "Backprop".parse::<ErrType>().unwrap_err();
    assert!(matches!(&e, PcError::UnknownErrType(s) if s == "Backprop"));
    assert!(e.to_string().contains("Strict"));
    for (s, t) in [
        ("Strict", ErrType::Strict),
        ("fixedpred", ErrType::FixedPred),
        ("EXACT", ErrType::Exact),
        ("FixedPred", ErrType::FixedPred),
    ] {
        assert_eq!(s.parse::<ErrType>().unwrap(), t);
    }
}

#[test]
fn error_messages_are_short_and_clean() {
    let _rng = rng_lock();
    let (_vs, seq, _x, y) = setup("mlp", F64, CPU, 1);
    let e = pc_infer(
        &seq,
        &loss::mse,
        &Tensor::randn([4, 7], (F64, CPU)),
        &y,
        ErrType::Exact,
        0.1,
        1,
        None,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("node 1 of 3 failed on an input of shape [4, 7]"),
        "{msg}"
    );
    assert!(msg.contains("cannot be multiplied"), "{msg}");
    assert!(
        !msg.contains("Exception raised from") && !msg.contains("frame #"),
        "{msg}"
    );
    assert!(msg.len() < 300, "{msg}");
}
