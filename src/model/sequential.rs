//! [`Sequential`]: a chain of predictive-coding layers (a chain [`Graph`]).

use crate::error::{PcError, Result};
use crate::model::graph::{Graph, NodeId};
use crate::model::layer::Layer;
use std::fmt;
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// A sequential model `f = f_L ∘ … ∘ f_1` in which every item is one predictive-coding
/// layer: the chain [`Graph`] `x → 1 → 2 → … → L`, on the same engine and with the same
/// results value for value.
///
/// Layer `l` maps the belief (or activation) of layer `l-1` to a prediction of layer `l`:
/// `v̂_l = f_l(v̂_{l-1})`, with `v̂_0 = x` the input. Any [`tch::nn::Module`] is a layer
/// ([`Sequential::add`]); a nested [`tch::nn::Sequential`] is *one* layer (use it to group a
/// convolution, its activation and a pooling into one PC layer, as in Torch2PC).
/// Parameter-free functions added with [`Sequential::add_fn`] are layers of their own.
/// [`tch::nn::ModuleT`] layers (BatchNorm, Dropout) are added with [`Sequential::add_t`] and
/// receive the model's training mode ([`Sequential::train`], [`Sequential::eval`]); your own
/// [`Layer`] with [`Sequential::add_layer`].
///
/// The model remembers the [`nn::VarStore`] its layers were created in: the predictive
/// coding updates are written into the `.grad` of that store's trainable variables that the
/// layers use.
///
/// ```
/// use tch::{nn, nn::Module, Device, Kind, Tensor};
/// use tch2pc::Sequential;
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let root = vs.root();
/// let model = Sequential::new(&vs)
///     .add(nn::seq()
///         .add(nn::linear(&root / "0" / "0", 4, 8, Default::default()))
///         .add_fn(|x| x.tanh()))
///     .add_t(nn::batch_norm1d(&root / "1", 8, Default::default()))
///     .add(nn::linear(&root / "2", 8, 2, Default::default()));
/// assert_eq!(model.len(), 3);
/// let y = model.forward(&Tensor::zeros([3, 4], (Kind::Float, Device::Cpu)));
/// assert_eq!(y.size(), [3, 2]);
/// ```
pub struct Sequential {
    graph: Graph,
    last: NodeId,
}

impl fmt::Debug for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sequential")
            .field("layers", &self.len())
            .field("train", &self.is_training())
            .finish_non_exhaustive()
    }
}

impl Sequential {
    /// An empty model whose layers take their parameters from `vs`, in training mode.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs);
    /// assert!(model.is_empty());
    /// ```
    pub fn new(vs: &nn::VarStore) -> Self {
        let graph = Graph::new(vs);
        let last = graph.input();
        Sequential { graph, last }
    }

    /// Appends a layer: any module, including a nested [`tch::nn::Sequential`], which then
    /// counts as a single predictive-coding layer.
    ///
    /// ```
    /// use tch::{nn, Device};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs).add(nn::linear(vs.root() / "0", 3, 2, Default::default()));
    /// assert_eq!(model.len(), 1);
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn add<M: Module + 'static>(mut self, layer: M) -> Self {
        self.last = self.graph.add(self.last, layer);
        self
    }

    /// Appends a [`tch::nn::ModuleT`] layer (BatchNorm, Dropout, an `nn::seq_t()`), which
    /// receives the model's training mode.
    ///
    /// ```
    /// use tch::{nn, Device};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs)
    ///     .add_t(nn::seq_t().add(nn::linear(vs.root() / "0", 3, 2, Default::default())).add_fn_t(|x, train| x.dropout(0.2, train)));
    /// assert_eq!(model.len(), 1);
    /// ```
    pub fn add_t<M: ModuleT + 'static>(mut self, layer: M) -> Self {
        self.last = self.graph.add_t(self.last, layer);
        self
    }

    /// Appends your own [`Layer`].
    ///
    /// ```
    /// use tch::Tensor;
    /// struct Double;
    /// impl tch2pc::Layer for Double {
    ///     fn layer_forward(&self, xs: &Tensor, _train: bool) -> Tensor { xs * 2.0 }
    /// }
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs).add_layer(Double);
    /// assert_eq!(model.f_forward(&Tensor::from_slice(&[1.5f64]))?.double_value(&[0]), 3.0);
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    pub fn add_layer<L: Layer + 'static>(mut self, layer: L) -> Self {
        self.last = self.graph.add_layer(self.last, layer);
        self
    }

    /// Appends a parameter-free layer given as a closure, e.g. an activation.
    ///
    /// ```
    /// use tch::{nn, Device};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs)
    ///     .add(nn::linear(vs.root() / "0", 3, 2, Default::default()))
    ///     .add_fn(|x| x.relu());
    /// assert_eq!(model.len(), 2);
    /// ```
    pub fn add_fn<F>(self, f: F) -> Self
    where
        F: Fn(&Tensor) -> Tensor + Send + 'static,
    {
        self.add(nn::func(f))
    }

    /// The number of layers `L`.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// assert_eq!(tch2pc::Sequential::new(&vs).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.graph.len()
    }

    /// Whether the model has no layers.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// assert!(tch2pc::Sequential::new(&vs).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.graph.is_empty()
    }

    /// Switches to training mode (the default): `train = true` reaches every `ModuleT` and
    /// [`Layer`] (BatchNorm normalises with batch statistics and updates its running
    /// statistics, dropout is active).
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let mut model = tch2pc::Sequential::new(&vs);
    /// model.eval();
    /// model.train();
    /// assert!(model.is_training());
    /// ```
    pub fn train(&mut self) {
        self.graph.train();
    }

    /// Switches to evaluation mode: `train = false` (BatchNorm uses its running statistics,
    /// dropout is off).
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let mut model = tch2pc::Sequential::new(&vs);
    /// model.eval();
    /// assert!(!model.is_training());
    /// ```
    pub fn eval(&mut self) {
        self.graph.eval();
    }

    /// Whether the model is in training mode.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// assert!(tch2pc::Sequential::new(&vs).is_training());
    /// ```
    pub fn is_training(&self) -> bool {
        self.graph.is_training()
    }

    /// Applies layer `l` alone (1-based, `f_l` in the papers) to `input`, in the model's
    /// training mode: the fallible, layer-wise forward pass.
    ///
    /// # Errors
    /// [`PcError::InvalidConfig`] if there is no layer `l`; [`PcError::Forward`] if the
    /// layer fails on `input`.
    ///
    /// ```
    /// use tch::{nn, Device, Kind, Tensor};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs)
    ///     .add(nn::linear(vs.root() / "0", 3, 2, Default::default()))
    ///     .add_fn(|x| x.relu());
    /// let h = model.f_layer_forward(1, &Tensor::ones([4, 3], (Kind::Float, Device::Cpu)))?;
    /// assert_eq!(h.size(), [4, 2]);
    /// assert!(model.f_layer_forward(3, &h).is_err()); // there is no layer 3
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    pub fn f_layer_forward(&self, l: usize, input: &Tensor) -> Result<Tensor> {
        if l == 0 || l > self.len() {
            return Err(PcError::InvalidConfig(format!(
                "layer {l} does not exist: layers are numbered 1..={}",
                self.len()
            )));
        }
        self.graph
            .apply(l, std::slice::from_ref(input), self.is_training())
    }

    /// The fallible forward pass: `f_L(…f_1(x))`, with a [`PcError::Forward`] naming the
    /// layer that failed instead of a panic.
    ///
    /// # Errors
    /// [`PcError::Forward`] if a layer fails on its input.
    ///
    /// ```
    /// use tch::{nn, Device, Kind, Tensor};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs).add(nn::linear(vs.root() / "0", 3, 2, Default::default()));
    /// let err = model.f_forward(&Tensor::zeros([5, 4], (Kind::Float, Device::Cpu))).unwrap_err();
    /// assert!(err.to_string().contains("node 1 of 1"));
    /// ```
    pub fn f_forward(&self, x: &Tensor) -> Result<Tensor> {
        self.graph.f_forward(x)
    }

    /// The trainable variables of the model's [`nn::VarStore`] (shallow clones sharing
    /// storage and `.grad` with the originals), in the store's order.
    ///
    /// ```
    /// use tch::{nn, Device};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs).add(nn::linear(vs.root() / "0", 3, 2, Default::default()));
    /// assert_eq!(model.trainable_variables().len(), 2); // weight and bias
    /// ```
    pub fn trainable_variables(&self) -> Vec<Tensor> {
        self.graph
            .vars()
            .trainable
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// The chain graph this model is.
    ///
    /// ```
    /// use tch::nn;
    /// let vs = nn::VarStore::new(tch::Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs).add_fn(|x| x.relu()).add_fn(|x| x.tanh());
    /// let g = model.as_graph();
    /// assert_eq!(g.parents(g.output()).len(), 1);
    /// assert_eq!(g.len(), 2);
    /// ```
    pub fn as_graph(&self) -> &Graph {
        &self.graph
    }
}

impl Module for Sequential {
    /// The plain forward pass `f_L(…f_1(x))` in the model's training mode. Panics like any
    /// tch module if a layer fails; use [`Sequential::f_forward`] for an error instead.
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.graph.forward(xs)
    }
}
