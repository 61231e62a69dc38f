//! A sequential model whose items are predictive-coding layers.

use crate::error::{PcError, Result};
use crate::guard::{self, Caught};
use std::fmt;
use tch::nn::{self, Module};
use tch::Tensor;

/// A sequential model `f = f_L ∘ … ∘ f_1` in which every item is one predictive-coding
/// layer.
///
/// Layer `l` maps the belief (or activation) of layer `l-1` to a prediction of layer `l`:
/// `v̂_l = f_l(v̂_{l-1})`, with `v̂_0 = x` the input. Any [`tch::nn::Module`] is a layer;
/// a nested [`tch::nn::Sequential`] is *one* layer (use it to group a convolution, its
/// activation and a pooling into one PC layer, as in Torch2PC). Parameter-free functions
/// (an activation, a pooling, a flatten) added with [`Sequential::add_fn`] are layers of
/// their own.
///
/// The model remembers the [`nn::VarStore`] its layers were created in: the predictive
/// coding updates are written into the `.grad` of that store's trainable variables.
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
///     .add(nn::linear(&root / "1", 8, 2, Default::default()));
/// assert_eq!(model.len(), 2);
/// let y = model.forward(&Tensor::zeros([3, 4], (Kind::Float, Device::Cpu)));
/// assert_eq!(y.size(), [3, 2]);
/// ```
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
    store: Store,
}

/// A snapshot of the store: the trainable variables (in the optimizer's order) and all
/// named variables (shallow clones).
pub(crate) struct Vars {
    pub trainable: Vec<Tensor>,
    pub named: Vec<(String, Tensor)>,
}

/// Read access to the VarStore's variables (tch does not export the type behind
/// `VarStore::variables_`, so it is captured in a closure).
type Store = Box<dyn Fn() -> Vars + Send>;

impl fmt::Debug for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sequential")
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

impl Sequential {
    /// An empty model whose layers take their parameters from `vs`.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs);
    /// assert!(model.is_empty());
    /// ```
    pub fn new(vs: &nn::VarStore) -> Self {
        let variables = vs.variables_.clone();
        let store: Store = Box::new(move || {
            // A poisoned lock only means another thread panicked while holding it; the
            // variables themselves are still valid tensors.
            let v = variables.lock().unwrap_or_else(|p| p.into_inner());
            let mut named: Vec<(String, Tensor)> = v
                .named_variables
                .iter()
                .map(|(k, t)| (k.clone(), t.shallow_clone()))
                .collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            Vars {
                trainable: v
                    .trainable_variables
                    .iter()
                    .map(|t| t.tensor.shallow_clone())
                    .collect(),
                named,
            }
        });
        Sequential {
            layers: Vec::new(),
            store,
        }
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
        self.layers.push(Box::new(layer));
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
        self.layers.len()
    }

    /// Whether the model has no layers.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// assert!(tch2pc::Sequential::new(&vs).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Applies layer `l` (1-based, as in the papers: `f_l`) to `input`, turning a panic of
    /// the layer (a shape mismatch, say) into [`PcError::Forward`].
    pub(crate) fn apply(&self, l: usize, input: &Tensor) -> Result<Tensor> {
        guard::catch(|| self.layers[l - 1].forward(input)).map_err(|c| match c {
            Caught::Error(e) => e,
            Caught::Message(message) => PcError::Forward {
                layer: l,
                layers: self.len(),
                input_shape: input.size(),
                message,
            },
        })
    }

    /// Applies layer `l` alone (1-based, `f_l` in the papers) to `input`: the fallible,
    /// layer-wise forward pass.
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
        self.apply(l, input)
    }

    /// The fallible forward pass: `f_L(…f_1(x))`, with a [`PcError::Forward`] naming the
    /// layer that failed instead of a panic.
    ///
    /// ```
    /// use tch::{nn, Device, Kind, Tensor};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs).add(nn::linear(vs.root() / "0", 3, 2, Default::default()));
    /// let err = model.f_forward(&Tensor::zeros([5, 4], (Kind::Float, Device::Cpu))).unwrap_err();
    /// assert!(err.to_string().contains("layer 1 of 1"));
    /// ```
    pub fn f_forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for l in 1..=self.len() {
            h = self.apply(l, &h)?;
        }
        Ok(h)
    }

    /// The trainable variables of the model's [`nn::VarStore`] (shallow clones sharing
    /// storage and `.grad` with the originals).
    ///
    /// ```
    /// use tch::{nn, Device};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let model = tch2pc::Sequential::new(&vs).add(nn::linear(vs.root() / "0", 3, 2, Default::default()));
    /// assert_eq!(model.trainable_variables().len(), 2); // weight and bias
    /// ```
    pub fn trainable_variables(&self) -> Vec<Tensor> {
        (self.store)().trainable
    }

    /// Names of the trainable variables, in the order of [`Sequential::trainable_variables`]
    /// (for error messages; matched by storage).
    pub(crate) fn trainable_names(&self) -> Vec<String> {
        let vars = (self.store)();
        vars.trainable
            .iter()
            .map(|t| {
                vars.named
                    .iter()
                    .find(|(_, n)| n.data_ptr() == t.data_ptr() && n.size() == t.size())
                    .map(|(k, _)| k.clone())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// All variables of the store (trainable or not), shallow clones.
    pub(crate) fn all_variables(&self) -> Vec<Tensor> {
        (self.store)().named.into_iter().map(|(_, t)| t).collect()
    }
}

impl Module for Sequential {
    /// The plain forward pass `f_L(…f_1(x))`. Panics like any tch module if a layer fails;
    /// use [`Sequential::f_forward`] for an error instead.
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.layers
            .iter()
            .fold(xs.shallow_clone(), |h, l| l.forward(&h))
    }
}
