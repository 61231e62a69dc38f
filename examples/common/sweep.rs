//! A sweep of training runs, for the `resnet` and `depth` examples: each run seeds
//! libtorch, builds a fresh MLP from that seed, trains it with one method and records how
//! it ended (a failed run included, so that one diverging method does not end the sweep),
//! under one progress bar over all the sweep's steps.

#![allow(dead_code)]

use std::fmt;
use std::io::IsTerminal;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use tch::nn;

use super::cli::{say, Common};
use super::data::Data;
use super::fit::{self, Method, RunConfig};
use super::mlp::{self, Spec};

/// How one run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Test accuracy in `[0, 1]`; `NaN` for a failed run.
    pub accuracy: f64,
    /// `NaN` for a failed run.
    pub seconds_per_epoch: f64,
    /// Step halvings of backtracking Strict relaxations.
    pub backtracks: usize,
    /// Why the run failed; empty if it did not (and in rows read back from a CSV).
    pub error: String,
}

/// The end of a run's printed line: `accuracy  97.12%     1.23 s/epoch`, then
/// `  backtracks 12` if it backtracked and `  failed: …` if it failed.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accuracy {:6.2}%  {:7.2} s/epoch",
            100.0 * self.accuracy,
            self.seconds_per_epoch
        )?;
        if self.backtracks > 0 {
            write!(f, "  backtracks {}", self.backtracks)?;
        }
        if !self.error.is_empty() {
            write!(f, "  failed: {}", self.error)?;
        }
        Ok(())
    }
}

/// The runs of one invocation, on `data`, with the settings of `cli` and `epochs`.
pub struct Sweep<'a> {
    data: &'a Data,
    cli: &'a Common,
    epochs: u32,
    /// Steps (batches) per run.
    steps: usize,
    bar: ProgressBar,
    start: Instant,
}

impl<'a> Sweep<'a> {
    /// Sets libtorch's intra-op threads (`--threads`), starts the clock and the progress bar
    /// (hidden with `--quiet` or when stderr is not a terminal) for `runs` runs.
    pub fn new(data: &'a Data, cli: &'a Common, epochs: u32, runs: usize) -> Self {
        tch::set_num_threads(cli.threads);
        let steps = data.train.len().div_ceil(cli.batch_size as usize) * epochs as usize;
        let bar = if cli.quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new((runs * steps) as u64);
            bar.set_style(
                ProgressStyle::with_template("[{bar:30}] {pos}/{len} steps  {msg}  eta {eta}")
                    .expect("valid progress template")
                    .progress_chars("=> "),
            );
            bar
        };
        Sweep {
            data,
            cli,
            epochs,
            steps,
            bar,
            start: Instant::now(),
        }
    }

    /// Seeds libtorch with `seed`, builds `spec`, trains it with `method` (FixedPred and the
    /// Strict variants with `n` sweeps) and measures its test accuracy; `what` names the run
    /// beside the progress bar.
    pub fn run(&self, spec: Spec, method: Method, seed: u64, n: usize, what: &str) -> Outcome {
        self.bar.set_message(what.to_string());
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(self.data.train.images.device());
        let model = mlp::build(&vs, spec);
        let cfg = RunConfig {
            method,
            n,
            pc: self.cli.pc(),
            epochs: self.epochs as usize,
            batch_size: self.cli.batch_size as usize,
            lr: self.cli.lr,
            ipc_lr: self.cli.ipc_lr,
            seed,
        };
        let before = self.bar.position();
        match fit::run(
            &model,
            &vs,
            &self.data.train,
            &self.data.test,
            &cfg,
            &self.bar,
        ) {
            Ok(r) => Outcome {
                accuracy: r.accuracy,
                seconds_per_epoch: r.seconds_per_epoch,
                backtracks: r.backtracks,
                error: String::new(),
            },
            Err(e) => {
                // Skip the steps the failed run did not take.
                self.bar.set_position(before + self.steps as u64);
                Outcome {
                    accuracy: f64::NAN,
                    seconds_per_epoch: f64::NAN,
                    backtracks: 0,
                    error: format!("{e:#}"),
                }
            }
        }
    }

    /// Prints `line` without breaking the progress bar.
    pub fn say(&self, line: &str) -> Result<()> {
        self.bar.suspend(|| say!("{line}"))
    }

    /// Clears the progress bar; the seconds since [`Sweep::new`].
    pub fn finish(self) -> f64 {
        self.bar.finish_and_clear();
        self.start.elapsed().as_secs_f64()
    }
}
