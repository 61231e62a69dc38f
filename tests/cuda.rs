//! The same checks on a CUDA device. Each test runs when a GPU is present and says that it
//! was skipped otherwise.

mod common;

use common::*;
use tch::{Device, Kind, Tensor};
use tch2pc::{loss, pc_infer, ErrType, PcError};

/// The first GPU, or `None` after telling the terminal (past the test harness's output
/// capture) that `test` was skipped.
fn cuda(test: &str) -> Option<Device> {
    if tch::Cuda::is_available() {
        Some(Device::Cuda(0))
    } else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr().lock(),
            "{test}: skipped, no CUDA device available"
        );
        None
    }
}

#[test]
fn cuda_golden_float64() {
    let _rng = rng_lock();
    let Some(dev) = cuda("cuda_golden_float64") else {
        return;
    };
    for (case, model, err) in [
        ("mlp_strict", "mlp", ErrType::Strict),
        ("cnn_strict", "cnn", ErrType::Strict),
        ("cnn_fixedpred", "cnn", ErrType::FixedPred),
        ("cnn_exact", "cnn", ErrType::Exact),
        ("pfree_fixedpred", "pfree", ErrType::FixedPred),
        ("mlp_strict_vinit", "mlp", ErrType::Strict),
        ("pfree_strict_eta03_n7", "pfree", ErrType::Strict),
    ] {
        check_golden(case, model, err, dev);
    }
}

#[test]
fn cuda_float32_exact_is_backprop() {
    let _rng = rng_lock();
    let Some(dev) = cuda("cuda_float32_exact_is_backprop") else {
        return;
    };
    for model in ["mlp", "cnn", "pfree"] {
        let (vs, seq, x, y) = setup(model, Kind::Float, dev, 3);
        let l = loss_for(model);
        let bp = backprop(&vs, &seq, &l, &x, &y);
        for err in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
            let out = pc_infer(&seq, &l, &x, &y, err, 0.1, 20, None).unwrap();
            assert_eq!(out.v[1].device(), dev);
            if err == ErrType::Exact {
                assert_grads_match(&vs, &bp, 1e-5, model);
            }
        }
    }
}

#[test]
fn cuda_device_mismatch_and_labels() {
    let _rng = rng_lock();
    let Some(dev) = cuda("cuda_device_mismatch_and_labels") else {
        return;
    };
    let (vs, seq, x, y) = setup("cnn", Kind::Double, dev, 5);
    pc_infer(
        &seq,
        &loss::cross_entropy,
        &x,
        &y,
        ErrType::Exact,
        0.1,
        1,
        None,
    )
    .unwrap();
    let before = snapshot(&vs);
    let e = pc_infer(
        &seq,
        &loss::cross_entropy,
        &x.to_device(Device::Cpu),
        &y,
        ErrType::Strict,
        0.1,
        3,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(e, PcError::DeviceMismatch { ref what, .. } if what == "x"),
        "{e:?}"
    );
    let e = pc_infer(
        &seq,
        &loss::cross_entropy,
        &x,
        &y.to_device(Device::Cpu),
        ErrType::Strict,
        0.1,
        3,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(e, PcError::DeviceMismatch { ref what, .. } if what == "y"),
        "{e:?}"
    );
    let out = pc_infer(
        &seq,
        &loss::cross_entropy,
        &x,
        &y,
        ErrType::Exact,
        0.1,
        1,
        None,
    )
    .unwrap();
    let mut vinit: Vec<Tensor> = out.vhat.iter().map(|t| t.copy()).collect();
    vinit[2] = vinit[2].to_device(Device::Cpu);
    let before2 = snapshot(&vs);
    let e = pc_infer(
        &seq,
        &loss::cross_entropy,
        &x,
        &y,
        ErrType::Strict,
        0.1,
        3,
        Some(&vinit),
    )
    .unwrap_err();
    assert!(
        matches!(e, PcError::DeviceMismatch { ref what, .. } if what == "vinit[2]"),
        "{e:?}"
    );
    // Out-of-range labels are caught before libtorch sees them (a device-side assert would
    // poison the CUDA context).
    let bad = Tensor::from_slice(&[0i64, 1, 2, 3, 9]).to_device(dev);
    let e = pc_infer(
        &seq,
        &loss::cross_entropy,
        &x,
        &bad,
        ErrType::Strict,
        0.1,
        3,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(e, PcError::LabelOutOfRange { max: 9, .. }),
        "{e:?}"
    );
    assert_same(&before2, &snapshot(&vs));
    drop(before);
}
