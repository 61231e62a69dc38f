//! Do skip connections let predictive coding train deep MLPs? A residual MLP (blocks
//! `h + act(L h)`, the merges being `Graph::add_fn` nodes) against the same network
//! without skips (a plain chain), trained with backprop, Exact, FixedPred and Strict.
//!
//! ```text
//! cargo run --release --example resnet                       # bundled MNIST subset
//! cargo run --release --example resnet -- --data-dir /usr/share/datasets/fashion-mnist
//! cargo run --release --example resnet -- --replot   # redraw runs/resnet/mnist.png from its CSV
//! cargo run --release --example resnet -- --blocks 8 --seeds 1 --methods backprop,strict
//! ```
//!
//! For each seed, both networks start from the same weights (libtorch seeded before
//! building) and every method starts from them too. Prints a Markdown table of the test
//! accuracy (mean ± sd over seeds) per method and network, and writes into `--out`
//! `<data>.csv` (one row per run), `<data>.md` (the table) and `<data>.png` (the plot).
//!
//! The defaults are the README table's settings: 16 tanh blocks of width 128 (18 linear
//! layers) initialised like PyTorch's `nn.Linear`, under which the plain chain's signal
//! fades and it does not train (for backprop either), while the residual net does; the
//! first 4,000 training examples, 2 epochs, batch 100, Adam lr 0.001; FixedPred and
//! Strict with eta 0.5 and n = 80 sweeps (about twice the residual net's longest path, 34
//! nodes, since with eta 0.5 errors travel about one node per two sweeps); Strict
//! backtracks (halves eta) when a sweep would raise the energy, which it does once per
//! step on the residual net, whose merge nodes make the energy stiffer.
//! The shared pieces live in `examples/common/`: `data.rs` (loading, subsets), `mlp.rs`
//! (the networks), `fit.rs` (the training loop of each method), `stats.rs`.

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

use anyhow::{Context, Result};
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

/// Residual MLP against the plain chain of the same depth, trained with backprop and with
/// predictive coding (Exact, FixedPred, Strict); test accuracy mean ± sd over seeds.
///
/// The defaults are the settings of the README's table.
#[derive(Debug, Parser)]
#[command(name = "resnet", version)]
struct Cli {
    /// Hidden blocks between the input layer and the output layer (the plain chain has
    /// blocks + 2 linear layers; the residual net the same layers plus one merge node per
    /// block).
    #[arg(long, default_value_t = 16)]
    blocks: usize,
    /// Width of the hidden layers.
    #[arg(long, default_value_t = 128)]
    width: i64,
    /// Hidden non-linearity.
    #[arg(long, value_enum, default_value_t = Act::Tanh)]
    act: Act,
    /// Weight initialisation: PyTorch's nn.Linear default (uniform ±1/√fan_in) or tch's
    /// nn::linear default (Kaiming-uniform, std √(2/fan_in)).
    #[arg(long, value_enum, default_value_t = Init::Pytorch)]
    init: Init,
    /// Methods, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',',
          default_values_t = [Method::Backprop, Method::Exact, Method::Fixedpred, Method::Strict])]
    methods: Vec<Method>,
    /// Seeds 0, 1, …, SEEDS-1.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Passes over the training subset.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    /// Examples per step.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Adam's learning rate (all methods).
    #[arg(long, default_value_t = 0.001)]
    lr: f64,
    /// Relaxation sweeps of FixedPred and Strict (default: 2 · (2·blocks + 2) + 12, twice
    /// the residual net's longest path from input to output plus 12: 80 for 16 blocks).
    #[arg(long)]
    n: Option<usize>,
    /// FixedPred's step.
    #[arg(long, default_value_t = 0.5)]
    fixedpred_eta: f64,
    /// Strict's step.
    #[arg(long, default_value_t = 0.5)]
    eta: f64,
    /// Momentum factor of Strict+momentum (`--methods strict-momentum`).
    #[arg(long, default_value_t = 0.5)]
    momentum: f64,
    /// Strict's step with Adam on the beliefs (`--methods strict-adam`).
    #[arg(long, default_value_t = 0.0001)]
    adam_eta: f64,
    /// Adam's learning rate for iPC (`--methods ipc`), which steps after every sweep.
    #[arg(long, default_value_t = 0.001)]
    ipc_lr: f64,
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
    #[arg(long, default_value = "runs/resnet")]
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
    skip: bool,
    method: Method,
    seed: u64,
    /// `NaN` for a failed run.
    accuracy: f64,
    seconds_per_epoch: f64,
    backtracks: usize,
    error: String,
}

fn network(skip: bool) -> &'static str {
    if skip {
        "residual"
    } else {
        "chain"
    }
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
    let device = Device::Cpu;
    let data = data::load(
        cli.data_dir.as_deref(),
        Some(cli.train_size),
        cli.test_size,
        device,
    )?;
    let spec = |skip| Spec {
        input: data.features(),
        width: cli.width,
        layers: cli.blocks + 2,
        skip,
        act: cli.act,
        init: cli.init,
    };
    let n = cli.n.unwrap_or(2 * spec(true).longest_path() + 12);
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
        "{}; {} MLP ({}), width {}, {} blocks ({} linear layers, {} parameters; chain {} nodes, \
         residual {} nodes); {} epochs, batch {}, Adam lr {}; FixedPred eta {}, Strict eta {} \
         ({} on divergence), n {}; seeds 0..{}",
        data.describe(),
        cli.act.name(),
        cli.init.name(),
        cli.width,
        cli.blocks,
        cli.blocks + 2,
        spec(false).parameters(),
        spec(false).nodes(),
        spec(true).nodes(),
        cli.epochs,
        cli.batch_size,
        cli.lr,
        cli.fixedpred_eta,
        cli.eta,
        match cli.on_diverge {
            DivergeArg::Error => "error",
            DivergeArg::Backtrack => "backtrack",
        },
        n,
        cli.seeds - 1,
    );
    let stem = data.name.to_lowercase();
    let csv = cli.out.join(format!("{stem}.csv"));
    let png = cli.out.join(format!("{stem}.png"));
    let title = format!(
        "{}: {} blocks of width {} ({}, {}), {} seeds",
        data.name,
        cli.blocks,
        cli.width,
        cli.act.name(),
        cli.init.name(),
        cli.seeds
    );
    if cli.replot {
        draw(&png, &read_csv(&csv)?, &cli.methods, &title)?;
        say!("redrew {} from {}", png.display(), csv.display())?;
        return Ok(());
    }
    say!("{header}")?;

    let steps_per_run = data.train.len().div_ceil(cli.batch_size as usize) * cli.epochs as usize;
    let runs = cli.seeds as usize * 2 * cli.methods.len();
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
    for seed in 0..cli.seeds {
        for skip in [false, true] {
            for &method in &cli.methods {
                bar.set_message(format!(
                    "seed {seed}, {}, {}",
                    network(skip),
                    method.label()
                ));
                tch::manual_seed(seed as i64);
                let vs = nn::VarStore::new(device);
                let model = mlp::build(&vs, spec(skip));
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
                let row = match fit::run(&model, &vs, &data.train, &data.test, &cfg, &bar) {
                    Ok(r) => Row {
                        skip,
                        method,
                        seed,
                        accuracy: r.accuracy,
                        seconds_per_epoch: r.seconds_per_epoch,
                        backtracks: r.backtracks,
                        error: String::new(),
                    },
                    Err(e) => {
                        bar.set_position(before + steps_per_run as u64);
                        Row {
                            skip,
                            method,
                            seed,
                            accuracy: f64::NAN,
                            seconds_per_epoch: f64::NAN,
                            backtracks: 0,
                            error: format!("{e:#}"),
                        }
                    }
                };
                bar.suspend(|| {
                    say!(
                        "seed {seed}  {:<8}  {:<15}  accuracy {:6.2}%  {:7.2} s/epoch{}{}",
                        network(skip),
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

    let table = markdown(&header, &cli.methods, &rows, wall);
    say!("\n{table}")?;
    fs::create_dir_all(&cli.out).with_context(|| format!("cannot create {}", cli.out.display()))?;
    write_csv(&csv, &data.name, &rows)?;
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

/// The Markdown table: one row per method, accuracy (%) and seconds per epoch for the
/// chain and the residual net.
fn markdown(header: &str, methods: &[Method], rows: &[Row], wall: f64) -> String {
    let pick = |skip: bool, m: Method, f: fn(&Row) -> f64| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.skip == skip && r.method == m)
            .map(f)
            .collect()
    };
    let mut s = format!("{header}; wall time {wall:.0} s\n\n");
    s += "| method | chain: test accuracy (%) | residual: test accuracy (%) | chain s/epoch | residual s/epoch |\n";
    s += "|---|---:|---:|---:|---:|\n";
    for &m in methods {
        let secs = |skip| {
            stats::mean_sd(&pick(skip, m, |r| r.seconds_per_epoch))
                .map_or("-".to_string(), |(mean, _, _)| format!("{mean:.2}"))
        };
        s += &format!(
            "| {} | {} | {} | {} | {} |\n",
            m.label(),
            stats::percent(&pick(false, m, |r| r.accuracy)),
            stats::percent(&pick(true, m, |r| r.accuracy)),
            secs(false),
            secs(true),
        );
    }
    s
}

/// Draws `rows` into the PNG `png`.
fn draw(png: &Path, rows: &[Row], methods: &[Method], title: &str) -> Result<()> {
    let results: Vec<plot::Outcome> = rows
        .iter()
        .map(|r| plot::Outcome {
            skip: r.skip,
            method: r.method,
            accuracy: r.accuracy,
        })
        .collect();
    plot::draw(png, &results, methods, title)
        .with_context(|| format!("cannot draw {}", png.display()))
}

/// The rows of a CSV written by [`write_csv`] (the error column is not read back).
fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.splitn(8, ',').collect();
        let bad = || {
            anyhow::anyhow!(
                "{}: line {} is not a row of this example's CSV",
                path.display(),
                i + 1
            )
        };
        if f.len() < 7 {
            return Err(bad());
        }
        let method = Method::value_variants()
            .iter()
            .copied()
            .find(|m| m.label() == f[2])
            .ok_or_else(bad)?;
        rows.push(Row {
            skip: f[1] == network(true),
            method,
            seed: f[3].parse().map_err(|_| bad())?,
            accuracy: f[4].parse().map_err(|_| bad())?,
            seconds_per_epoch: f[5].parse().map_err(|_| bad())?,
            backtracks: f[6].parse().map_err(|_| bad())?,
            error: String::new(),
        });
    }
    Ok(rows)
}

fn write_csv(path: &Path, data: &str, rows: &[Row]) -> Result<()> {
    let mut out =
        String::from("data,network,method,seed,accuracy,seconds_per_epoch,backtracks,error\n");
    for r in rows {
        out += &format!(
            "{data},{},{},{},{},{},{},\"{}\"\n",
            network(r.skip),
            r.method.label(),
            r.seed,
            r.accuracy,
            r.seconds_per_epoch,
            r.backtracks,
            r.error.replace('"', "'")
        );
    }
    fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}
