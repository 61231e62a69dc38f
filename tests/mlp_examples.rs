//! The shared pieces of the `resnet` and `depth` examples: the MLP graphs, the data subset,
//! and one short training run per method on the bundled digits.

#[path = "../examples/common/data.rs"]
mod data;
#[path = "../examples/common/fit.rs"]
mod fit;
#[path = "../examples/common/mlp.rs"]
mod mlp;
#[path = "../examples/common/shuffle.rs"]
mod shuffle;
#[path = "../examples/common/stats.rs"]
mod stats;

use indicatif::ProgressBar;
use tch::{nn, Device, Kind, Tensor};
use tch2pc::OnDiverge;

use fit::{Method, PcSettings, RunConfig};
use mlp::{Act, Init, Spec};

/// libtorch's random generator is global: the tests here take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn spec(layers: usize, skip: bool) -> Spec {
    Spec {
        input: 784,
        width: 16,
        layers,
        skip,
        act: Act::Tanh,
        init: Init::Pytorch,
    }
}

#[test]
fn graphs_have_the_documented_nodes_and_parameters() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for layers in [2, 3, 6] {
        for skip in [false, true] {
            let s = spec(layers, skip);
            let vs = nn::VarStore::new(Device::Cpu);
            let g = mlp::build(&vs, s);
            assert_eq!(g.len(), s.nodes(), "{s:?}");
            let params: i64 = vs
                .trainable_variables()
                .iter()
                .map(|t| t.numel() as i64)
                .sum();
            assert_eq!(params, s.parameters(), "{s:?}");
            let y = g.f_forward(&Tensor::zeros([5, 784], (Kind::Float, Device::Cpu)));
            assert_eq!(y.unwrap().size(), [5, 10]);
        }
    }
    assert_eq!(spec(6, true).nodes(), 10); // input layer, 4 × (block, merge), output
    assert_eq!(spec(6, false).nodes(), 6);
}

#[test]
fn residual_block_adds_its_input() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Same seed, same weights: the residual net's first merge is h + tanh(L h), where h is
    // the chain's first node.
    let x = Tensor::rand([3, 784], (Kind::Float, Device::Cpu));
    let values = |skip| {
        tch::manual_seed(7);
        let vs = nn::VarStore::new(Device::Cpu);
        mlp::build(&vs, spec(3, skip)).f_forward_all(&x).unwrap()
    };
    let (chain, res) = (values(false), values(true));
    let expected = &chain[1] + &chain[2];
    assert!(res[3].allclose(&expected, 1e-6, 1e-6, false));
}

#[test]
fn data_subsets_are_flattened_prefixes() {
    let d = data::load(None, Some(100), Some(50), Device::Cpu).unwrap();
    assert_eq!(d.train.images.size(), [100, 784]);
    assert_eq!(d.test.labels.size(), [50]);
    assert_eq!(d.full_sizes, (8000, 2000));
    assert_eq!(d.describe(), "MNIST (100 of 8000 train, 50 of 2000 test)");
    assert!(data::load(None, Some(0), None, Device::Cpu).is_err());
}

#[test]
fn stats_mean_sd_and_failures() {
    let (m, s, bad) = stats::mean_sd(&[0.9, 0.92, f64::NAN]).unwrap();
    assert!((m - 0.91).abs() < 1e-12 && (s - 0.02 / 2f64.sqrt()).abs() < 1e-12);
    assert_eq!(bad, 1);
    // One successful run has no spread to give.
    assert_eq!(stats::percent(&[0.5]), "50.00");
    assert_eq!(stats::percent(&[0.5, f64::NAN]), "50.00 (1 failed)");
    assert_eq!(stats::percent(&[0.5, 0.7]), "60.00 ± 14.14");
    assert_eq!(
        stats::percent(&[0.9, 0.92, f64::NAN]),
        "91.00 ± 1.41 (1 failed)"
    );
    assert_eq!(stats::percent(&[f64::NAN]), "failed");
}

#[test]
fn every_method_trains_and_exact_matches_backprop() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = data::load(None, Some(500), Some(500), Device::Cpu).unwrap();
    let pc = PcSettings {
        fixedpred_eta: 0.5,
        strict_eta: 0.5,
        adam_eta: 1e-4,
        momentum: 0.5,
        on_diverge: OnDiverge::Backtrack,
    };
    let mut acc = std::collections::BTreeMap::new();
    for method in [
        Method::Backprop,
        Method::Exact,
        Method::Fixedpred,
        Method::Strict,
        Method::StrictMomentum,
        Method::StrictAdam,
        Method::Ipc,
    ] {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = mlp::build(&vs, spec(4, true));
        let cfg = RunConfig {
            method,
            n: 12,
            pc,
            epochs: 2,
            batch_size: 50,
            lr: 1e-3,
            ipc_lr: 1e-3,
            seed: 0,
        };
        let bar = ProgressBar::hidden();
        let r = fit::run(&model, &vs, &d.train, &d.test, &cfg, &bar).unwrap();
        // 2 epochs of 10 batches.
        assert_eq!(bar.position(), 20);
        // Well above chance (10%); iPC, with a parameter step per sweep from errors that have
        // not yet reached the first layers, learns slowest (as in the depth example's table).
        let floor = if method == Method::Ipc { 0.2 } else { 0.5 };
        assert!(r.accuracy > floor, "{method:?}: {}", r.accuracy);
        assert!(r.seconds_per_epoch > 0.0 && r.train_loss.is_finite());
        acc.insert(method, r.accuracy);
    }
    // Exact's updates are backprop's gradients: the same accuracy up to rounding.
    assert!(
        (acc[&Method::Exact] - acc[&Method::Backprop]).abs() <= 0.01,
        "{acc:?}"
    );
}
