//! [`Graph`]: a model whose predictive-coding nodes form a directed acyclic graph.

use crate::error::{PcError, Result};
use crate::guard::{self, Caught};
use crate::model::layer::Layer;
use crate::model::store::{Store, Vars};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

static NEXT_GRAPH: AtomicU64 = AtomicU64::new(1);

/// A node of a [`Graph`]: node 0 is the clamped input, nodes `1..=len()` are
/// predictive-coding nodes in the order they were added (a topological order).
///
/// ```
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let g = tch2pc::Graph::new(&vs);
/// assert_eq!(g.input().index(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId {
    graph: u64,
    index: usize,
}

impl NodeId {
    /// The node's index: 0 for the input, `1..=len()` for the nodes in the order added.
    ///
    /// ```
    /// use tch::nn;
    /// let vs = nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// let h = g.add(g.input(), nn::linear(vs.root() / "h", 3, 2, Default::default()));
    /// assert_eq!(h.index(), 1);
    /// ```
    pub fn index(self) -> usize {
        self.index
    }
}

/// The function of a node with several parents; it receives the parents' values in the
/// order given and the training mode.
type MultiFn = Box<dyn Fn(&[Tensor], bool) -> Tensor + Send>;

enum Op {
    Input,
    Layer(Box<dyn Layer>),
    Multi(MultiFn),
}

struct Node {
    parents: Vec<usize>,
    op: Op,
}

/// A predictive-coding model on an arbitrary computation graph (a DAG): skip connections,
/// merges, branches (Millidge, Tschantz & Buckley 2020, "Predictive coding approximates
/// backprop along arbitrary computation graphs").
///
/// Node 0 is the clamped input `x`; every other node `i` computes
/// `v̂_i = f_i(v̂_pa(i))` from its parents `pa(i)`, which must exist when it is added (so the
/// numbering is a topological order). The **last node added is the output** `N`, on which
/// the loss is evaluated; every node must be an ancestor of it. [`pc_infer`](crate::pc_infer)
/// then relaxes one belief per node (see [`ErrType`](crate::ErrType) for the three
/// algorithms on graphs), and `vhat`, `v`, `epsilon` of its output are indexed by node.
///
/// * [`Graph::add`] (any `tch` [`Module`]), [`Graph::add_t`] (a [`ModuleT`]: BatchNorm,
///   Dropout) and [`Graph::add_layer`] (your own [`Layer`]) add a node with one parent;
/// * [`Graph::add_fn`] adds a node with several parents (a merge, a concatenation, …); the
///   closure may own layers (their variables live in the same `VarStore`).
///
/// A parameter used by several nodes (a shared weight) gets the sum of their updates.
/// Mistakes in building (a parent from another graph, or one that does not exist) are
/// reported by the first fallible call on the graph as [`PcError::InvalidGraph`].
///
/// ```
/// use tch::{nn, nn::Module, Device, Kind, Tensor};
/// use tch2pc::{loss, pc_infer, ErrType, Graph};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let root = vs.root();
/// let mut g = Graph::new(&vs);
/// let x0 = g.input();
/// let h1 = g.add(x0, nn::seq().add(nn::linear(&root / "h1", 20, 16, Default::default())).add_fn(|t| t.tanh()));
/// let h2 = g.add(h1, nn::seq().add(nn::linear(&root / "h2", 16, 16, Default::default())).add_fn(|t| t.tanh()));
/// let s = g.add_fn(&[h1, h2], |xs: &[Tensor]| &xs[0] + &xs[1]); // a skip connection
/// let lin = nn::linear(&root / "out", 32, 5, Default::default());
/// let out = g.add_fn(&[s, h1], move |xs: &[Tensor]| lin.forward(&Tensor::cat(xs, 1)));
/// assert_eq!((g.len(), out.index()), (4, 4));
///
/// let x = Tensor::randn([8, 20], (Kind::Float, Device::Cpu));
/// let y = Tensor::randn([8, 5], (Kind::Float, Device::Cpu));
/// let res = pc_infer(&g, &loss::mse, &x, &y, ErrType::Strict, 0.1, 20, None)?;
/// assert_eq!(res.v.len(), 5); // the input and 4 nodes
/// assert_eq!(res.v[2].size(), [8, 16]);
/// # Ok::<(), tch2pc::PcError>(())
/// ```
pub struct Graph {
    id: u64,
    nodes: Vec<Node>,
    store: Store,
    train: bool,
    fault: Option<String>,
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parents: Vec<&[usize]> = self.nodes[1..].iter().map(|n| &n.parents[..]).collect();
        f.debug_struct("Graph")
            .field("nodes", &self.len())
            .field("parents", &parents)
            .field("train", &self.train)
            .finish_non_exhaustive()
    }
}

impl Graph {
    /// An empty graph (just the input node 0) whose nodes take their parameters from `vs`.
    /// In training mode.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let g = tch2pc::Graph::new(&vs);
    /// assert!(g.is_empty() && g.is_training());
    /// ```
    pub fn new(vs: &nn::VarStore) -> Self {
        Graph {
            id: NEXT_GRAPH.fetch_add(1, Ordering::Relaxed),
            nodes: vec![Node {
                parents: Vec::new(),
                op: Op::Input,
            }],
            store: Store::new(vs),
            train: true,
            fault: None,
        }
    }

    /// The clamped input, node 0.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// assert_eq!(tch2pc::Graph::new(&vs).input().index(), 0);
    /// ```
    pub fn input(&self) -> NodeId {
        self.id_of(0)
    }

    /// The output: the last node added (the input while the graph is empty).
    ///
    /// ```
    /// use tch::nn;
    /// let vs = nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// let h = g.add(g.input(), nn::linear(vs.root() / "h", 3, 2, Default::default()));
    /// assert_eq!(g.output(), h);
    /// ```
    pub fn output(&self) -> NodeId {
        self.id_of(self.len())
    }

    fn id_of(&self, index: usize) -> NodeId {
        NodeId {
            graph: self.id,
            index,
        }
    }

    fn push(&mut self, parents: &[NodeId], op: Op) -> NodeId {
        let index = self.nodes.len();
        let mut idx = Vec::with_capacity(parents.len());
        for p in parents {
            if self.fault.is_none() {
                if p.graph != self.id {
                    self.fault = Some(format!(
                        "node {index}: parent {} belongs to another graph",
                        p.index
                    ));
                } else if p.index >= index {
                    self.fault = Some(format!(
                        "node {index}: parent {} does not exist yet (parents must be added first)",
                        p.index
                    ));
                }
            }
            idx.push(p.index.min(index.saturating_sub(1)));
        }
        if parents.is_empty() && self.fault.is_none() {
            self.fault = Some(format!("node {index} has no parent"));
        }
        self.nodes.push(Node { parents: idx, op });
        self.id_of(index)
    }

    /// Adds a node `f(v̂_parent)` for any `tch` [`Module`] (a nested `nn::Sequential` is one
    /// node). Returns its id.
    ///
    /// ```
    /// use tch::nn;
    /// let vs = nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// let h = g.add(g.input(), nn::linear(vs.root() / "h", 3, 2, Default::default()));
    /// assert_eq!((h.index(), g.len()), (1, 1));
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn add<M: Module + 'static>(&mut self, parent: NodeId, layer: M) -> NodeId {
        self.push(&[parent], Op::Layer(Box::new(layer)))
    }

    /// Adds a node for a [`ModuleT`] (BatchNorm, Dropout, or an `nn::seq_t()`), which
    /// receives the graph's training mode.
    ///
    /// ```
    /// use tch::nn;
    /// let vs = nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// let h = g.add_t(g.input(), nn::batch_norm1d(vs.root() / "bn", 3, Default::default()));
    /// assert_eq!(h.index(), 1);
    /// ```
    pub fn add_t<M: ModuleT + 'static>(&mut self, parent: NodeId, layer: M) -> NodeId {
        self.push(&[parent], Op::Layer(Box::new(layer)))
    }

    /// Adds a node for your own [`Layer`].
    ///
    /// ```
    /// use tch::{nn, Tensor};
    /// struct Half;
    /// impl tch2pc::Layer for Half {
    ///     fn layer_forward(&self, xs: &Tensor, _train: bool) -> Tensor { xs * 0.5 }
    /// }
    /// let vs = nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// let h = g.add_layer(g.input(), Half);
    /// let y = g.f_forward(&Tensor::from_slice(&[2.0f64]))?;
    /// assert_eq!(y.double_value(&[0]), 1.0);
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    pub fn add_layer<L: Layer + 'static>(&mut self, parent: NodeId, layer: L) -> NodeId {
        self.push(&[parent], Op::Layer(Box::new(layer)))
    }

    /// Adds a node with several parents: `f` receives the parents' values in the order
    /// given (a parent may appear more than once). `f` may own layers, e.g. a linear map of
    /// a concatenation.
    ///
    /// ```
    /// use tch::{nn, Tensor};
    /// let vs = nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// let x0 = g.input();
    /// let h = g.add_fn(&[x0], |xs: &[Tensor]| xs[0].tanh());
    /// let s = g.add_fn(&[x0, h], |xs: &[Tensor]| &xs[0] + &xs[1]); // x + tanh(x)
    /// let y = g.f_forward(&Tensor::from_slice(&[0.5f64]))?;
    /// assert!((y.double_value(&[0]) - (0.5 + 0.5f64.tanh())).abs() < 1e-15);
    /// assert_eq!(s.index(), 2);
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    pub fn add_fn<F>(&mut self, parents: &[NodeId], f: F) -> NodeId
    where
        F: Fn(&[Tensor]) -> Tensor + Send + 'static,
    {
        self.push(parents, Op::Multi(Box::new(move |xs, _train| f(xs))))
    }

    /// [`Graph::add_fn`] for a function that also takes the training mode.
    ///
    /// ```
    /// use tch::Tensor;
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// let x0 = g.input();
    /// g.add_fn_t(&[x0, x0], |xs: &[Tensor], train| xs[0].dropout(0.5, train) + &xs[1]);
    /// g.eval();
    /// let y = g.f_forward(&Tensor::from_slice(&[1.0f64]))?;
    /// assert_eq!(y.double_value(&[0]), 2.0); // no dropout in evaluation mode
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    pub fn add_fn_t<F>(&mut self, parents: &[NodeId], f: F) -> NodeId
    where
        F: Fn(&[Tensor], bool) -> Tensor + Send + 'static,
    {
        self.push(parents, Op::Multi(Box::new(f)))
    }

    /// The number of nodes, without the input.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// assert_eq!(tch2pc::Graph::new(&vs).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Whether the graph has no node besides the input.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// assert!(tch2pc::Graph::new(&vs).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parents of `node`, in the order its function receives them (none for the
    /// input).
    ///
    /// ```
    /// use tch::Tensor;
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// let x0 = g.input();
    /// let h = g.add_fn(&[x0], |xs: &[Tensor]| xs[0].relu());
    /// let s = g.add_fn(&[h, x0], |xs: &[Tensor]| &xs[0] + &xs[1]);
    /// assert_eq!(g.parents(s), [h, x0]);
    /// ```
    pub fn parents(&self, node: NodeId) -> Vec<NodeId> {
        self.nodes
            .get(node.index)
            .filter(|_| node.graph == self.id)
            .map(|n| n.parents.iter().map(|&p| self.id_of(p)).collect())
            .unwrap_or_default()
    }

    /// Switches the graph to training mode (the default): `train = true` is passed to
    /// every [`ModuleT`] and [`Layer`] (BatchNorm uses batch statistics, dropout is active).
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// g.eval();
    /// g.train();
    /// assert!(g.is_training());
    /// ```
    pub fn train(&mut self) {
        self.train = true;
    }

    /// Switches the graph to evaluation mode: `train = false` is passed to every
    /// [`ModuleT`] and [`Layer`] (BatchNorm uses its running statistics, dropout is off).
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// g.eval();
    /// assert!(!g.is_training());
    /// ```
    pub fn eval(&mut self) {
        self.train = false;
    }

    /// Whether the graph is in training mode.
    ///
    /// ```
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// assert!(tch2pc::Graph::new(&vs).is_training());
    /// ```
    pub fn is_training(&self) -> bool {
        self.train
    }

    /// The fallible forward pass: the output node's value `v̂_N`, with a
    /// [`PcError::Forward`] naming the node that failed (or [`PcError::InvalidGraph`])
    /// instead of a panic.
    ///
    /// # Errors
    /// [`PcError::InvalidGraph`] if the graph was built wrongly; [`PcError::Forward`] naming
    /// the first node that fails on its inputs.
    ///
    /// ```
    /// use tch::{nn, Device, Kind, Tensor};
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// g.add(g.input(), nn::linear(vs.root() / "h", 3, 2, Default::default()));
    /// let err = g.f_forward(&Tensor::zeros([5, 4], (Kind::Float, Device::Cpu))).unwrap_err();
    /// assert!(err.to_string().contains("node 1 of 1"));
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    pub fn f_forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut all = self.f_forward_all(x)?;
        Ok(all.pop().unwrap_or_else(|| x.shallow_clone()))
    }

    /// The values of every node, `[x, v̂_1, …, v̂_N]`, in the graph's training mode.
    ///
    /// # Errors
    /// As [`Graph::f_forward`].
    ///
    /// ```
    /// use tch::Tensor;
    /// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    /// let mut g = tch2pc::Graph::new(&vs);
    /// let h = g.add_fn(&[g.input()], |xs: &[Tensor]| &xs[0] * 2.0);
    /// g.add_fn(&[h, g.input()], |xs: &[Tensor]| &xs[0] + &xs[1]);
    /// let v = g.f_forward_all(&Tensor::from_slice(&[1.0f64]))?;
    /// assert_eq!(v.len(), 3);
    /// assert_eq!(v[2].double_value(&[0]), 3.0);
    /// # Ok::<(), tch2pc::PcError>(())
    /// ```
    pub fn f_forward_all(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        self.check_built()?;
        let mut values = vec![x.shallow_clone()];
        for i in 1..self.nodes.len() {
            let inputs = self.gather(i, &values);
            let out = self.apply(i, &inputs, self.train)?;
            values.push(out);
        }
        Ok(values)
    }

    /// The first mistake made while building, if any.
    pub(crate) fn check_built(&self) -> Result<()> {
        match &self.fault {
            Some(f) => Err(PcError::InvalidGraph(f.clone())),
            None => Ok(()),
        }
    }

    /// The parents' indices of node `i`.
    pub(crate) fn parent_indices(&self, i: usize) -> &[usize] {
        &self.nodes[i].parents
    }

    /// The values of node `i`'s parents, picked from `values` (indexed by node).
    pub(crate) fn gather(&self, i: usize, values: &[Tensor]) -> Vec<Tensor> {
        self.nodes[i]
            .parents
            .iter()
            .map(|&p| values[p].shallow_clone())
            .collect()
    }

    /// Node `i`'s function on its parents' values `inputs`, turning a panic (a shape
    /// mismatch, say) into [`PcError::Forward`].
    pub(crate) fn apply(&self, i: usize, inputs: &[Tensor], train: bool) -> Result<Tensor> {
        let node = &self.nodes[i];
        let out = guard::catch(|| match &node.op {
            Op::Layer(l) => l.layer_forward(&inputs[0], train),
            Op::Multi(f) => f(inputs, train),
            Op::Input => inputs[0].shallow_clone(),
        });
        out.map_err(|c| match c {
            Caught::Error(e) => e,
            Caught::Message(message) => PcError::Forward {
                layer: i,
                layers: self.len(),
                input_shape: inputs.first().map(|t| t.size()).unwrap_or_default(),
                message: if inputs.len() > 1 {
                    let shapes: Vec<Vec<i64>> = inputs.iter().map(|t| t.size()).collect();
                    format!("(inputs of shapes {shapes:?}) {message}")
                } else {
                    message
                },
            },
        })
    }

    pub(crate) fn vars(&self) -> Vars {
        self.store.vars()
    }
}

impl Module for Graph {
    /// The plain forward pass, in the graph's training mode. Panics like any tch module if
    /// a node fails; use [`Graph::f_forward`] for an error instead.
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.f_forward(xs).unwrap_or_else(|e| panic!("{e}"))
    }
}
