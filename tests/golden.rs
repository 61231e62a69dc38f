//! Every algorithm against the golden files made by `scripts/gen_golden.py` (float64,
//! the seed's semantics), to 1e-9 relative.

mod common;

use common::check_golden;
use tch::Device;
use tch2pc::ErrType;

macro_rules! golden {
    ($($name:ident: $case:literal, $model:literal, $err:expr;)*) => {$(
        #[test]
        fn $name() {
            check_golden($case, $model, $err, Device::Cpu);
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
