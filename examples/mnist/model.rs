//! The seed's network: five predictive-coding layers, 32,695 parameters.
//!
//! | PC layer | modules                                | output shape  |
//! |----------|----------------------------------------|---------------|
//! | 1        | Conv2d(1, 10, 3), ReLU, MaxPool2d(2)   | (N, 10, 13, 13) |
//! | 2        | Conv2d(10, 5, 3), ReLU, Flatten        | (N, 605)      |
//! | 3        | Linear(605, 50), ReLU                  | (N, 50)       |
//! | 4        | Linear(50, 30), ReLU                   | (N, 30)       |
//! | 5        | Linear(30, 10)                         | (N, 10) logits |
//!
//! Variables are named as PyTorch's `state_dict` names them for the seed's
//! `nn.Sequential` of `nn.Sequential`s: `0.0.weight`, `1.0.bias`, ..., `4.weight`.
//!
//! [`net_with_custom_layer`] replaces layer 4 by [`GainTanh`], a layer of our own (a struct
//! implementing [`tch2pc::Layer`]): `g ⊙ tanh(W x + b)` with a trainable gain per unit.

use tch::nn::{self, Module};
use tch::Tensor;
use tch2pc::{Layer, Sequential};

/// Number of classes (the width of the last layer).
pub const CLASSES: i64 = 10;

/// Number of trainable parameters of [`net`].
pub const PARAMETERS: i64 = 32_695;

/// Number of trainable parameters of [`net_with_custom_layer`]: the seed's and layer 4's
/// 30 gains.
pub const PARAMETERS_CUSTOM: i64 = PARAMETERS + 30;

/// A predictive-coding layer of our own: `g ⊙ tanh(W x + b)`, a linear map, a tanh and a
/// trainable gain `g` per output unit (initialised to 1). A struct implementing
/// [`tch2pc::Layer`] is how a layer that `nn::seq()` cannot express joins a model; its
/// variables live in the model's `VarStore`, so `pc_infer` writes their updates into
/// `.grad` like any other's.
pub struct GainTanh {
    linear: nn::Linear,
    gain: Tensor,
}

impl GainTanh {
    /// The layer `in_dim → out_dim`, its variables under `path`: `path.0.weight`,
    /// `path.0.bias` (initialised like `nn::linear`) and `path.gain`.
    pub fn new(path: nn::Path, in_dim: i64, out_dim: i64) -> GainTanh {
        GainTanh {
            linear: nn::linear(&path / "0", in_dim, out_dim, Default::default()),
            gain: path.ones("gain", &[out_dim]),
        }
    }
}

impl Layer for GainTanh {
    fn layer_forward(&self, xs: &Tensor, _train: bool) -> Tensor {
        self.linear.forward(xs).tanh() * &self.gain
    }
}

/// Builds the network in `vs` (initialised like PyTorch: Kaiming-uniform weights, uniform
/// biases in `±1/sqrt(fan_in)`, drawn from libtorch's generator, so `tch::manual_seed`
/// before this call fixes them). Input: `(N, 1, 28, 28)` images; output: `(N, 10)` logits.
pub fn net(vs: &nn::VarStore) -> Sequential {
    build(vs, false)
}

/// [`net`] with layer 4 a [`GainTanh`] (`Linear(50, 30)`, tanh, gains) instead of
/// `Linear(50, 30), ReLU`. The other layers are initialised as in [`net`] (the gains take
/// no random numbers).
pub fn net_with_custom_layer(vs: &nn::VarStore) -> Sequential {
    build(vs, true)
}

fn build(vs: &nn::VarStore, custom: bool) -> Sequential {
    let root = vs.root();
    let conv = Default::default();
    let lin = Default::default();
    let net = Sequential::new(vs)
        .add(
            nn::seq()
                .add(nn::conv2d(&root / "0" / "0", 1, 10, 3, conv))
                .add_fn(|x| x.relu())
                .add_fn(|x| x.max_pool2d_default(2)),
        )
        .add(
            nn::seq()
                .add(nn::conv2d(&root / "1" / "0", 10, 5, 3, conv))
                .add_fn(|x| x.relu())
                .add_fn(|x| x.flatten(1, -1)),
        )
        .add(
            nn::seq()
                .add(nn::linear(&root / "2" / "0", 605, 50, lin))
                .add_fn(|x| x.relu()),
        );
    let net = if custom {
        net.add_layer(GainTanh::new(&root / "3", 50, 30))
    } else {
        net.add(
            nn::seq()
                .add(nn::linear(&root / "3" / "0", 50, 30, lin))
                .add_fn(|x| x.relu()),
        )
    };
    net.add(nn::linear(&root / "4", 30, CLASSES, lin))
}

/// Total number of elements of the trainable variables of `vs`.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}
