//! Models: [`Sequential`] chains and [`Graph`]s of predictive-coding nodes, and the
//! [`Layer`] trait for a node's function.

pub(crate) mod graph;
pub(crate) mod layer;
pub(crate) mod sequential;
pub(crate) mod store;

pub use graph::{Graph, NodeId};
pub use layer::Layer;
pub use sequential::Sequential;

/// A model that predictive coding runs on: a [`Graph`], or a [`Sequential`] (a chain
/// graph). [`pc_infer`](crate::pc_infer), [`PcInfer::run`](crate::PcInfer::run) and
/// [`PcInfer::alignment`](crate::PcInfer::alignment) take any `PcModel`.
///
/// ```
/// use tch::nn;
/// use tch2pc::PcModel;
/// let vs = nn::VarStore::new(tch::Device::Cpu);
/// let model = tch2pc::Sequential::new(&vs).add_fn(|x| x.relu());
/// assert_eq!(model.graph().len(), 1);
/// ```
pub trait PcModel {
    /// The computation graph of predictive-coding nodes.
    fn graph(&self) -> &Graph;
}

impl PcModel for Graph {
    fn graph(&self) -> &Graph {
        self
    }
}

impl PcModel for Sequential {
    fn graph(&self) -> &Graph {
        self.as_graph()
    }
}

impl<M: PcModel + ?Sized> PcModel for &M {
    fn graph(&self) -> &Graph {
        (**self).graph()
    }
}
