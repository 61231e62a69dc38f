//! The MLPs of the `resnet` and `depth` examples, as `tch2pc::Graph`s.
//!
//! Both have `layers` linear layers of width `width` (the first reads the input, the last
//! gives the 10 logits) and `layers - 2` hidden blocks in between, each `act(W h + b)`:
//!
//! * **chain** (no skips): `x → act(L₀x) → act(L₁·) → … → L_out·`, one predictive-coding
//!   node per layer (`layers` nodes);
//! * **residual**: every hidden block is a skip `h ↦ h + act(L h)` made of two nodes, the
//!   block `f = act(L h)` and the merge `h + f` (a `Graph::add_fn` node with two parents),
//!   so `2·layers - 2` nodes. The two networks have the same parameters.
//!
//! Weights are drawn from libtorch's generator, either like PyTorch's `nn.Linear`
//! ([`Init::Pytorch`]: uniform in `±1/√fan_in`, `std = 1/√(3·fan_in)`, under which a deep
//! tanh chain's signal fades layer by layer) or like tch's `nn::linear` default
//! ([`Init::Kaiming`]: Kaiming-uniform with `std = √(2/fan_in)`); biases are uniform in
//! `±1/√fan_in` in both.

#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;
use tch2pc::Graph;

/// Number of classes (width of the last layer).
pub const CLASSES: i64 = 10;

/// The hidden non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    Tanh,
    Relu,
}

impl Act {
    fn apply(self, t: &Tensor) -> Tensor {
        match self {
            Act::Tanh => t.tanh(),
            Act::Relu => t.relu(),
        }
    }

    /// `"tanh"` or `"relu"`.
    pub fn name(self) -> &'static str {
        match self {
            Act::Tanh => "tanh",
            Act::Relu => "relu",
        }
    }
}

/// How the weights are initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// PyTorch's `nn.Linear` default: uniform in `±1/√fan_in`.
    Pytorch,
    /// tch's `nn::linear` default: Kaiming-uniform, `std = √(2/fan_in)`.
    Kaiming,
}

impl Init {
    /// `"PyTorch init"` or `"Kaiming init"`.
    pub fn name(self) -> &'static str {
        match self {
            Init::Pytorch => "PyTorch init",
            Init::Kaiming => "Kaiming init",
        }
    }
}

/// The shape of one MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Input features.
    pub input: i64,
    /// Width of the hidden layers.
    pub width: i64,
    /// Linear layers in all, at least 2 (the input layer, `layers - 2` hidden blocks, the
    /// output layer).
    pub layers: usize,
    /// Residual blocks (`h + act(L h)`) instead of a plain chain.
    pub skip: bool,
    /// The hidden non-linearity.
    pub act: Act,
    /// The weights' initialisation.
    pub init: Init,
}

impl Spec {
    /// Hidden blocks between the input and the output layer.
    pub fn blocks(&self) -> usize {
        self.layers.saturating_sub(2)
    }

    /// Predictive-coding nodes of the graph.
    pub fn nodes(&self) -> usize {
        if self.skip {
            2 * self.blocks() + 2
        } else {
            self.blocks() + 2
        }
    }

    /// Edges on the longest path from the input to the output (a chain: its length; a
    /// residual net: through every block).
    pub fn longest_path(&self) -> usize {
        self.nodes()
    }

    /// Edges on the shortest path from the input to the output (a residual net: through
    /// the skips only).
    pub fn shortest_path(&self) -> usize {
        self.blocks() + 2
    }

    /// Trainable parameters.
    pub fn parameters(&self) -> i64 {
        let hidden = self.blocks() as i64;
        (self.input + 1) * self.width
            + hidden * (self.width + 1) * self.width
            + (self.width + 1) * CLASSES
    }
}

/// A linear layer initialised as `init` says, biases uniform in `±1/√fan_in`.
fn linear(p: nn::Path, input: i64, output: i64, init: Init) -> nn::Linear {
    let bound = 1.0 / (input as f64).sqrt();
    let uniform = nn::Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let cfg = nn::LinearConfig {
        ws_init: match init {
            Init::Pytorch => uniform,
            Init::Kaiming => nn::init::DEFAULT_KAIMING_UNIFORM,
        },
        bs_init: Some(uniform),
        bias: true,
    };
    nn::linear(p, input, output, cfg)
}

/// `act(L x)` as one module.
fn dense(p: nn::Path, input: i64, output: i64, spec: Spec) -> impl Module {
    let lin = linear(p, input, output, spec.init);
    let act = spec.act;
    nn::func(move |x| act.apply(&lin.forward(x)))
}

/// Builds the MLP `spec` in `vs` (variables `in`, `block{k}`, `out`). Input:
/// `(N, spec.input)`; output: `(N, 10)` logits.
pub fn build(vs: &nn::VarStore, spec: Spec) -> Graph {
    let root = vs.root();
    let mut g = Graph::new(vs);
    let mut h = g.add(g.input(), dense(&root / "in", spec.input, spec.width, spec));
    for k in 0..spec.blocks() {
        let f = g.add(
            h,
            dense(&root / format!("block{k}"), spec.width, spec.width, spec),
        );
        h = if spec.skip {
            g.add_fn(&[h, f], |xs: &[Tensor]| &xs[0] + &xs[1])
        } else {
            f
        };
    }
    g.add(h, linear(&root / "out", spec.width, CLASSES, spec.init));
    g
}
