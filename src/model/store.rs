//! Read access to the variables of a model's `VarStore`.

use std::fmt;
use tch::nn;
use tch::Tensor;

/// A snapshot of the store: the trainable variables (in the optimizer's order, with their
/// names) and the buffers (variables that are not trainable: BatchNorm's running
/// statistics, say). Shallow clones sharing storage and `.grad` with the originals.
pub(crate) struct Vars {
    /// `(name, tensor)` of every trainable variable, in the store's order.
    pub trainable: Vec<(String, Tensor)>,
    /// `(name, tensor)` of every other variable, sorted by name.
    pub buffers: Vec<(String, Tensor)>,
}

/// A handle on a `VarStore`'s variables (tch does not export the type behind
/// `VarStore::variables_`, so it is captured in a closure).
pub(crate) struct Store(Box<dyn Fn() -> Vars + Send + Sync>);

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    pub fn new(vs: &nn::VarStore) -> Self {
        let variables = vs.variables_.clone();
        Store(Box::new(move || {
            // A poisoned lock only means another thread panicked while holding it; the
            // variables themselves are still valid tensors.
            let v = variables.lock().unwrap_or_else(|p| p.into_inner());
            let same = |a: &Tensor, b: &Tensor| {
                a.data_ptr() == b.data_ptr() && a.size() == b.size() && a.kind() == b.kind()
            };
            let name_of = |t: &Tensor| {
                v.named_variables
                    .iter()
                    .find(|(_, n)| same(n, t))
                    .map(|(k, _)| k.clone())
                    .unwrap_or_default()
            };
            let trainable: Vec<(String, Tensor)> = v
                .trainable_variables
                .iter()
                .map(|t| (name_of(&t.tensor), t.tensor.shallow_clone()))
                .collect();
            let mut buffers: Vec<(String, Tensor)> = v
                .named_variables
                .iter()
                .filter(|(_, t)| !v.trainable_variables.iter().any(|x| same(&x.tensor, t)))
                .map(|(k, t)| (k.clone(), t.shallow_clone()))
                .collect();
            buffers.sort_by(|a, b| a.0.cmp(&b.0));
            Vars { trainable, buffers }
        }))
    }

    pub fn vars(&self) -> Vars {
        (self.0)()
    }
}
