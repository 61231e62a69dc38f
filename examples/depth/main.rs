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
//! `<data>.csv`, `<data>.settings.json` (what the plot's title says that the CSV does not
//! record, for `--replot`), `<data>.md` and `<data>.png` into `--out`. The networks, the
//! data, the training loop, most options and the output files are shared with the `resnet`
//! example (`examples/common/`).
//!
//! The defaults are the README table's settings: tanh, Kaiming-uniform weights (tch's
//! default, under which plain chains of up to 32 layers still train with backprop), the
//! first 4,000 training examples, 1 epoch, batch 100, Adam lr 0.001 for every method
//! (iPC too: lower rates were worse in a short trial); n = 2·layers + 16 sweeps
//! (20 … 80); FixedPred and Strict eta 0.5; momentum 0.5; Adam on the beliefs with eta
//! 1e-4 (Adam moves every belief by about eta per sweep, while the errors of a mean
//! cross-entropy are of order 1/batch); Strict variants backtrack. One libtorch thread.

#[path = "../common/mod.rs"]
mod common;
mod plot;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};

use common::cli::{self, say, Common};
use common::figure;
use common::fit::Method;
use common::mlp::{Act, Init, Spec};
use common::output::{read_csv, Csv, Output};
use common::stats;
use common::sweep::{Outcome, Sweep};

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
    /// Residual hidden blocks `h + act(L h)` instead of a plain chain.
    #[arg(long)]
    skip: bool,
    /// Weight initialisation: PyTorch's nn.Linear default (uniform ±1/√fan_in) or tch's
    /// nn::linear default (Kaiming-uniform, std √(2/fan_in)).
    #[arg(long, value_enum, default_value_t = Init::Kaiming)]
    init: Init,
    /// Methods, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [
        Method::Backprop, Method::Exact, Method::Fixedpred, Method::Strict,
        Method::StrictMomentum, Method::StrictAdam, Method::Ipc])]
    methods: Vec<Method>,
    /// Passes over the training subset.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    /// Relaxation sweeps per predictive-coding node (n = this · nodes + extra-sweeps).
    #[arg(long, default_value_t = 2)]
    sweeps_per_layer: usize,
    /// Relaxation sweeps added to sweeps-per-layer · nodes.
    #[arg(long, default_value_t = 16)]
    extra_sweeps: usize,
    /// Directory for <data>.csv, <data>.md and <data>.png.
    #[arg(long, default_value = "runs/depth")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// One finished run.
struct Row {
    depth: usize,
    method: Method,
    seed: u64,
    n: usize,
    outcome: Outcome,
}

/// What the plot's title says that the CSV does not record: written beside it
/// (`<data>.settings.json`) and read back by `--replot`.
#[derive(Serialize, Deserialize)]
struct Settings {
    width: i64,
    act: Act,
    init: Init,
    /// Training examples used.
    train_size: usize,
    epochs: u32,
}

/// The plot's title: the data, the networks (residual or plain chains), the `settings`
/// when known and the number of seeds in `rows`.
fn title(data: &str, skip: bool, settings: Option<&Settings>, rows: &[Row]) -> String {
    let networks = networks(skip);
    let seeds = figure::count(figure::distinct(rows.iter().map(|r| r.seed)).len(), "seed");
    match settings {
        Some(s) => format!(
            "{data}: {networks} of width {} ({}, {}), {} train examples, {} epoch(s), {seeds}",
            s.width,
            s.act.name(),
            s.init.name(),
            s.train_size,
            s.epochs,
        ),
        None => format!("{data}: {networks}, {seeds}"),
    }
}

/// `"residual MLPs"` or `"plain MLPs"`.
fn networks(skip: bool) -> &'static str {
    if skip {
        "residual MLPs"
    } else {
        "plain MLPs"
    }
}

/// The CSV's columns.
const CSV_HEADER: &str =
    "data,network,layers,method,seed,n,accuracy,seconds_per_epoch,ratio_to_backprop,backtracks,error";

fn main() -> ExitCode {
    cli::exit(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    if let Some(&d) = cli.depths.iter().find(|&&d| d < 2) {
        bail!("--depths: an MLP has at least 2 linear layers, got {d}");
    }
    let c = &cli.common;
    let data = c.load()?;
    let spec = |layers| Spec {
        input: data.features(),
        width: c.width,
        layers,
        skip: cli.skip,
        act: c.act,
        init: cli.init,
    };
    let sweeps = |layers| cli.sweeps_per_layer * spec(layers).nodes() + cli.extra_sweeps;
    let networks = networks(cli.skip);
    let header = format!(
        "{}; {} {networks} of width {} ({}); {} epoch(s), batch {}, Adam lr {} (iPC {}); \
         n = {}·nodes + {} sweeps; FixedPred eta {}; Strict eta {}, momentum {}, \
         Adam-on-beliefs eta {} ({} on divergence); seeds 0..{}",
        data.describe(),
        c.act.name(),
        c.width,
        cli.init.name(),
        cli.epochs,
        c.batch_size,
        c.lr,
        c.ipc_lr,
        cli.sweeps_per_layer,
        cli.extra_sweeps,
        c.fixedpred_eta,
        c.eta,
        c.momentum,
        c.adam_eta,
        c.on_diverge_name(),
        c.seeds - 1,
    );
    let stem = format!(
        "{}{}",
        data.name.to_lowercase(),
        if cli.skip { "-residual" } else { "" }
    );
    let out = Output::new(&cli.out, &stem);
    let network = if cli.skip { "residual" } else { "chain" };
    if c.replot {
        let rows = read_csv(&out.csv, CSV_HEADER, |line| {
            if line.text("network")? != network {
                bail!(
                    "{} holds a {} network, not a {network} one",
                    out.csv.display(),
                    line.text("network")?
                );
            }
            Ok(Row {
                depth: line.get("layers")?,
                method: line.method()?,
                seed: line.get("seed")?,
                n: line.get("n")?,
                outcome: line.outcome()?,
            })
        })?;
        if rows.is_empty() {
            bail!("{} holds no runs", out.csv.display());
        }
        return out.replot(|png, settings: Option<&Settings>| {
            draw(png, &rows, &title(&data.name, cli.skip, settings, &rows))
        });
    }
    let settings = Settings {
        width: c.width,
        act: c.act,
        init: cli.init,
        train_size: data.train.len(),
        epochs: cli.epochs,
    };
    say!("{header}")?;

    let runs = c.seeds as usize * cli.depths.len() * cli.methods.len();
    let sweep = Sweep::new(&data, c, cli.epochs, runs);
    let mut rows = Vec::with_capacity(runs);
    for &depth in &cli.depths {
        let n = sweeps(depth);
        for seed in 0..c.seeds {
            for &method in &cli.methods {
                let what = format!("{depth} layers, seed {seed}, {}", method.label());
                let outcome = sweep.run(spec(depth), method, seed, n, &what);
                sweep.say(&format!(
                    "{depth:>2} layers  seed {seed}  {:<15}  n {n:>3}  {outcome}",
                    method.label(),
                ))?;
                rows.push(Row {
                    depth,
                    method,
                    seed,
                    n,
                    outcome,
                });
            }
        }
    }
    let wall = sweep.finish();

    let table = markdown(&header, &cli, &rows, wall, &sweeps);
    let mut csv = Csv::new(CSV_HEADER);
    for r in &rows {
        let o = &r.outcome;
        csv.row(
            &[
                &data.name,
                &network,
                &r.depth,
                &r.method.label(),
                &r.seed,
                &r.n,
                &o.accuracy,
                &o.seconds_per_epoch,
                &ratio(&rows, r),
                &o.backtracks,
            ],
            &o.error,
        );
    }
    out.write(&table, &csv, &settings, wall, |png| {
        draw(
            png,
            &rows,
            &title(&data.name, cli.skip, Some(&settings), &rows),
        )
    })
}

/// Draws `rows` into the PNG `png`, the methods in the order in which they first occur.
fn draw(png: &Path, rows: &[Row], title: &str) -> Result<()> {
    let points: Vec<plot::Point> = rows
        .iter()
        .map(|r| plot::Point {
            depth: r.depth,
            method: r.method,
            accuracy: r.outcome.accuracy,
            ratio: ratio(rows, r),
        })
        .collect();
    let methods = figure::distinct(rows.iter().map(|r| r.method));
    plot::draw(png, &points, &methods, title)
}

/// `r`'s seconds per epoch over backprop's for the same depth and seed (`NaN` without a
/// backprop run).
fn ratio(rows: &[Row], r: &Row) -> f64 {
    rows.iter()
        .find(|b| b.method == Method::Backprop && b.depth == r.depth && b.seed == r.seed)
        .map_or(f64::NAN, |b| {
            r.outcome.seconds_per_epoch / b.outcome.seconds_per_epoch
        })
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
    let over = if cli.common.seeds == 1 {
        "one seed"
    } else {
        "mean ± sd over seeds"
    };
    let mut s = format!("{header}; wall time {wall:.0} s\n\nTest accuracy (%), {over}:\n\n");
    s += &head("method");
    for &m in &cli.methods {
        s += &format!("| {} |", m.label());
        for &d in &cli.depths {
            s += &format!(
                " {} |",
                stats::percent(&pick(m, d, &|r| r.outcome.accuracy))
            );
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
