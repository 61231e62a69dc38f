//! Read access to the variables of a model's `VarStore`.

use std::collections::{HashMap, HashSet};
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
            // Variables are told apart by their data pointer (shallow clones share it).
            let names: HashMap<usize, &String> = v
                .named_variables
                .iter()
                .map(|(k, t)| (t.data_ptr() as usize, k))
                .collect();
            let trainable: Vec<(String, Tensor)> = v
                .trainable_variables
                .iter()
                .map(|t| {
                    let name = names
                        .get(&(t.tensor.data_ptr() as usize))
                        .map(|k| (*k).clone())
                        .unwrap_or_default();
                    (name, t.tensor.shallow_clone())
                })
                .collect();
            let is_trainable: HashSet<usize> = v
                .trainable_variables
                .iter()
                .map(|t| t.tensor.data_ptr() as usize)
                .collect();
            let mut buffers: Vec<(String, Tensor)> = v
                .named_variables
                .iter()
                .filter(|(_, t)| !is_trainable.contains(&(t.data_ptr() as usize)))
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
