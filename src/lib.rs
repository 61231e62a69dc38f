//! Predictive coding for [`tch`] (libtorch) models: Torch2PC's algorithms (Rosenbaum 2022)
//! on chains and on arbitrary computation graphs, with what each computes proven by tests.
//!
//! Call [`pc_infer`] (or its configurable form [`PcInfer`]) on a batch, then
//! `optimizer.step()`: the parameter updates are written into the `.grad` of the model's
//! variables, so any `tch` optimizer trains the model.
//!
//! ```
//! use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};
//! use tch2pc::{loss, pc_infer, ErrType, Sequential};
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let root = vs.root();
//! let model = Sequential::new(&vs)
//!     .add(nn::seq().add(nn::linear(&root / "0", 20, 32, Default::default())).add_fn(|x| x.tanh()))
//!     .add(nn::linear(&root / "1", 32, 5, Default::default()));
//! let mut opt = nn::Adam::default().build(&vs, 1e-3)?;
//! let x = Tensor::randn([64, 20], (Kind::Float, Device::Cpu));
//! let y = Tensor::randint(5, [64], (Kind::Int64, Device::Cpu));
//! let out = pc_infer(&model, &loss::cross_entropy, &x, &y, ErrType::Strict, 0.1, 20, None)?;
//! opt.step();
//! assert_eq!(out.v.len(), 3); // the input and 2 layers
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Models
//!
//! * [`Sequential`]: a chain `f_L ∘ … ∘ f_1`, one predictive-coding layer per item (a
//!   nested `tch::nn::Sequential` is one layer).
//! * [`Graph`]: any directed acyclic graph of nodes `v̂_i = f_i(v̂_pa(i))` with skip
//!   connections, merges and branches (Millidge, Tschantz & Buckley 2020). A `Sequential`
//!   is a chain graph: one engine serves both, with the same values.
//! * Layers: any `tch` [`Module`](tch::nn::Module) (`add`), any
//!   [`ModuleT`](tch::nn::ModuleT) such as BatchNorm or Dropout (`add_t`, which receive the
//!   model's training mode, see [`Sequential::train`] and [`Sequential::eval`]), or your own
//!   [`Layer`] (`add_layer`). Several-parent nodes with [`Graph::add_fn`].
//!
//! ```
//! use tch::{nn, nn::Module, Device, Kind, Tensor};
//! use tch2pc::{loss, pc_infer, ErrType, Graph};
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let root = vs.root();
//! let mut g = Graph::new(&vs);
//! let h1 = g.add(g.input(), nn::seq().add(nn::linear(&root / "h1", 20, 16, Default::default())).add_fn(|t| t.tanh()));
//! let h2 = g.add(h1, nn::seq().add(nn::linear(&root / "h2", 16, 16, Default::default())).add_fn(|t| t.tanh()));
//! let s = g.add_fn(&[h1, h2], |xs: &[Tensor]| &xs[0] + &xs[1]); // skip connection
//! g.add(s, nn::linear(&root / "out", 16, 5, Default::default()));
//! let x = Tensor::randn([8, 20], (Kind::Float, Device::Cpu));
//! let y = Tensor::randn([8, 5], (Kind::Float, Device::Cpu));
//! let out = pc_infer(&g, &loss::mse, &x, &y, ErrType::Exact, 0.1, 20, None)?;
//! // Exact is backprop: the output's error is the loss gradient.
//! assert!(out.epsilon[4].allclose(&out.dldy, 1e-6, 1e-6, false));
//! # Ok::<(), tch2pc::PcError>(())
//! ```
//!
//! # What is computed
//!
//! With node 0 the clamped input `x`, `v̂_i = f_i(v̂_pa(i))` the feed-forward values, `N`
//! the output node, `ℓ` the loss and `ch(i)` the children of node `i` (on a chain,
//! `pa(l) = l-1`, `ch(l) = l+1`), [`ErrType`] selects
//!
//! * **Exact**: `ε_i = ∂ℓ/∂v̂_i` through all paths, `v_i = v̂_i − ε_i`: backprop;
//! * **FixedPred**: `ε_N = ∂ℓ/∂v̂_N`, then `n` sweeps of `ε_i = v̂_i − v_i`,
//!   `v_i ← v_i + η(ε_i − Σ_{j∈ch(i)} J_{j←i}(v̂)ᵀ ε_j)`. The recursion is linear, so
//!   `ε_i = Σ_k P(Binomial(n−1, η) ≥ k) · a_i^(k)`, with `a_i^(k)` backprop's adjoint of
//!   node `i` restricted to paths of exactly `k` edges to the output (on a chain, one `k`
//!   per layer: `P(Binomial(n−1, η) ≥ L−l)` times backprop's error). tch2pc computes this
//!   closed form ([`FixedPredMode`]);
//! * **Strict**: `n` steps of gradient descent with step `η` on the energy
//!   `F(v) = ℓ(f_N(v_pa(N)), y) + ½ Σ_{hidden i} ‖f_i(v_pa(i)) − v_i‖²` from `vinit`
//!   (default `v̂`): `v_i ← v_i + η(ε_i − Σ_{j∈ch(i)} J_{j←i}(v)ᵀ ε_j)`, or with a
//!   [`BeliefOptimizer`] (momentum, Nesterov, Adam);
//!
//! and the parameter updates `Δθ = Σ_i (∂f_i(v_pa(i))/∂θ)ᵀ ε_i` (at `v̂` for Exact and
//! FixedPred, at the final beliefs for Strict; a parameter shared by several nodes gets the
//! sum), written into `.grad`, overwritten.
//!
//! # What is written, and when
//!
//! * Only the `.grad` of the trainable variables that the model's nodes use and that
//!   require grad. Variables of the same `VarStore` that the model does not use, and frozen
//!   ones (`requires_grad` false), keep their `.grad` exactly (undefined stays undefined).
//! * Nothing is written until the call can no longer fail: after an error, parameters,
//!   `.grad` and buffers are exactly as before. The library sets grad mode itself (a call
//!   inside `tch::no_grad` works) and never panics or prints.
//! * **Stateful layers, one rule: within one call every node is one fixed function.**
//!   BatchNorm in training mode normalises with the statistics of the values it is given, in
//!   every sweep; its running statistics are updated once per call, to what one backprop
//!   step leaves (the feed-forward pass), also under `relax_kind`. Dropout in training mode
//!   draws one mask per node and call, reused in every sweep and in the update. In
//!   evaluation mode: running statistics, no dropout.
//! * **The global random stream.** In training mode a call draws two integers from the
//!   global generator; node `i` runs after `tch::manual_seed(first + i)` (this is how its
//!   dropout mask repeats: tch exposes no generator state), and at the end of the call the
//!   generator is seeded with the second. Seeded programs stay reproducible, but random
//!   numbers drawn after a call differ from those after a plain forward pass. Evaluation
//!   mode leaves the generator alone. The generator is process-global: another thread
//!   drawing random numbers during a training-mode call can change a node's mask between
//!   sweeps (and sees reseeded numbers itself), so run training-mode calls of models with
//!   dropout from one thread at a time.
//! * Inputs may be integers (token ids for an embedding): only the beliefs of nodes
//!   `1..=N` must be floating point.
//! * The loss is a function of the output `ℓ(v̂_N, y)`. A loss that also depends on the
//!   parameters directly (weight decay written into the loss) has that term in its updates
//!   with Exact and FixedPred, which differentiate the loss, but not with Strict, whose
//!   updates are `Σ_i (∂f_i/∂θ)ᵀ ε_i`: put weight decay in the optimizer instead.
//! * A `Graph` or `Sequential` used as a layer of another model (both implement `Module`)
//!   runs in its own training mode; its variables get updates only if they live in the
//!   outer model's `VarStore`.
//!
//! # Beyond the seed
//!
//! [`PcInfer`] adds a divergence guard and backtracking ([`OnDiverge`]), a convergence
//! tolerance with a [`StopReason`], [`Observer`]s, float64 relaxation of float32 models
//! (`relax_kind`), belief optimizers, incremental PC ([`PcInfer::incremental`], Salvatori et
//! al. 2024), and the per-node alignment of the updates with backprop
//! ([`PcInfer::alignment`]). [`data`] reads MNIST-format IDX files; [`loss`] has
//! dtype-preserving MSE and cross-entropy.
//!
//! # Differences from Torch2PC
//!
//! * Strict honours `vinit` (the original silently ignores it).
//! * FixedPred does not relax the input belief `v[0]` (the original does; no update depends
//!   on it), and it is computed in closed form (equal to the loop up to rounding; the loop is
//!   [`FixedPredMode::Literal`]).
//! * A weight shared by several layers gets the sum of their updates (backprop's answer);
//!   the original lets the last layer's update win.
//! * A diverging Strict relaxation is an error (or, on request, backtracked), not garbage.
//! * `epsilon[0]` is a zero tensor rather than `None`.
//! * Only the variables the model uses get a `.grad`; frozen ones are skipped; stateful
//!   layers follow the rule above (the original runs BatchNorm and Dropout afresh at every
//!   sweep).
//! * `eta` and `n` are not checked for Exact, which does not use them.
//! * Arbitrary graphs, which Torch2PC announced but never shipped.
//!
//! # Errors
//!
//! Every fallible function returns [`PcError`]; each documents its variants.
//!
//! # References
//!
//! Rosenbaum (2022), PLoS ONE 17(3) e0266102; Millidge, Tschantz & Buckley (2020),
//! arXiv:2006.04182; Whittington & Bogacz (2017), Neural Computation 29(5); Salvatori et al.
//! (2024), ICLR; Pinchetti et al. (2024), arXiv:2407.01163.
#![warn(missing_docs)]

pub mod alignment;
mod coefficients;
pub mod data;
mod engine;
mod err_type;
pub mod error;
mod guard;
pub mod loss;
mod model;
mod observer;
mod options;
pub mod pc;
mod report;
mod util;

pub use alignment::{Alignment, LayerAlignment};
pub use coefficients::{binomial_tail, fixed_pred_coefficients};
pub use err_type::ErrType;
pub use error::{PcError, Result};
pub use model::{Graph, Layer, NodeId, PcModel, Sequential};
pub use observer::{Iteration, Observer, Recorder};
pub use options::{BeliefOptimizer, FixedPredMode, OnDiverge};
pub use pc::{pc_infer, PcInfer};
pub use report::{PcOutput, PcReport, StopReason};

/// The README's Rust examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
