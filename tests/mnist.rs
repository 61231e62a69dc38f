//! End to end: the MNIST example's training loop on the bundled digits, for one epoch.

#[path = "../examples/common/font.rs"]
mod font;
#[path = "../examples/mnist/model.rs"]
mod model;
#[path = "../examples/mnist/plot.rs"]
mod plot;
#[path = "../examples/mnist/train.rs"]
mod train;

use tch2pc::{ErrType, OnDiverge};

/// libtorch's random generator is global: the tests here take turns, so that seeding one
/// run is not disturbed by another drawing at the same time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn check(err_type: ErrType, tag: &str) {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = std::env::temp_dir().join(format!("tch2pc-e2e-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = train::Config {
        err_type,
        on_diverge: OnDiverge::Backtrack,
        epochs: 1,
        log: Some(dir.join("log.csv")),
        plot: Some(dir.join("plot.png")),
        ..train::Config::default()
    };
    let h = train::train(&cfg).unwrap();
    // 8,000 digits in batches of 300: 27 steps.
    assert_eq!(h.steps.len(), 27);
    let losses: Vec<f64> = h.steps.iter().map(|s| s.loss).collect();
    let (first, last) = (mean(&losses[..5]), mean(&losses[22..]));
    assert!(
        last < 0.6 * first,
        "{err_type}: loss {first:.3} -> {last:.3}"
    );
    assert!(
        first > 2.0,
        "{err_type}: an untrained network starts near ln 10: {first}"
    );
    let acc = h.final_accuracy().unwrap();
    assert!(acc > 0.75, "{err_type}: accuracy after one epoch {acc}");
    let log = std::fs::read_to_string(dir.join("log.csv")).unwrap();
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some("epoch,step,loss,seconds"));
    assert_eq!(lines.count(), 27);
    let png = std::fs::read(dir.join("plot.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fixedpred_epoch_on_bundled_mnist() {
    check(ErrType::FixedPred, "fixedpred");
}

#[test]
fn strict_epoch_on_bundled_mnist() {
    check(ErrType::Strict, "strict");
}

#[test]
fn seeded_runs_are_reproducible() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = train::Config {
        epochs: 1,
        ..train::Config::default()
    };
    let a = train::train(&cfg).unwrap();
    let b = train::train(&cfg).unwrap();
    let la: Vec<f64> = a.steps.iter().map(|s| s.loss).collect();
    let lb: Vec<f64> = b.steps.iter().map(|s| s.loss).collect();
    assert_eq!(la, lb);
    assert_eq!(a.final_accuracy(), b.final_accuracy());
}
