//! The [`Layer`] trait: one node's function of its input and the training mode.

use tch::nn::ModuleT;
use tch::Tensor;

/// One predictive-coding layer: a function `f(input, train)` from its parent's value to a
/// prediction of its own value.
///
/// `train` is the model's training mode ([`Sequential::train`](crate::Sequential::train),
/// [`Graph::eval`](crate::Graph::eval), …): `true` unless the model was switched to
/// evaluation. Layers whose behaviour depends on it are tch's `ModuleT` layers: BatchNorm
/// normalises with the batch's statistics (and updates its running statistics) in training
/// mode and with the running statistics in evaluation mode; dropout is active only in
/// training mode.
///
/// `Layer` is implemented for every [`tch::nn::Module`] and every [`tch::nn::ModuleT`]
/// (modules ignore `train`), and a struct of your own can implement it:
///
/// ```
/// use tch::{nn, Device, Kind, Tensor};
/// use tch2pc::{Layer, Sequential};
///
/// /// `a · tanh(x)` with a trainable gain `a`; in evaluation mode, `tanh(x)`.
/// struct GainTanh {
///     a: Tensor,
/// }
/// impl Layer for GainTanh {
///     fn layer_forward(&self, xs: &Tensor, train: bool) -> Tensor {
///         if train { xs.tanh() * &self.a } else { xs.tanh() }
///     }
/// }
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let a = vs.root().ones("gain", &[1]);
/// let mut model = Sequential::new(&vs)
///     .add(nn::linear(vs.root() / "0", 3, 2, Default::default()))
///     .add_layer(GainTanh { a });
/// let x = Tensor::ones([4, 3], (Kind::Float, Device::Cpu));
/// let train = model.f_forward(&x)?;
/// model.eval();
/// let eval = model.f_forward(&x)?;
/// assert!(train.allclose(&eval, 1e-6, 1e-6, false)); // gain 1 at initialisation
/// # Ok::<(), tch2pc::PcError>(())
/// ```
pub trait Layer: Send {
    /// The layer's output for input `xs` in training mode `train`. It may panic like any tch
    /// module (a shape mismatch, say): the library catches the panic and returns
    /// [`PcError::Forward`](crate::PcError::Forward) naming the node.
    fn layer_forward(&self, xs: &Tensor, train: bool) -> Tensor;
}

impl<M: ModuleT> Layer for M {
    fn layer_forward(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_t(xs, train)
    }
}
