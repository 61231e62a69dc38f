//! Every algorithm against the golden files made by `scripts/gen_golden.py` (float64,
//! the seed's semantics), to 1e-9 relative.

mod common;

use common::{build, load_params, rel_err, Golden};
use tch::{Device, Kind, Tensor};
use tch2pc::{loss, ErrType, PcInfer};

const TOL: f64 = 1e-9;

fn check(case: &str, model: &str, err_type: ErrType) {
    let g = Golden::load(case);
    let (vs, seq) = build(model, Kind::Double, Device::Cpu);
    load_params(&vs, &g);
    let x = g.get("x");
    let y = g.get("y");
    let layers = g.scalar("L") as usize;
    assert_eq!(seq.len(), layers);
    let vinit: Vec<Tensor> = (0..=layers)
        .filter_map(|l| {
            if g.has(&format!("vinit.{l}")) {
                Some(g.get(&format!("vinit.{l}")).shallow_clone())
            } else {
                None
            }
        })
        .collect();
    let mut cfg = PcInfer::new(err_type)
        .eta(g.scalar("eta"))
        .n(g.scalar("n") as usize);
    if !vinit.is_empty() {
        cfg = cfg.vinit(&vinit);
    }
    let out = if model == "mlp" {
        cfg.run(&seq, &loss::mse, x, y)
    } else {
        cfg.run(&seq, &loss::cross_entropy, x, y)
    }
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut worst = 0.0f64;
    let mut cmp = |what: String, a: &Tensor, b: &Tensor| {
        let e = rel_err(a, b);
        assert!(e <= TOL, "{case}: {what} differs by {e:e}");
        worst = worst.max(e);
    };
    cmp("loss".into(), &out.loss, g.get("loss"));
    cmp("dldy".into(), &out.dldy, g.get("dldy"));
    assert_eq!(out.vhat.len(), layers + 1);
    assert!(out.v[0].equal(x) && out.vhat[0].equal(x));
    assert_eq!(out.epsilon[0].abs().max().double_value(&[]), 0.0);
    for l in 1..=layers {
        cmp(
            format!("vhat.{l}"),
            &out.vhat[l],
            g.get(&format!("vhat.{l}")),
        );
        cmp(format!("v.{l}"), &out.v[l], g.get(&format!("v.{l}")));
        // eps may be exactly zero (rel_err's scale guards that): compare absolutely then.
        let want = g.get(&format!("eps.{l}"));
        if want.abs().max().double_value(&[]) == 0.0 {
            assert_eq!(
                out.epsilon[l].abs().max().double_value(&[]),
                0.0,
                "{case}: eps.{l} should be 0"
            );
        } else {
            cmp(format!("eps.{l}"), &out.epsilon[l], want);
        }
    }
    for (name, v) in vs.variables() {
        let want = g.get(&format!("grad.{name}"));
        let got = v.grad();
        assert!(got.defined(), "{case}: no grad for {name}");
        if want.abs().max().double_value(&[]) == 0.0 {
            assert_eq!(
                got.abs().max().double_value(&[]),
                0.0,
                "{case}: grad.{name} should be 0"
            );
        } else {
            cmp(format!("grad.{name}"), &got, want);
        }
    }
    eprintln!("{case}: worst relative difference {worst:.2e}");
}

macro_rules! golden {
    ($($name:ident: $case:literal, $model:literal, $err:expr;)*) => {$(
        #[test]
        fn $name() {
            check($case, $model, $err);
        }
    )*};
}

golden! {
    mlp_strict: "mlp_strict", "mlp", ErrType::Strict;
    mlp_fixedpred: "mlp_fixedpred", "mlp", ErrType::FixedPred;
    mlp_exact: "mlp_exact", "mlp", ErrType::Exact;
    cnn_strict: "cnn_strict", "cnn", ErrType::Strict;
    cnn_fixedpred: "cnn_fixedpred", "cnn", ErrType::FixedPred;
    cnn_exact: "cnn_exact", "cnn", ErrType::Exact;
    pfree_strict: "pfree_strict", "pfree", ErrType::Strict;
    pfree_fixedpred: "pfree_fixedpred", "pfree", ErrType::FixedPred;
    pfree_exact: "pfree_exact", "pfree", ErrType::Exact;
    mlp_strict_vinit: "mlp_strict_vinit", "mlp", ErrType::Strict;
    mlp_fixedpred_eta05_n2: "mlp_fixedpred_eta05_n2", "mlp", ErrType::FixedPred;
    pfree_strict_eta03_n7: "pfree_strict_eta03_n7", "pfree", ErrType::Strict;
}
