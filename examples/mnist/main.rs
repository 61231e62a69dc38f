//! Trains the seed's 5-layer convolutional network on MNIST with predictive coding.
//!
//! ```text
//! cargo run --release --example mnist                       # FixedPred, bundled 10k digits
//! cargo run --release --example mnist -- --err-type strict --loss mse
//! cargo run --release --example mnist -- --data-dir /usr/share/datasets/fashion-mnist --epochs 2
//! ```
//!
//! `model.rs` builds the network, `train.rs` holds the loop (reusable without the command
//! line), `plot.rs` draws the curves.

#[path = "../common/font.rs"]
mod font;
mod model;
mod plot;
mod train;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tch::Device;
use tch2pc::{ErrType, OnDiverge};

/// Train the seed's 5-layer network (32,695 parameters) on MNIST with predictive coding
/// (tch2pc::pc_infer) and Adam.
///
/// Without --data-dir it uses the 10,000-digit MNIST subset bundled with the crate
/// (8,000 train, 2,000 test), found in $TCH2PC_DATA_DIR if set, else in the crate's
/// data/mnist-10k. The last line printed is `final test accuracy: XX.XX%`.
#[derive(Debug, Parser)]
#[command(name = "mnist", version)]
struct Cli {
    /// Predictive-coding algorithm.
    #[arg(long, value_enum, ignore_case = true, default_value_t = ErrArg::Fixedpred)]
    err_type: ErrArg,
    /// Relaxation step size (Strict, FixedPred).
    #[arg(long, default_value_t = 0.1)]
    eta: f64,
    /// Relaxation sweeps (Strict, FixedPred).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    n: u32,
    /// Loss: cross-entropy on the logits, or MSE against one-hot targets.
    #[arg(long, value_enum, ignore_case = true, default_value_t = LossArg::Ce)]
    loss: LossArg,
    /// What a diverging Strict relaxation does: stop training with an error, or backtrack
    /// (halve the relaxation step until the energy decreases).
    #[arg(long, value_enum, ignore_case = true, default_value_t = DivergeArg::Error)]
    on_diverge: DivergeArg,
    /// Passes over the training set.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    /// Examples per step.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 0.002)]
    lr: f64,
    /// Directory with MNIST-style IDX files (train-images-idx3-ubyte[.gz], ...), e.g.
    /// full MNIST or /usr/share/datasets/fashion-mnist. Default: the bundled subset
    /// ($TCH2PC_DATA_DIR, else the crate's data/mnist-10k).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Where to train (auto: CUDA if available).
    #[arg(long, value_enum, ignore_case = true, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Seed for initialisation and shuffling. A seeded CPU run repeats bit for bit on the
    /// same machine with the same --threads; another CPU rounds differently, and its
    /// results differ in the last digits. Default: drawn from the clock (and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Write one CSV row per step (epoch,step,loss,seconds; seconds since training began).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Draw the training loss per step and the test accuracy per epoch into a PNG.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    /// libtorch's number of intra-op CPU threads (default: libtorch's choice).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    threads: Option<i32>,
    /// Print only the final accuracy line (no header, progress bar or per-epoch lines).
    #[arg(long, short)]
    quiet: bool,
    /// Layer 4 is GainTanh, a layer of our own (a struct implementing tch2pc::Layer:
    /// g * tanh(W x + b) with trainable gains g), instead of Linear(50, 30) + ReLU.
    #[arg(long)]
    custom_layer: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ErrArg {
    Strict,
    Fixedpred,
    Exact,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LossArg {
    /// cross-entropy
    Ce,
    /// mean squared error against one-hot targets
    Mse,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DivergeArg {
    Error,
    Backtrack,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
    Auto,
}

fn config(cli: Cli) -> anyhow::Result<train::Config> {
    let device = match cli.device {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Auto => Device::cuda_if_available(),
        DeviceArg::Cuda if tch::Cuda::is_available() => Device::Cuda(0),
        DeviceArg::Cuda => anyhow::bail!("--device cuda: no CUDA device is available to libtorch"),
    };
    let seed = cli.seed.unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (t.as_nanos() % 1_000_000) as u64
    });
    if let Some(path) = &cli.plot {
        check_writable(path)?;
    }
    Ok(train::Config {
        err_type: match cli.err_type {
            ErrArg::Strict => ErrType::Strict,
            ErrArg::Fixedpred => ErrType::FixedPred,
            ErrArg::Exact => ErrType::Exact,
        },
        eta: cli.eta,
        n: cli.n as usize,
        on_diverge: match cli.on_diverge {
            DivergeArg::Error => OnDiverge::Error,
            DivergeArg::Backtrack => OnDiverge::Backtrack,
        },
        loss: match cli.loss {
            LossArg::Ce => train::LossKind::CrossEntropy,
            LossArg::Mse => train::LossKind::Mse,
        },
        epochs: cli.epochs as usize,
        batch_size: cli.batch_size as usize,
        lr: cli.lr,
        data_dir: cli.data_dir,
        device,
        seed,
        log: cli.log,
        plot: cli.plot,
        verbose: !cli.quiet,
        progress: !cli.quiet && std::io::stdout().is_terminal(),
        custom_layer: cli.custom_layer,
    })
}

/// Fails now, before any training, if `path` cannot be written (a missing directory, no
/// permission). A file that did not exist is removed again; an existing one is untouched.
fn check_writable(path: &std::path::Path) -> anyhow::Result<()> {
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot write the plot {}", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message
/// already contains (some errors print their source in their own message).
fn chain(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.is_empty() {
            msg = text;
        } else if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
    }
    msg
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        tch::set_num_threads(n);
    }
    let result = config(cli).and_then(|cfg| train::train(&cfg));
    match result {
        Ok(history) => {
            let acc = history.final_accuracy().unwrap_or(0.0);
            match writeln!(
                std::io::stdout(),
                "final test accuracy: {:.2}%",
                100.0 * acc
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write to stdout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}
