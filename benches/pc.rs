//! Criterion benches (`cargo bench`): each error type on the seed's network, and the
//! scaling of FixedPred and Strict with the number of sweeps `n` and with depth.
//!
//! CPU, float32, batch 300; 2 intra-op threads unless `TCH2PC_BENCH_THREADS` says
//! otherwise; `TCH2PC_BENCH_DEVICE=cuda` runs on the GPU (synchronised after each call).
//! Groups: `seed_network`, `scaling_n`, `scaling_depth`; filter with e.g.
//! `cargo bench --bench pc -- scaling_n`. `scripts/criterion_table.py` turns
//! `target/criterion` into the tables of `benches/RESULTS.md`.

mod common;

use common::{ModelSpec, Setup, Variant};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;
use tch::Device;

fn device() -> Device {
    match std::env::var("TCH2PC_BENCH_DEVICE").as_deref() {
        Ok("cuda") => {
            assert!(
                tch::Cuda::is_available(),
                "TCH2PC_BENCH_DEVICE=cuda: no CUDA device available"
            );
            Device::Cuda(0)
        }
        _ => Device::Cpu,
    }
}

fn init() -> Device {
    let threads = std::env::var("TCH2PC_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    tch::set_num_threads(threads);
    device()
}

fn time(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    s: &Setup,
    v: Variant,
) {
    let device = s.x.device();
    c.bench_function(id, |b| {
        b.iter(|| {
            if let Err(e) = v.run(s) {
                panic!("{e}");
            }
            common::sync(device);
        })
    });
}

fn seed_network(c: &mut Criterion) {
    let device = init();
    let s = common::setup(ModelSpec::Seed, device, 0);
    let mut g = c.benchmark_group("seed_network");
    for v in [
        Variant::Backprop,
        Variant::Exact,
        Variant::FixedPred { eta: 0.1, n: 20 },
        Variant::FixedPredLiteral { eta: 0.1, n: 20 },
        Variant::Strict { eta: 0.1, n: 20 },
    ] {
        let name = match v {
            Variant::FixedPred { .. } => "fixedpred".to_string(),
            Variant::FixedPredLiteral { .. } => "fixedpred_literal".to_string(),
            Variant::Strict { .. } => "strict".to_string(),
            _ => v.label(),
        };
        time(&mut g, BenchmarkId::from_parameter(name), &s, v);
    }
    g.finish();
}

fn scaling_n(c: &mut Criterion) {
    let device = init();
    let s = common::setup(ModelSpec::Seed, device, 0);
    let mut g = c.benchmark_group("scaling_n");
    for n in [1usize, 5, 20, 100] {
        time(
            &mut g,
            BenchmarkId::new("fixedpred", n),
            &s,
            Variant::FixedPred { eta: 0.1, n },
        );
        time(
            &mut g,
            BenchmarkId::new("fixedpred_literal", n),
            &s,
            Variant::FixedPredLiteral { eta: 0.1, n },
        );
        time(
            &mut g,
            BenchmarkId::new("strict", n),
            &s,
            Variant::Strict { eta: 0.1, n },
        );
    }
    g.finish();
}

fn scaling_depth(c: &mut Criterion) {
    let device = init();
    let mut g = c.benchmark_group("scaling_depth");
    for depth in [2usize, 4, 8, 16] {
        let s = common::setup(ModelSpec::Mlp(depth), device, 0);
        for (name, v) in [
            ("backprop", Variant::Backprop),
            ("exact", Variant::Exact),
            ("fixedpred", Variant::FixedPred { eta: 0.1, n: 20 }),
            ("strict", Variant::Strict { eta: 0.1, n: 20 }),
        ] {
            time(&mut g, BenchmarkId::new(name, depth), &s, v);
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = seed_network, scaling_n, scaling_depth
}
criterion_main!(benches);
