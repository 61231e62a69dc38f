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

use tch::nn;
use tch2pc::Sequential;

/// Number of classes (the width of the last layer).
pub const CLASSES: i64 = 10;

/// Number of trainable parameters of [`net`].
pub const PARAMETERS: i64 = 32_695;

/// Builds the network in `vs` (initialised like PyTorch: Kaiming-uniform weights, uniform
/// biases in `±1/sqrt(fan_in)`, drawn from libtorch's generator, so `tch::manual_seed`
/// before this call fixes them). Input: `(N, 1, 28, 28)` images; output: `(N, 10)` logits.
pub fn net(vs: &nn::VarStore) -> Sequential {
    let root = vs.root();
    let conv = Default::default();
    let lin = Default::default();
    Sequential::new(vs)
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
        )
        .add(
            nn::seq()
                .add(nn::linear(&root / "3" / "0", 50, 30, lin))
                .add_fn(|x| x.relu()),
        )
        .add(nn::linear(&root / "4", 30, CLASSES, lin))
}

/// Total number of elements of the trainable variables of `vs`.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}
