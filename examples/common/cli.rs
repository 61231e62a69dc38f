//! The command line that the `resnet` and `depth` examples share: [`Common`], the options
//! that mean the same in both with the same defaults (each example flattens it into its own
//! options, with those whose defaults differ: `--init`, `--methods`, `--epochs`, `--out`),
//! [`say!`] for printing and [`exit`] for the status.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use tch::Device;
use tch2pc::OnDiverge;

use super::data::{self, Data};
use super::fit::PcSettings;
use super::mlp::Act;

/// `println!` that returns an error instead of panicking when stdout is closed (a
/// `| head`, say).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        anyhow::Context::context(
            writeln!(std::io::stdout(), $($arg)*),
            "cannot write to stdout",
        )
    }};
}
pub(crate) use say;

/// The options of both examples.
#[derive(Debug, Args)]
pub struct Common {
    /// Width of the hidden layers.
    #[arg(long, default_value_t = 128)]
    pub width: i64,
    /// Hidden non-linearity.
    #[arg(long, value_enum, default_value_t = Act::Tanh)]
    pub act: Act,
    /// Seeds 0, 1, …, SEEDS-1.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
    /// Examples per step.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Adam's learning rate for the parameters (iPC's is --ipc-lr).
    #[arg(long, default_value_t = 0.001)]
    pub lr: f64,
    /// Adam's learning rate for iPC (`--methods ipc`), which takes a parameter step after
    /// every sweep.
    #[arg(long, default_value_t = 0.001)]
    pub ipc_lr: f64,
    /// FixedPred's step.
    #[arg(long, default_value_t = 0.5)]
    pub fixedpred_eta: f64,
    /// Strict's step (plain steps, momentum, iPC).
    #[arg(long, default_value_t = 0.5)]
    pub eta: f64,
    /// Strict's step with Adam on the beliefs (`--methods strict-adam`; about the change of
    /// each belief per sweep).
    #[arg(long, default_value_t = 0.0001)]
    pub adam_eta: f64,
    /// Momentum factor of Strict+momentum (`--methods strict-momentum`).
    #[arg(long, default_value_t = 0.5)]
    pub momentum: f64,
    /// What a Strict sweep that would raise the energy does.
    #[arg(long, value_enum, default_value_t = DivergeArg::Backtrack)]
    pub on_diverge: DivergeArg,
    /// Training examples: the first N of the training files.
    #[arg(long, default_value_t = 4000)]
    pub train_size: usize,
    /// Test examples: the first N of the test files (default: all).
    #[arg(long)]
    pub test_size: Option<usize>,
    /// An MNIST-style IDX directory, e.g. /usr/share/datasets/fashion-mnist
    /// (`apt-get install dataset-fashion-mnist`). Default: the bundled MNIST subset.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// libtorch's intra-op CPU threads (these networks are small: one thread is fastest on
    /// a shared machine).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub threads: i32,
    /// Do not train: redraw <out>/<data>.png from the CSV of an earlier run and the
    /// <data>.settings.json written beside it. Only the options that name the files (--out,
    /// --data-dir, depth's --skip) matter; the figure describes the runs in the CSV.
    #[arg(long)]
    pub replot: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--on-diverge`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DivergeArg {
    Error,
    Backtrack,
}

impl Common {
    /// The data of `--data-dir`, `--train-size` and `--test-size`, on the CPU.
    pub fn load(&self) -> Result<Data> {
        data::load(
            self.data_dir.as_deref(),
            Some(self.train_size),
            self.test_size,
            Device::Cpu,
        )
    }

    /// The predictive-coding settings.
    pub fn pc(&self) -> PcSettings {
        PcSettings {
            fixedpred_eta: self.fixedpred_eta,
            strict_eta: self.eta,
            adam_eta: self.adam_eta,
            momentum: self.momentum,
            on_diverge: match self.on_diverge {
                DivergeArg::Error => OnDiverge::Error,
                DivergeArg::Backtrack => OnDiverge::Backtrack,
            },
        }
    }

    /// `--on-diverge` as headers name it: `"error"` or `"backtrack"`.
    pub fn on_diverge_name(&self) -> &'static str {
        match self.on_diverge {
            DivergeArg::Error => "error",
            DivergeArg::Backtrack => "backtrack",
        }
    }
}

/// The exit status of `main`: success, or the error printed with its causes and failure.
pub fn exit(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
