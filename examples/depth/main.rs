//! How do backprop and the predictive-coding variants hold up as an MLP gets deeper?
//! Plain chains (or residual nets, `--skip`) of width 128 with 2, 4, 8, 16 and 32 linear
//! layers, trained with backprop, Exact, FixedPred, Strict (plain belief steps, momentum,
//! Adam) and incremental Strict (iPC), for a fixed budget of epochs.
//!
//! ```text
//! cargo run --release --example depth                        # bundled MNIST subset
//! cargo run --release --example depth -- --data-dir /usr/share/datasets/fashion-mnist
//! cargo run --release --example depth -- --replot   # redraw runs/depth/mnist.png from its CSV
//! cargo run --release --example depth -- --depths 2,8 --seeds 1 --methods backprop,strict
//! ```
//!
//! For each depth and seed every method starts from the same weights. The relaxations get
//! `n = sweeps-per-layer · nodes + extra-sweeps` sweeps (enough for the errors to reach the
//! first layer). Prints a Markdown table (test accuracy mean ± sd over seeds, and each
//! method's time per epoch as a ratio to backprop's, measured in this process), and writes
//! `<data>.csv`, `<data>.md` and `<data>.png` into `--out`. The networks, the data and the
//! training loop are shared with the `resnet` example (`examples/common/`).
//!
//! The defaults are the README table's settings: tanh, Kaiming-uniform weights (tch's
//! default, under which plain chains of up to 32 layers still train with backprop), the
//! first 4,000 training examples, 1 epoch, batch 100, Adam lr 0.001 for every method
//! (iPC too: lower rates were worse in a short trial); n = 2·layers + 16 sweeps
//! (20 … 80); FixedPred and Strict eta 0.5; momentum 0.5; Adam on the beliefs with eta
//! 1e-4 (Adam moves every belief by about eta per sweep, while the errors of a mean
//! cross-entropy are of order 1/batch); Strict variants backtrack. One libtorch thread.

#[path = "../common/data.rs"]
mod data;
#[path = "../common/fit.rs"]
mod fit;
#[path = "../common/font.rs"]
mod font;
#[path = "../common/mlp.rs"]
mod mlp;
mod plot;
#[path = "../common/stats.rs"]
mod stats;

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tch::{nn, Device};
use tch2pc::OnDiverge;

use fit::{Method, PcSettings, RunConfig};
use mlp::{Act, Init, Spec};

/// `println!` that returns an error instead of panicking when stdout is closed.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*).context("cannot write to stdout")
    };
}

/// Test accuracy against depth for backprop and the predictive-coding variants, with each
/// method's time per epoch relative to backprop.
///
/// The defaults are the settings of the README's table.
#[derive(Debug, Parser)]
#[command(name = "depth", version)]
struct Cli {
    /// Linear layers in all (input layer, hidden layers, output layer), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [2usize, 4, 8, 16, 32])]
    depths: Vec<usize>,
    /// Width of the hidden layers.
    #[arg(long, default_value_t = 128)]
    width: i64,
    /// Residual hidden blocks `h + act(L h)` instead of a plain chain.
    #[arg(long)]
    skip: bool,
    /// Hidden non-linearity.
    #[arg(long, value_enum, default_value_t = Act::Tanh)]
    act: Act,
    /// Weight initialisation: PyTorch's nn.Linear default (uniform ±1/√fan_in) or tch's
    /// nn::linear default (Kaiming-uniform, std √(2/fan_in)).
    #[arg(long, value_enum, default_value_t = Init::Kaiming)]
    init: Init,
    /// Methods, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [
        Method::Backprop, Method::Exact, Method::Fixedpred, Method::Strict,
        Method::StrictMomentum, Method::StrictAdam, Method::Ipc])]
    methods: Vec<Method>,
    /// Seeds 0, 1, …, SEEDS-1.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Passes over the training subset.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    /// Examples per step.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Adam's learning rate for the parameters.
    #[arg(long, default_value_t = 0.001)]
    lr: f64,
    /// Adam's learning rate for iPC, which takes a parameter step after every sweep.
    #[arg(long, default_value_t = 0.001)]
    ipc_lr: f64,
    /// Relaxation sweeps per predictive-coding node (n = this · nodes + extra-sweeps).
    #[arg(long, default_value_t = 2)]
    sweeps_per_layer: usize,
    /// Relaxation sweeps added to sweeps-per-layer · nodes.
    #[arg(long, default_value_t = 16)]
    extra_sweeps: usize,
    /// FixedPred's step.
    #[arg(long, default_value_t = 0.5)]
    fixedpred_eta: f64,
    /// Strict's step (plain steps, momentum, iPC).
    #[arg(long, default_value_t = 0.5)]
    eta: f64,
    /// Strict's step with Adam on the beliefs (about the change of each belief per sweep).
    #[arg(long, default_value_t = 0.0001)]
    adam_eta: f64,
    /// Momentum factor of Strict+momentum.
    #[arg(long, default_value_t = 0.5)]
    momentum: f64,
    /// What a Strict sweep that would raise the energy does.
    #[arg(long, value_enum, default_value_t = DivergeArg::Backtrack)]
    on_diverge: DivergeArg,
    /// Training examples: the first N of the training files.
    #[arg(long, default_value_t = 4000)]
    train_size: usize,
    /// Test examples: the first N of the test files (default: all).
    #[arg(long)]
    test_size: Option<usize>,
    /// An MNIST-style IDX directory, e.g. /usr/share/datasets/fashion-mnist
    /// (`apt-get install dataset-fashion-mnist`). Default: the bundled MNIST subset.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Directory for <data>.csv, <data>.md and <data>.png.
    #[arg(long, default_value = "runs/depth")]
    out: PathBuf,
    /// libtorch's intra-op CPU threads (these networks are small: one thread is fastest on
    /// a shared machine).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    threads: i32,
    /// Do not train: redraw <out>/<data>.png from the CSV of an earlier run with the same
    /// data and settings.
    #[arg(long)]
    replot: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DivergeArg {
    Error,
    Backtrack,
}

/// One finished run.
struct Row {
    depth: usize,
    method: Method,
    seed: u64,
    n: usize,
    /// `NaN` for a failed run.
    accuracy: f64,
    seconds_per_epoch: f64,
    backtracks: usize,
    error: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tch::set_num_threads(cli.threads);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(&d) = cli.depths.iter().find(|&&d| d < 2) {
        bail!("--depths: an MLP has at least 2 linear layers, got {d}");
    }
    let device = Device::Cpu;
    let data = data::load(
        cli.data_dir.as_deref(),
        Some(cli.train_size),
        cli.test_size,
        device,
    )?;
    let spec = |layers| Spec {
        input: data.features(),
        width: cli.width,
        layers,
        skip: cli.skip,
        act: cli.act,
        init: cli.init,
    };
    let sweeps = |layers| cli.sweeps_per_layer * spec(layers).nodes() + cli.extra_sweeps;
    let pc = PcSettings {
        fixedpred_eta: cli.fixedpred_eta,
        strict_eta: cli.eta,
        adam_eta: cli.adam_eta,
        momentum: cli.momentum,
        on_diverge: match cli.on_diverge {
            DivergeArg::Error => OnDiverge::Error,
            DivergeArg::Backtrack => OnDiverge::Backtrack,
        },
    };
    let header = format!(
        "{}; {} {} of width {} ({}); {} epoch(s), batch {}, Adam lr {} (iPC {}); \
         n = {}·nodes + {} sweeps; FixedPred eta {}; Strict eta {}, momentum {}, \
         Adam-on-beliefs eta {} ({} on divergence); seeds 0..{}",
        data.describe(),
        cli.act.name(),
        if cli.skip {
            "residual MLPs"
        } else {
            "plain MLPs"
        },
        cli.width,
        cli.init.name(),
        cli.epochs,
        cli.batch_size,
        cli.lr,
        cli.ipc_lr,
        cli.sweeps_per_layer,
        cli.extra_sweeps,
        cli.fixedpred_eta,
        cli.eta,
        cli.momentum,
        cli.adam_eta,
        match cli.on_diverge {
            DivergeArg::Error => "error",
            DivergeArg::Backtrack => "backtrack",
        },
        cli.seeds - 1,
    );
    let stem = format!(
        "{}{}",
        data.name.to_lowercase(),
        if cli.skip { "-residual" } else { "" }
    );
    let csv = cli.out.join(format!("{stem}.csv"));
    let png = cli.out.join(format!("{stem}.png"));
    let title = format!(
        "{}: {} of width {} ({}, {}), {} train examples, {} epoch(s), {} seeds",
        data.name,
        if cli.skip {
            "residual MLPs"
        } else {
            "plain MLPs"
        },
        cli.width,
        cli.act.name(),
        cli.init.name(),
        data.train.len(),
        cli.epochs,
        cli.seeds
    );
    if cli.replot {
        let rows = read_csv(&csv)?;
        draw(&png, &rows, &cli.methods, &title)?;
        say!("redrew {} from {}", png.display(), csv.display())?;
        return Ok(());
    }
    say!("{header}")?;

    let steps_per_run = data.train.len().div_ceil(cli.batch_size as usize) * cli.epochs as usize;
    let runs = cli.seeds as usize * cli.depths.len() * cli.methods.len();
    let bar = if cli.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new((runs * steps_per_run) as u64);
        bar.set_style(
            ProgressStyle::with_template("[{bar:30}] {pos}/{len} steps  {msg}  eta {eta}")
                .expect("valid progress template")
                .progress_chars("=> "),
        );
        bar
    };
    let start = Instant::now();
    let mut rows = Vec::with_capacity(runs);
    for &depth in &cli.depths {
        let n = sweeps(depth);
        for seed in 0..cli.seeds {
            for &method in &cli.methods {
                bar.set_message(format!("{depth} layers, seed {seed}, {}", method.label()));
                tch::manual_seed(seed as i64);
                let vs = nn::VarStore::new(device);
                let model = mlp::build(&vs, spec(depth));
                let cfg = RunConfig {
                    method,
                    n,
                    pc,
                    epochs: cli.epochs as usize,
                    batch_size: cli.batch_size as usize,
                    lr: cli.lr,
                    ipc_lr: cli.ipc_lr,
                    seed,
                };
                let before = bar.position();
                let result = fit::run(&model, &vs, &data.train, &data.test, &cfg, &bar);
                let row = match result {
                    Ok(r) => Row {
                        depth,
                        method,
                        seed,
                        n,
                        accuracy: r.accuracy,
                        seconds_per_epoch: r.seconds_per_epoch,
                        backtracks: r.backtracks,
                        error: String::new(),
                    },
                    Err(e) => {
                        bar.set_position(before + steps_per_run as u64);
                        Row {
                            depth,
                            method,
                            seed,
                            n,
                            accuracy: f64::NAN,
                            seconds_per_epoch: f64::NAN,
                            backtracks: 0,
                            error: format!("{e:#}"),
                        }
                    }
                };
                bar.suspend(|| {
                    say!(
                        "{depth:>2} layers  seed {seed}  {:<15}  n {n:>3}  accuracy {:6.2}%  {:7.2} s/epoch{}{}",
                        method.label(),
                        100.0 * row.accuracy,
                        row.seconds_per_epoch,
                        if row.backtracks > 0 {
                            format!("  backtracks {}", row.backtracks)
                        } else {
                            String::new()
                        },
                        if row.error.is_empty() {
                            String::new()
                        } else {
                            format!("  failed: {}", row.error)
                        }
                    )
                })?;
                rows.push(row);
            }
        }
    }
    bar.finish_and_clear();
    let wall = start.elapsed().as_secs_f64();

    let table = markdown(&header, &cli, &rows, wall, &sweeps);
    say!("\n{table}")?;
    fs::create_dir_all(&cli.out).with_context(|| format!("cannot create {}", cli.out.display()))?;
    write_csv(&csv, &data.name, cli.skip, &rows)?;
    let md = cli.out.join(format!("{stem}.md"));
    fs::write(&md, &table).with_context(|| format!("cannot write {}", md.display()))?;
    draw(&png, &rows, &cli.methods, &title)?;
    say!(
        "wrote {}, {} and {} ({wall:.0} s)",
        csv.display(),
        md.display(),
        png.display()
    )?;
    Ok(())
}

/// Draws `rows` into the PNG `png`.
fn draw(png: &Path, rows: &[Row], methods: &[Method], title: &str) -> Result<()> {
    let points: Vec<plot::Point> = rows
        .iter()
        .map(|r| plot::Point {
            depth: r.depth,
            method: r.method,
            accuracy: r.accuracy,
            ratio: ratio(rows, r),
        })
        .collect();
    plot::draw(png, &points, methods, title)
        .with_context(|| format!("cannot draw {}", png.display()))
}

/// The rows of a CSV written by [`write_csv`] (the error column is not read back).
fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.splitn(11, ',').collect();
        let bad = || {
            anyhow::anyhow!(
                "{}: line {} is not a row of this example's CSV",
                path.display(),
                i + 1
            )
        };
        if f.len() < 10 {
            return Err(bad());
        }
        let method = Method::value_variants()
            .iter()
            .copied()
            .find(|m| m.label() == f[3])
            .ok_or_else(bad)?;
        rows.push(Row {
            depth: f[2].parse().map_err(|_| bad())?,
            method,
            seed: f[4].parse().map_err(|_| bad())?,
            n: f[5].parse().map_err(|_| bad())?,
            accuracy: f[6].parse().map_err(|_| bad())?,
            seconds_per_epoch: f[7].parse().map_err(|_| bad())?,
            backtracks: f[9].parse().map_err(|_| bad())?,
            error: String::new(),
        });
    }
    Ok(rows)
}

/// `r`'s seconds per epoch over backprop's for the same depth and seed (`NaN` without a
/// backprop run).
fn ratio(rows: &[Row], r: &Row) -> f64 {
    rows.iter()
        .find(|b| b.method == Method::Backprop && b.depth == r.depth && b.seed == r.seed)
        .map_or(f64::NAN, |b| r.seconds_per_epoch / b.seconds_per_epoch)
}

/// Two Markdown tables: test accuracy (%) per method and depth, and time per epoch relative
/// to backprop (mean over seeds).
fn markdown(
    header: &str,
    cli: &Cli,
    rows: &[Row],
    wall: f64,
    sweeps: &dyn Fn(usize) -> usize,
) -> String {
    let pick = |m: Method, d: usize, f: &dyn Fn(&Row) -> f64| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.method == m && r.depth == d)
            .map(f)
            .collect()
    };
    let head = |what: &str| {
        let mut s = format!("| {what} |");
        for &d in &cli.depths {
            s += &format!(" {d} layers (n {}) |", sweeps(d));
        }
        s += "\n|---|";
        s += &"---:|".repeat(cli.depths.len());
        s + "\n"
    };
    let mut s =
        format!("{header}; wall time {wall:.0} s\n\nTest accuracy (%), mean ± sd over seeds:\n\n");
    s += &head("method");
    for &m in &cli.methods {
        s += &format!("| {} |", m.label());
        for &d in &cli.depths {
            s += &format!(" {} |", stats::percent(&pick(m, d, &|r| r.accuracy)));
        }
        s += "\n";
    }
    s += "\nTime per epoch relative to backprop (same process, mean over seeds):\n\n";
    s += &head("method");
    for &m in &cli.methods {
        s += &format!("| {} |", m.label());
        for &d in &cli.depths {
            let cell = stats::mean_sd(&pick(m, d, &|r| ratio(rows, r)))
                .map_or("-".to_string(), |(mean, _, _)| format!("{mean:.1}×"));
            s += &format!(" {cell} |");
        }
        s += "\n";
    }
    s
}

fn write_csv(path: &Path, data: &str, skip: bool, rows: &[Row]) -> Result<()> {
    let mut out = String::from(
        "data,network,layers,method,seed,n,accuracy,seconds_per_epoch,ratio_to_backprop,backtracks,error\n",
    );
    for r in rows {
        out += &format!(
            "{data},{},{},{},{},{},{},{},{},{},\"{}\"\n",
            if skip { "residual" } else { "chain" },
            r.depth,
            r.method.label(),
            r.seed,
            r.n,
            r.accuracy,
            r.seconds_per_epoch,
            ratio(rows, r),
            r.backtracks,
            r.error.replace('"', "'")
        );
    }
    fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}
