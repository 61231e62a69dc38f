//! Ratio benchmark: predictive coding against a plain tch backprop step, in one process.
//!
//! ```text
//! cargo run --release --example bench -- [--device cpu|cuda] [--threads 2] [--reps 30]
//!     [--warmup 3] [--model seed|mlp:DEPTH|res:BLOCKS] [--weights FILE.npz] [--json FILE]
//!     [--variant NAME[(eta,n)]]...
//! cargo run --release --example bench -- --memory MODE [--iters 10] [...]
//! ```
//!
//! Timing mode: each repetition runs every variant once, in an order rotated by one per
//! repetition, after `--warmup` untimed repetitions; reported are the median (and
//! quartiles) per variant in ms and the ratio of medians to the backprop step. On CUDA the
//! device is synchronised before and after each timed call.
//!
//! Variants (default: all of these): `backprop`, `exact`, `fixedpred` (0.1,20),
//! `fixedpred(0.5,3)`, `fixedpred(1,5)`, `fixedpred(0.1,100)`, `fixedpred_literal` (0.1,20),
//! `strict` (0.1,20); also `fixedpred_graded` (the graded closed form). Any `fixedpred`,
//! `fixedpred_literal`, `fixedpred_graded` or `strict` may take `(eta,n)`.
//!
//! Memory mode (`--memory backprop|exact|fixedpred|fixedpred_literal|strict`, each with an
//! optional `(eta,n)`): runs only that variant `--iters` times and prints one JSON line with
//! the process's resident set sizes from `/proc/self/status`: `setup_rss_kb`/`setup_hwm_kb`
//! after building the model and batch and one no-grad forward pass (libtorch initialised),
//! `peak_hwm_kb` at the end, `increment_kb = peak_hwm_kb - setup_hwm_kb`, and a steady-state
//! `steady_increment_kb`: the peak above the resident size after the first call, measured
//! by resetting the high-water mark (`/proc/self/clear_refs`) after that call. Run each
//! mode in its own process (`scripts/memory.sh`).
//!
//! `--weights FILE.npz` loads the parameters (PyTorch names) and the batch `x`, `y` written
//! by `scripts/bench_seed.py --save-weights FILE.npz`, so that both sides time the same
//! computation (`scripts/compare_seed.sh`).

#[path = "../benches/common/mod.rs"]
mod common;

use common::{ModelSpec, Setup, Variant};
use std::time::Instant;
use tch::Device;

struct Args {
    device: Device,
    threads: i32,
    reps: usize,
    warmup: usize,
    model: ModelSpec,
    weights: Option<String>,
    json: Option<String>,
    variants: Vec<Variant>,
    memory: Option<Variant>,
    iters: usize,
    seed: i64,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench [--device cpu|cuda] [--threads N] [--reps N] [--warmup N] [--model seed|mlp:DEPTH|res:BLOCKS]\n\
         \x20            [--weights FILE.npz] [--json FILE] [--seed N] [--variant NAME[(eta,n)]]...\n\
         \x20      bench --memory backprop|exact|fixedpred|fixedpred_literal|strict [--iters N] [...]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        device: Device::Cpu,
        threads: 2,
        reps: 30,
        warmup: 3,
        model: ModelSpec::Seed,
        weights: None,
        json: None,
        variants: Vec::new(),
        memory: None,
        iters: 10,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            usage();
        }
        let Some(value) = it.next() else {
            eprintln!("{flag} needs a value");
            usage()
        };
        let bad = |what: &str| -> ! {
            eprintln!("bad value for {what}: {value}");
            usage()
        };
        match flag.as_str() {
            "--device" => {
                a.device = match value.as_str() {
                    "cpu" => Device::Cpu,
                    "cuda" => {
                        if !tch::Cuda::is_available() {
                            eprintln!("--device cuda: no CUDA device available");
                            std::process::exit(2);
                        }
                        Device::Cuda(0)
                    }
                    _ => bad("--device"),
                }
            }
            "--threads" => a.threads = value.parse().unwrap_or_else(|_| bad("--threads")),
            "--reps" => a.reps = value.parse().unwrap_or_else(|_| bad("--reps")),
            "--warmup" => a.warmup = value.parse().unwrap_or_else(|_| bad("--warmup")),
            "--iters" => a.iters = value.parse().unwrap_or_else(|_| bad("--iters")),
            "--seed" => a.seed = value.parse().unwrap_or_else(|_| bad("--seed")),
            "--model" => a.model = ModelSpec::parse(&value).unwrap_or_else(|| bad("--model")),
            "--weights" => a.weights = Some(value),
            "--json" => a.json = Some(value),
            "--variant" => a
                .variants
                .push(Variant::parse(&value).unwrap_or_else(|| bad("--variant"))),
            "--memory" => {
                a.memory = Some(Variant::parse(&value).unwrap_or_else(|| bad("--memory")))
            }
            _ => {
                eprintln!("unknown flag {flag}");
                usage()
            }
        }
    }
    if a.reps == 0 || a.iters == 0 {
        eprintln!("--reps and --iters must be at least 1");
        usage()
    }
    if a.variants.is_empty() {
        a.variants = vec![
            Variant::Backprop,
            Variant::Exact,
            Variant::FixedPred { eta: 0.1, n: 20 },
            Variant::FixedPred { eta: 0.5, n: 3 },
            Variant::FixedPred { eta: 1.0, n: 5 },
            Variant::FixedPred { eta: 0.1, n: 100 },
            Variant::FixedPredLiteral { eta: 0.1, n: 20 },
            Variant::Strict { eta: 0.1, n: 20 },
        ];
    } else if !a.variants.contains(&Variant::Backprop) {
        a.variants.insert(0, Variant::Backprop);
    }
    a
}

fn build(a: &Args) -> Setup {
    let mut s = common::setup(a.model, a.device, a.seed);
    if let Some(path) = &a.weights {
        if let Err(e) = common::load_weights(&mut s, path) {
            eprintln!("--weights: {e}");
            std::process::exit(1);
        }
    }
    s
}

/// A field of `/proc/self/status` in kB (0 where unavailable).
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn device_name(d: Device) -> &'static str {
    if d.is_cuda() {
        "cuda"
    } else {
        "cpu"
    }
}

fn memory(a: &Args, variant: Variant) {
    let s = build(a);
    // Initialise libtorch's kernels and thread pool with one forward pass without graph.
    tch::no_grad(|| {
        let _ = s.model.forward(&s.x);
    });
    common::sync(a.device);
    let setup_rss = status_kb("VmRSS:");
    let setup_hwm = status_kb("VmHWM:");
    run(variant, &s);
    common::sync(a.device);
    let first_hwm = status_kb("VmHWM:");
    let after_first_rss = status_kb("VmRSS:");
    // Reset the high-water mark to the current RSS (Linux >= 4.0).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    for _ in 1..a.iters {
        run(variant, &s);
    }
    common::sync(a.device);
    let end_hwm = status_kb("VmHWM:");
    let peak = first_hwm.max(end_hwm);
    let steady = if reset && a.iters > 1 {
        format!("{}", end_hwm.saturating_sub(after_first_rss))
    } else {
        "null".into()
    };
    println!(
        "{{\"mode\": \"{}\", \"model\": \"{}\", \"device\": \"{}\", \"threads\": {}, \"iters\": {}, \
         \"setup_rss_kb\": {setup_rss}, \"setup_hwm_kb\": {setup_hwm}, \"first_call_hwm_kb\": {first_hwm}, \
         \"after_first_rss_kb\": {after_first_rss}, \"peak_hwm_kb\": {peak}, \"increment_kb\": {}, \
         \"steady_increment_kb\": {steady}}}",
        variant.label(),
        a.model.name(),
        device_name(a.device),
        a.threads,
        a.iters,
        peak.saturating_sub(setup_hwm),
    );
}

/// Runs `v` once; a predictive-coding error (a diverging `strict(5,20)`, say) ends the
/// benchmark with its message and exit status 1.
fn run(v: Variant, s: &Setup) {
    if let Err(e) = v.run(s) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn main() {
    let a = parse_args();
    tch::set_num_threads(a.threads);
    if let Some(v) = a.memory {
        memory(&a, v);
        return;
    }
    let s = build(&a);
    let k = a.variants.len();
    let load_before = loadavg();
    let mut times = vec![Vec::with_capacity(a.reps); k];
    for r in 0..a.warmup + a.reps {
        for j in 0..k {
            let i = (r + j) % k;
            let v = a.variants[i];
            common::sync(a.device);
            let t0 = Instant::now();
            run(v, &s);
            common::sync(a.device);
            let dt = t0.elapsed().as_secs_f64() * 1e3;
            if r >= a.warmup {
                times[i].push(dt);
            }
        }
    }
    let load_after = loadavg();
    let stats: Vec<(f64, f64, f64, f64)> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(|x, y| x.total_cmp(y));
            (quantile(t, 0.5), quantile(t, 0.25), quantile(t, 0.75), t[0])
        })
        .collect();
    let base = a
        .variants
        .iter()
        .position(|v| *v == Variant::Backprop)
        .map(|i| stats[i].0)
        .unwrap_or(f64::NAN);
    println!(
        "model {} | device {} | threads {} | reps {} (+{} warm-up) | weights {} | load avg {} -> {}",
        a.model.name(),
        device_name(a.device),
        a.threads,
        a.reps,
        a.warmup,
        a.weights.as_deref().unwrap_or("tch init, seed 0"),
        load_before,
        load_after
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "variant", "median ms", "q1 ms", "q3 ms", "min ms", "ratio"
    );
    let mut rows = Vec::new();
    for (v, (med, q1, q3, min)) in a.variants.iter().zip(&stats) {
        let ratio = med / base;
        println!(
            "{:<28} {med:>10.3} {q1:>10.3} {q3:>10.3} {min:>10.3} {ratio:>8.3}",
            v.label()
        );
        rows.push(format!(
            "{{\"variant\": \"{}\", \"median_ms\": {med:.4}, \"q1_ms\": {q1:.4}, \"q3_ms\": {q3:.4}, \"min_ms\": {min:.4}, \"ratio\": {ratio:.4}}}",
            v.label()
        ));
    }
    if let Some(path) = &a.json {
        let weights = match &a.weights {
            Some(w) => format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")),
            None => "null".into(),
        };
        let text = format!(
            "{{\"model\": \"{}\", \"device\": \"{}\", \"threads\": {}, \"reps\": {}, \"warmup\": {}, \"weights\": {weights}, \
             \"loadavg_before\": \"{load_before}\", \"loadavg_after\": \"{load_after}\", \"results\": [{}]}}\n",
            a.model.name(),
            device_name(a.device),
            a.threads,
            a.reps,
            a.warmup,
            rows.join(", ")
        );
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("writing {path}: {e}");
            std::process::exit(1);
        }
    }
}
