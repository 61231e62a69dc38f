#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod alignment;
pub mod data;
mod err_type;
pub mod error;
mod exact;
mod fixed_pred;
mod guard;
mod infer;
pub mod loss;
mod observer;
mod precision;
mod sequential;
mod strict;
mod util;

pub use alignment::{Alignment, LayerAlignment};
pub use err_type::ErrType;
pub use error::{PcError, Result};
pub use fixed_pred::{binomial_tail, coefficients as fixed_pred_coefficients};
pub use infer::{pc_infer, FixedPredMode, OnDiverge, PcInfer, PcOutput, PcReport, StopReason};
pub use observer::{Iteration, Observer, Recorder};
pub use sequential::Sequential;
