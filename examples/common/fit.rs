//! Training one MLP with one method (backprop or a predictive-coding variant), for the
//! `resnet` and `depth` examples. Nothing here prints; progress goes to an indicatif bar the
//! caller owns.

#![allow(dead_code)]

use std::time::Instant;

use anyhow::{bail, Result};
use indicatif::ProgressBar;
use tch::nn::{self, OptimizerConfig};
use tch::Kind;
use tch2pc::data::Split;
use tch2pc::{loss, BeliefOptimizer, ErrType, Graph, OnDiverge, PcInfer};

use super::shuffle::epoch_seed;

/// How the parameters' updates are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Method {
    /// `loss.backward()` through the model's forward pass.
    Backprop,
    /// Exact: backprop's gradients in predictive-coding form (`pc_infer`).
    Exact,
    /// FixedPred (fixed prediction assumption), closed form.
    Fixedpred,
    /// Strict with plain belief steps.
    Strict,
    /// Strict with heavy-ball momentum on the beliefs.
    StrictMomentum,
    /// Strict with Adam on the beliefs.
    StrictAdam,
    /// Incremental Strict (iPC): a parameter step after every sweep.
    Ipc,
}

impl Method {
    /// The name in tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            Method::Backprop => "backprop",
            Method::Exact => "Exact",
            Method::Fixedpred => "FixedPred",
            Method::Strict => "Strict",
            Method::StrictMomentum => "Strict+momentum",
            Method::StrictAdam => "Strict+Adam",
            Method::Ipc => "iPC",
        }
    }
}

/// The predictive-coding settings (ignored by backprop and Exact).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PcSettings {
    /// FixedPred's step.
    pub fixedpred_eta: f64,
    /// Strict's step (plain, momentum and iPC).
    pub strict_eta: f64,
    /// Strict's step with Adam on the beliefs (Adam's steps are about `eta` per
    /// coordinate, so it needs a far smaller one).
    pub adam_eta: f64,
    /// The momentum factor of Strict+momentum.
    pub momentum: f64,
    /// Divergence policy of the Strict variants.
    pub on_diverge: OnDiverge,
}

/// One training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunConfig {
    pub method: Method,
    /// Relaxation sweeps of FixedPred and the Strict variants.
    pub n: usize,
    pub pc: PcSettings,
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's learning rate for the parameters.
    pub lr: f64,
    /// Adam's learning rate for iPC's parameter steps (it takes `n` per batch).
    pub ipc_lr: f64,
    /// Shuffling seed (libtorch's generator is seeded by the caller, before building).
    pub seed: u64,
}

/// What a run produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunResult {
    /// Test accuracy after the last epoch, in `[0, 1]`.
    pub accuracy: f64,
    /// Mean training seconds per epoch (evaluation excluded).
    pub seconds_per_epoch: f64,
    /// Mean feed-forward training loss over the last epoch.
    pub train_loss: f64,
    /// Step halvings of backtracking Strict relaxations, over the run.
    pub backtracks: usize,
}

/// Fraction of `split` that `model` classifies correctly (in evaluation mode, no grad).
pub fn accuracy(model: &Graph, split: &Split) -> Result<f64> {
    tch::no_grad(|| -> Result<f64> {
        let mut correct = 0i64;
        for batch in split.batches(2000, None)? {
            let (x, y) = batch?;
            correct += model
                .f_forward(&x)?
                .f_argmax(-1, false)?
                .f_eq_tensor(&y)?
                .f_sum(Kind::Int64)?
                .f_int64_value(&[])?;
        }
        Ok(correct as f64 / split.len() as f64)
    })
}

/// The `PcInfer` of `cfg`'s method (not for backprop).
fn pc_infer<'a>(cfg: &RunConfig) -> PcInfer<'a> {
    let s = cfg.pc;
    let strict = |eta: f64| {
        PcInfer::new(ErrType::Strict)
            .eta(eta)
            .n(cfg.n)
            .on_diverge(s.on_diverge)
    };
    match cfg.method {
        Method::Backprop | Method::Exact => PcInfer::new(ErrType::Exact),
        Method::Fixedpred => PcInfer::new(ErrType::FixedPred)
            .eta(s.fixedpred_eta)
            .n(cfg.n),
        Method::Strict | Method::Ipc => strict(s.strict_eta),
        Method::StrictMomentum => {
            strict(s.strict_eta).belief_optimizer(BeliefOptimizer::Momentum { beta: s.momentum })
        }
        Method::StrictAdam => strict(s.adam_eta).belief_optimizer(BeliefOptimizer::adam()),
    }
}

/// Trains `model` (whose variables live in `vs`, freshly initialised) on `train` as `cfg`
/// says with cross-entropy and Adam, then measures its accuracy on `test`. `bar` advances
/// by one per step.
pub fn run(
    model: &Graph,
    vs: &nn::VarStore,
    train: &Split,
    test: &Split,
    cfg: &RunConfig,
    bar: &ProgressBar,
) -> Result<RunResult> {
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        bail!("epochs and batch size must be at least 1");
    }
    let lr = if cfg.method == Method::Ipc {
        cfg.ipc_lr
    } else {
        cfg.lr
    };
    let mut opt = nn::Adam::default().build(vs, lr)?;
    let (mut seconds, mut backtracks, mut train_loss) = (0.0, 0, f64::NAN);
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for batch in train.batches(cfg.batch_size, Some(epoch_seed(cfg.seed, epoch)))? {
            let (x, y) = batch?;
            let batch_loss = match cfg.method {
                Method::Backprop => {
                    opt.zero_grad();
                    let loss = loss::cross_entropy(&model.f_forward(&x)?, &y);
                    loss.f_backward()?;
                    opt.step();
                    loss.f_double_value(&[])?
                }
                Method::Ipc => {
                    let out = pc_infer(cfg).incremental(&mut opt).run(
                        model,
                        &loss::cross_entropy,
                        &x,
                        &y,
                    )?;
                    backtracks += out.report.backtracks;
                    out.loss.f_double_value(&[])?
                }
                _ => {
                    let out = pc_infer(cfg).run(model, &loss::cross_entropy, &x, &y)?;
                    opt.step();
                    backtracks += out.report.backtracks;
                    out.loss.f_double_value(&[])?
                }
            };
            let n = x.size()[0] as usize;
            loss_sum += batch_loss * n as f64;
            seen += n;
            bar.inc(1);
        }
        seconds += start.elapsed().as_secs_f64();
        train_loss = loss_sum / seen as f64;
        if !train_loss.is_finite() {
            bail!("the training loss became {train_loss} in epoch {epoch}");
        }
    }
    Ok(RunResult {
        accuracy: accuracy(model, test)?,
        seconds_per_epoch: seconds / cfg.epochs as f64,
        train_loss,
        backtracks,
    })
}
