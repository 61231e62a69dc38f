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
//! `<data>.csv` (one row per run), `<data>.settings.json` (the settings that the plot's
//! title names and the CSV does not record, for `--replot`), `<data>.md` (the table) and
//! `<data>.png` (the plot).
//!
//! The defaults are the README table's settings: 16 tanh blocks of width 128 (18 linear
//! layers) initialised like PyTorch's `nn.Linear`, under which the plain chain's signal
//! fades and it does not train (for backprop either), while the residual net does; the
//! first 4,000 training examples, 2 epochs, batch 100, Adam lr 0.001; FixedPred and
//! Strict with eta 0.5 and n = 80 sweeps (about twice the residual net's longest path, 34
//! nodes, since with eta 0.5 errors travel about one node per two sweeps); Strict
//! backtracks (halves eta) when a sweep would raise the energy, which it does once per
//! step on the residual net, whose merge nodes make the energy stiffer.
//! The shared pieces live in `examples/common/` (`mod.rs` lists them): the options both
//! examples have, the data, the networks, the training loop of each method, the seeded
//! runs under one progress bar, the CSV, Markdown and PNG files and `--replot`.

#[path = "../common/mod.rs"]
mod common;
mod plot;

use std::path::PathBuf;
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
    /// Weight initialisation: PyTorch's nn.Linear default (uniform ±1/√fan_in) or tch's
    /// nn::linear default (Kaiming-uniform, std √(2/fan_in)).
    #[arg(long, value_enum, default_value_t = Init::Pytorch)]
    init: Init,
    /// Methods, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',',
          default_values_t = [Method::Backprop, Method::Exact, Method::Fixedpred, Method::Strict])]
    methods: Vec<Method>,
    /// Passes over the training subset.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    /// Relaxation sweeps of FixedPred and Strict (default: 2 · (2·blocks + 2) + 12, twice
    /// the residual net's longest path from input to output plus 12: 80 for 16 blocks).
    #[arg(long)]
    n: Option<usize>,
    /// Directory for <data>.csv, <data>.md and <data>.png.
    #[arg(long, default_value = "runs/resnet")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// One finished run.
struct Row {
    skip: bool,
    method: Method,
    seed: u64,
    outcome: Outcome,
}

/// What the plot's title says about the networks, which the CSV does not record: written
/// beside it (`<data>.settings.json`) and read back by `--replot`.
#[derive(Serialize, Deserialize)]
struct Settings {
    blocks: usize,
    width: i64,
    act: Act,
    init: Init,
}

/// The plot's title: the data, the networks (when `settings` are known) and the number of
/// seeds in `rows`.
fn title(data: &str, settings: Option<&Settings>, rows: &[Row]) -> String {
    let seeds = figure::count(figure::distinct(rows.iter().map(|r| r.seed)).len(), "seed");
    match settings {
        Some(s) => format!(
            "{data}: {} blocks of width {} ({}, {}), {seeds}",
            s.blocks,
            s.width,
            s.act.name(),
            s.init.name(),
        ),
        None => format!("{data}: plain chain and residual MLP, {seeds}"),
    }
}

/// The CSV's columns.
const CSV_HEADER: &str = "data,network,method,seed,accuracy,seconds_per_epoch,backtracks,error";

fn network(skip: bool) -> &'static str {
    if skip {
        "residual"
    } else {
        "chain"
    }
}

fn main() -> ExitCode {
    cli::exit(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    let c = &cli.common;
    let data = c.load()?;
    let spec = |skip| Spec {
        input: data.features(),
        width: c.width,
        layers: cli.blocks + 2,
        skip,
        act: c.act,
        init: cli.init,
    };
    let n = cli.n.unwrap_or(2 * spec(true).longest_path() + 12);
    let header = format!(
        "{}; {} MLP ({}), width {}, {} blocks ({} linear layers, {} parameters; chain {} nodes, \
         residual {} nodes); {} epochs, batch {}, Adam lr {}; FixedPred eta {}, Strict eta {} \
         ({} on divergence), n {}; seeds 0..{}",
        data.describe(),
        c.act.name(),
        cli.init.name(),
        c.width,
        cli.blocks,
        cli.blocks + 2,
        spec(false).parameters(),
        spec(false).nodes(),
        spec(true).nodes(),
        cli.epochs,
        c.batch_size,
        c.lr,
        c.fixedpred_eta,
        c.eta,
        c.on_diverge_name(),
        n,
        c.seeds - 1,
    );
    let out = Output::new(&cli.out, &data.name.to_lowercase());
    if c.replot {
        let rows = read_csv(&out.csv, CSV_HEADER, |line| {
            Ok(Row {
                skip: line.text("network")? == network(true),
                method: line.method()?,
                seed: line.get("seed")?,
                outcome: line.outcome()?,
            })
        })?;
        if rows.is_empty() {
            bail!("{} holds no runs", out.csv.display());
        }
        return out.replot(|png, settings: Option<&Settings>| {
            plot::draw(png, &rows, &title(&data.name, settings, &rows))
        });
    }
    let settings = Settings {
        blocks: cli.blocks,
        width: c.width,
        act: c.act,
        init: cli.init,
    };
    say!("{header}")?;

    let sweep = Sweep::new(
        &data,
        c,
        cli.epochs,
        c.seeds as usize * 2 * cli.methods.len(),
    );
    let mut rows = Vec::new();
    for seed in 0..c.seeds {
        for skip in [false, true] {
            for &method in &cli.methods {
                let what = format!("seed {seed}, {}, {}", network(skip), method.label());
                let outcome = sweep.run(spec(skip), method, seed, n, &what);
                sweep.say(&format!(
                    "seed {seed}  {:<8}  {:<15}  {outcome}",
                    network(skip),
                    method.label(),
                ))?;
                rows.push(Row {
                    skip,
                    method,
                    seed,
                    outcome,
                });
            }
        }
    }
    let wall = sweep.finish();

    let table = markdown(&header, &cli.methods, &rows, wall);
    let mut csv = Csv::new(CSV_HEADER);
    for r in &rows {
        let o = &r.outcome;
        csv.row(
            &[
                &data.name,
                &network(r.skip),
                &r.method.label(),
                &r.seed,
                &o.accuracy,
                &o.seconds_per_epoch,
                &o.backtracks,
            ],
            &o.error,
        );
    }
    out.write(&table, &csv, &settings, wall, |png| {
        plot::draw(png, &rows, &title(&data.name, Some(&settings), &rows))
    })
}

/// The Markdown table: one row per method, accuracy (%) and seconds per epoch for the
/// chain and the residual net.
fn markdown(header: &str, methods: &[Method], rows: &[Row], wall: f64) -> String {
    let pick = |skip: bool, m: Method, f: fn(&Outcome) -> f64| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.skip == skip && r.method == m)
            .map(|r| f(&r.outcome))
            .collect()
    };
    let mut s = format!("{header}; wall time {wall:.0} s\n\n");
    s += "| method | chain: test accuracy (%) | residual: test accuracy (%) | chain s/epoch | residual s/epoch |\n";
    s += "|---|---:|---:|---:|---:|\n";
    for &m in methods {
        let secs = |skip| {
            stats::mean_sd(&pick(skip, m, |o| o.seconds_per_epoch))
                .map_or("-".to_string(), |(mean, _, _)| format!("{mean:.2}"))
        };
        s += &format!(
            "| {} | {} | {} | {} | {} |\n",
            m.label(),
            stats::percent(&pick(false, m, |o| o.accuracy)),
            stats::percent(&pick(true, m, |o| o.accuracy)),
            secs(false),
            secs(true),
        );
    }
    s
}
