//! Predictive-coding inference: [`pc_infer`] (Torch2PC's `PCInfer`), its configurable form
//! [`PcInfer`], and the types they take and return.
//!
//! ```
//! use tch::{nn, Device, Kind, Tensor};
//! use tch2pc::pc::{pc_infer, ErrType, StopReason};
//! use tch2pc::{loss, Sequential};
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let model = Sequential::new(&vs).add(nn::linear(vs.root() / "0", 3, 2, Default::default()));
//! let x = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
//! let y = Tensor::randn([4, 2], (Kind::Float, Device::Cpu));
//! let out = pc_infer(&model, &loss::mse, &x, &y, ErrType::Exact, 0.1, 20, None)?;
//! assert_eq!(out.report.stop, StopReason::NoRelaxation);
//! # Ok::<(), tch2pc::PcError>(())
//! ```

mod infer;
pub(crate) mod validate;

pub use infer::{pc_infer, PcInfer};

pub use crate::alignment::{Alignment, LayerAlignment};
pub use crate::err_type::ErrType;
pub use crate::model::{Graph, Layer, NodeId, PcModel, Sequential};
pub use crate::observer::{Iteration, Observer, Recorder};
pub use crate::options::{BeliefOptimizer, FixedPredMode, OnDiverge};
pub use crate::report::{PcOutput, PcReport, StopReason};
