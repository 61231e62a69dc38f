#![doc = include_str!("../README.md")]
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
