//! The training loop: predictive-coding updates from `tch2pc`, Adam steps, test accuracy
//! after every epoch, a CSV log and a plot.
//!
//! Nothing here depends on the command line: build a [`Config`] and call [`train`]. A
//! test can reuse the loop by including the example's modules at its crate root:
//!
//! ```ignore
//! #[path = "../examples/mnist/model.rs"] mod model;
//! #[path = "../examples/mnist/plot.rs"] mod plot;
//! #[path = "../examples/mnist/train.rs"] mod train;
//!
//! let history = train::train(&train::Config { epochs: 1, ..train::Config::default() })?;
//! assert!(history.final_accuracy().unwrap() > 0.8);
//! ```

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use tch2pc::data::{self, Split};
use tch2pc::{loss, ErrType, OnDiverge, PcError, PcInfer};

use crate::model;
#[path = "../common/shuffle.rs"]
mod shuffle;
use shuffle::epoch_seed;

/// `println!` that returns an error instead of panicking when stdout is closed (a
/// `| head`, say).
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*).context("cannot write to stdout")
    };
}
use crate::plot;

/// The loss function the network is trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Cross-entropy of the logits against the labels (PyTorch's `nn.CrossEntropyLoss()`).
    CrossEntropy,
    /// Mean squared error of the outputs against one-hot targets (`nn.MSELoss()`).
    Mse,
}

impl LossKind {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::CrossEntropy => "cross-entropy",
            LossKind::Mse => "MSE (one-hot)",
        }
    }
}

/// Everything one training run needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The predictive-coding algorithm.
    pub err_type: ErrType,
    /// Step size of the relaxation.
    pub eta: f64,
    /// Number of relaxation sweeps.
    pub n: usize,
    /// What a diverging Strict relaxation does.
    pub on_diverge: OnDiverge,
    /// The loss.
    pub loss: LossKind,
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// An MNIST-style IDX directory; `None` for the bundled 10k-digit subset.
    pub data_dir: Option<PathBuf>,
    /// Where to train.
    pub device: Device,
    /// Seeds libtorch (initialisation) and, with the epoch, the shuffling.
    pub seed: u64,
    /// A CSV file with one row per step.
    pub log: Option<PathBuf>,
    /// A PNG file with the training loss and the test accuracy.
    pub plot: Option<PathBuf>,
    /// Print the header and one line per epoch (the final line is the caller's).
    pub verbose: bool,
    /// Draw a progress bar per epoch (on stderr).
    pub progress: bool,
    /// Layer 4 is [`model::GainTanh`], a layer of our own, instead of `Linear(50, 30),
    /// ReLU` ([`model::net_with_custom_layer`]).
    pub custom_layer: bool,
}

impl Default for Config {
    /// The example's defaults (those of `cargo run --example mnist` without arguments,
    /// with seed 0), silent.
    fn default() -> Self {
        Config {
            err_type: ErrType::FixedPred,
            eta: 0.1,
            n: 20,
            on_diverge: OnDiverge::Error,
            loss: LossKind::CrossEntropy,
            epochs: 20,
            batch_size: 300,
            lr: 0.002,
            data_dir: None,
            device: Device::Cpu,
            seed: 0,
            log: None,
            plot: None,
            verbose: false,
            progress: false,
            custom_layer: false,
        }
    }
}

/// One optimisation step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based step, counted across epochs.
    pub step: usize,
    /// The feed-forward loss of the batch (before the update).
    pub loss: f64,
    /// Seconds since training started, at the end of the step.
    pub seconds: f64,
}

/// One epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// The mean feed-forward loss over the epoch's training examples.
    pub train_loss: f64,
    /// Fraction of the test set classified correctly after the epoch, in `[0, 1]`.
    pub test_accuracy: f64,
    /// Training seconds of the epoch (evaluation excluded).
    pub seconds: f64,
    /// Step halvings of backtracking Strict relaxations during the epoch.
    pub backtracks: usize,
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// One record per step.
    pub steps: Vec<StepRecord>,
    /// One record per epoch.
    pub epochs: Vec<EpochRecord>,
}

impl History {
    /// The test accuracy after the last epoch.
    pub fn final_accuracy(&self) -> Option<f64> {
        self.epochs.last().map(|e| e.test_accuracy)
    }
}

/// Fraction of `split` that `model` classifies correctly, in batches, without gradients.
pub fn accuracy(model: &tch2pc::Sequential, split: &Split, batch_size: usize) -> Result<f64> {
    if split.is_empty() {
        bail!("the test set is empty");
    }
    tch::no_grad(|| -> Result<f64> {
        let mut correct = 0i64;
        for batch in split.batches(batch_size, None)? {
            let (x, y) = batch?;
            let logits = model.f_forward(&x)?;
            correct += logits
                .f_argmax(-1, false)?
                .f_eq_tensor(&y)?
                .f_sum(Kind::Int64)?
                .f_int64_value(&[])?;
        }
        Ok(correct as f64 / split.len() as f64)
    })
}

/// The hint printed under a failed step.
fn hint(err: &PcError, cfg: &Config) -> &'static str {
    match err {
        PcError::Diverged { .. } | PcError::NonFiniteBeliefs { .. } => {
            if cfg.on_diverge == OnDiverge::Backtrack {
                "the relaxation diverged even with backtracking; try a smaller --eta or --lr"
            } else {
                "Strict's relaxation diverged; rerun with --on-diverge backtrack (halves the \
                 relaxation step whenever the energy would rise), a smaller --eta, \
                 or --err-type fixedpred"
            }
        }
        PcError::NonFiniteLoss(_) | PcError::NonFiniteGradient(_) => {
            "training became numerically unstable; try a smaller --lr or --eta"
        }
        PcError::LabelOutOfRange { .. } => {
            "the data has more than 10 classes; this network has 10 outputs"
        }
        _ => "",
    }
}

/// A step whose `pc_infer` failed: training stops there (downcast the error of [`train`]
/// to this type to inspect it).
#[derive(Debug)]
pub struct StepError {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based step within the epoch.
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// What `pc_infer` returned.
    pub error: PcError,
    /// What to try instead (may be empty).
    pub hint: &'static str,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "training stopped: pc_infer failed at epoch {}, step {} of {}: {}",
            self.epoch, self.step, self.steps_per_epoch, self.error
        )?;
        if !self.hint.is_empty() {
            write!(f, "\nhint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for StepError {}

/// CSV writer for the per-step log.
struct Log {
    out: BufWriter<File>,
    path: PathBuf,
}

impl Log {
    fn create(path: &PathBuf) -> Result<Log> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the log file {}", path.display()))?;
        let mut log = Log {
            out: BufWriter::new(file),
            path: path.clone(),
        };
        writeln!(log.out, "epoch,step,loss,seconds").with_context(|| log.context())?;
        Ok(log)
    }

    fn context(&self) -> String {
        format!("cannot write the log file {}", self.path.display())
    }

    fn row(&mut self, r: &StepRecord) -> Result<()> {
        writeln!(
            self.out,
            "{},{},{},{:.4}",
            r.epoch, r.step, r.loss, r.seconds
        )
        .with_context(|| self.context())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().with_context(|| self.context())
    }
}

fn progress_bar(cfg: &Config, steps: usize, epoch: usize) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    let style = ProgressStyle::with_template(
        "epoch {prefix} [{bar:30}] {pos}/{len} steps  loss {msg}  {sps}  eta {eta}",
    )
    .expect("valid progress template")
    .with_key("sps", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.2} steps/s", s.per_sec());
    })
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!(
        "{epoch:>w$}/{}",
        cfg.epochs,
        w = cfg.epochs.to_string().len()
    ));
    bar.set_message("-");
    bar
}

/// Trains the network as `cfg` says. Returns the per-step and per-epoch records; writes
/// the log and the plot if asked. A failed `pc_infer` (a diverged relaxation, say) stops
/// training with an error naming the epoch and step; the log keeps the steps before it.
pub fn train(cfg: &Config) -> Result<History> {
    if cfg.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if cfg.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        bail!("--lr must be finite and > 0, got {}", cfg.lr);
    }
    let kind = Kind::Float;
    tch::manual_seed(cfg.seed as i64);

    // Without --data-dir: the bundled digits, wherever `find_bundled` finds them (an
    // explicit path, $TCH2PC_DATA_DIR, or the directory the crate was built from).
    let dir = match &cfg.data_dir {
        Some(dir) => dir.clone(),
        None => data::find_bundled(None)?,
    };
    let dataset = data::load_dir(&dir, kind, cfg.device)
        .with_context(|| format!("cannot load an MNIST-style dataset from {}", dir.display()))?;
    let (train_set, test_set) = (dataset.train, dataset.test);
    let data_name = match &cfg.data_dir {
        None => "bundled MNIST subset".to_string(),
        Some(dir) => dir.display().to_string(),
    };
    if train_set.is_empty() {
        bail!("the training set in {} is empty", dir.display());
    }
    let shape = train_set.images.size();
    if shape[1..] != [1, 28, 28] {
        bail!(
            "this network takes 28x28 single-channel images; {} has images of shape {:?}",
            dir.display(),
            &shape[1..]
        );
    }

    let vs = nn::VarStore::new(cfg.device);
    let net = if cfg.custom_layer {
        model::net_with_custom_layer(&vs)
    } else {
        model::net(&vs)
    };
    debug_assert_eq!(
        model::parameter_count(&vs),
        if cfg.custom_layer {
            model::PARAMETERS_CUSTOM
        } else {
            model::PARAMETERS
        }
    );
    let mut opt = nn::Adam::default().build(&vs, cfg.lr)?;

    if cfg.verbose {
        let algorithm = match cfg.err_type {
            ErrType::Exact => "Exact (backprop's gradients in PC form)".to_string(),
            ErrType::FixedPred => format!("FixedPred (eta {}, n {})", cfg.eta, cfg.n),
            ErrType::Strict => format!(
                "Strict (eta {}, n {}, {} on divergence)",
                cfg.eta,
                cfg.n,
                if cfg.on_diverge == OnDiverge::Backtrack {
                    "backtrack"
                } else {
                    "error"
                }
            ),
        };
        say!(
            "algorithm {algorithm}; loss {}; Adam lr {}; batch {}; {} epochs; seed {}",
            cfg.loss.name(),
            cfg.lr,
            cfg.batch_size,
            cfg.epochs,
            cfg.seed,
        )?;
        say!(
            "data {} ({} train, {} test); model {} PC layers{}, {} parameters; device {:?}, {} threads",
            dir.display(),
            train_set.len(),
            test_set.len(),
            net.len(),
            if cfg.custom_layer {
                " (layer 4: GainTanh)"
            } else {
                ""
            },
            model::parameter_count(&vs),
            cfg.device,
            tch::get_num_threads(),
        )?;
    }

    let mut log = cfg.log.as_ref().map(Log::create).transpose()?;
    let loss_fn: fn(&Tensor, &Tensor) -> Tensor = match cfg.loss {
        LossKind::CrossEntropy => loss::cross_entropy,
        LossKind::Mse => loss::mse,
    };
    let steps_per_epoch = train_set.len().div_ceil(cfg.batch_size);
    let eval_batch = 1000;
    let mut history = History::default();
    let start = Instant::now();
    let mut step = 0usize;
    for epoch in 1..=cfg.epochs {
        let epoch_start = Instant::now();
        let bar = progress_bar(cfg, steps_per_epoch, epoch);
        let (mut loss_sum, mut seen, mut backtracks) = (0f64, 0usize, 0usize);
        for batch in train_set.batches(cfg.batch_size, Some(epoch_seed(cfg.seed, epoch)))? {
            let (x, labels) = batch?;
            step += 1;
            let y = match cfg.loss {
                LossKind::CrossEntropy => labels,
                LossKind::Mse => labels.f_one_hot(model::CLASSES)?.f_to_kind(kind)?,
            };
            let out = PcInfer::new(cfg.err_type)
                .eta(cfg.eta)
                .n(cfg.n)
                .on_diverge(cfg.on_diverge)
                .run(&net, &loss_fn, &x, &y);
            let out = match out {
                Ok(out) => out,
                Err(error) => {
                    bar.abandon();
                    if let Some(log) = log.as_mut() {
                        log.flush()?;
                    }
                    return Err(StepError {
                        epoch,
                        step: step - (epoch - 1) * steps_per_epoch,
                        steps_per_epoch,
                        hint: hint(&error, cfg),
                        error,
                    }
                    .into());
                }
            };
            opt.step();
            let batch_loss = out.loss.f_double_value(&[])?;
            let n = x.size()[0] as usize;
            loss_sum += batch_loss * n as f64;
            seen += n;
            backtracks += out.report.backtracks;
            let record = StepRecord {
                epoch,
                step,
                loss: batch_loss,
                seconds: start.elapsed().as_secs_f64(),
            };
            if let Some(log) = log.as_mut() {
                log.row(&record)?;
            }
            history.steps.push(record);
            bar.set_message(format!("{batch_loss:.4}"));
            bar.inc(1);
        }
        let seconds = epoch_start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if let Some(log) = log.as_mut() {
            log.flush()?;
        }
        let test_accuracy = accuracy(&net, &test_set, eval_batch)?;
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / seen as f64,
            test_accuracy,
            seconds,
            backtracks,
        };
        if cfg.verbose {
            let bt = if cfg.on_diverge == OnDiverge::Backtrack {
                format!("  backtracks {backtracks}")
            } else {
                String::new()
            };
            say!(
                "epoch {epoch:>w$}/{}  train loss {:.4}  test accuracy {:6.2}%  {seconds:.1}s{bt}",
                cfg.epochs,
                record.train_loss,
                100.0 * test_accuracy,
                w = cfg.epochs.to_string().len(),
            )?;
        }
        history.epochs.push(record);
    }
    if let Some(path) = &cfg.plot {
        let relaxation = match cfg.err_type {
            ErrType::Exact => String::new(),
            ErrType::FixedPred => format!("η = {}, n = {}; ", cfg.eta, cfg.n),
            ErrType::Strict => format!(
                "η = {}, n = {}, {} on divergence; ",
                cfg.eta,
                cfg.n,
                if cfg.on_diverge == OnDiverge::Backtrack {
                    "backtrack"
                } else {
                    "stop"
                }
            ),
        };
        let subtitle = [
            format!(
                "{relaxation}Adam lr = {}, batch {}, {} epochs",
                cfg.lr, cfg.batch_size, cfg.epochs
            ),
            format!(
                "seed {}, {} threads; data: {} ({} train, {} test)",
                cfg.seed,
                tch::get_num_threads(),
                data_name,
                train_set.len(),
                test_set.len(),
            ),
        ];
        plot::draw(
            path,
            &history,
            &format!(
                "{} predictive coding, {} loss",
                cfg.err_type,
                cfg.loss.name()
            ),
            &subtitle,
        )
        .with_context(|| format!("cannot draw the plot {}", path.display()))?;
        if cfg.verbose {
            say!("plot written to {}", path.display())?;
        }
    }
    if let (Some(path), true) = (&cfg.log, cfg.verbose) {
        say!("log written to {}", path.display())?;
    }
    Ok(history)
}
