//! The crate's error type.

use std::path::PathBuf;
use tch::{Device, Kind, TchError};

/// Everything that can go wrong in `tch2pc`.
///
/// Every fallible function of the crate returns `Result<_, PcError>`. When
/// [`pc_infer`](crate::pc_infer) or [`PcInfer::run`](crate::PcInfer::run) return an
/// error, the model's parameters and their `.grad` tensors are exactly as they were
/// before the call.
///
/// ```
/// use tch2pc::{ErrType, PcError};
/// let e = "Backprop".parse::<ErrType>().unwrap_err();
/// assert!(matches!(e, PcError::UnknownErrType(_)));
/// assert!(e.to_string().contains("Backprop"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PcError {
    /// The model has no layers (no nodes besides the input).
    #[error("the model is empty: add at least one layer")]
    EmptyModel,

    /// A [`Graph`](crate::Graph) was built wrongly: a parent from another graph or not yet
    /// added, a node without parents, or a node that does not reach the output.
    #[error("invalid graph: {0}")]
    InvalidGraph(String),

    /// The step size is not a finite number greater than zero.
    #[error("eta must be finite and > 0, got {0}")]
    InvalidEta(f64),

    /// Zero relaxation iterations were asked for with an iterative algorithm.
    #[error("n must be >= 1 for {0} (it is the number of relaxation sweeps)")]
    ZeroIterations(&'static str),

    /// A configuration value is out of its range (a tolerance, a factor, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// An error type string that is not `Strict`, `FixedPred` or `Exact`.
    #[error(
        "unknown error type {0:?}: expected \"Strict\", \"FixedPred\" or \"Exact\" (any case)"
    )]
    UnknownErrType(String),

    /// A tensor has a dtype that does not fit the model or the other inputs.
    #[error("{what} has dtype {found:?}, expected {expected:?}")]
    DtypeMismatch {
        /// Which tensor.
        what: String,
        /// The dtype it should have.
        expected: Kind,
        /// The dtype it has.
        found: Kind,
    },

    /// A tensor lives on another device than the model.
    #[error("{what} is on {found:?}, expected {expected:?}")]
    DeviceMismatch {
        /// Which tensor.
        what: String,
        /// The device it should be on.
        expected: Device,
        /// The device it is on.
        found: Device,
    },

    /// A tensor has a shape that does not fit.
    #[error("{what} has shape {found:?}, expected {expected}")]
    ShapeMismatch {
        /// Which tensor.
        what: String,
        /// A description of the expected shape.
        expected: String,
        /// The shape it has.
        found: Vec<i64>,
    },

    /// A node's forward pass failed on its input (usually a shape that does not fit), or
    /// returned a value that cannot be a belief (not floating point).
    #[error("node {layer} of {layers} failed on an input of shape {input_shape:?}: {message}")]
    Forward {
        /// The failing node (1-based; the layer of a `Sequential`).
        layer: usize,
        /// Number of nodes (layers) in the model.
        layers: usize,
        /// Shape of the input that the layer was given.
        input_shape: Vec<i64>,
        /// What libtorch (or the layer) said.
        message: String,
    },

    /// The loss function failed on the model output and the targets.
    #[error("the loss function failed on output {output_shape:?} and target {target_shape:?}: {message}")]
    Loss {
        /// Shape of the model output.
        output_shape: Vec<i64>,
        /// Shape of the targets.
        target_shape: Vec<i64>,
        /// What libtorch (or the loss) said.
        message: String,
    },

    /// The loss function did not return a scalar.
    #[error("the loss must be a scalar (one element), got shape {0:?}")]
    NonScalarLoss(Vec<i64>),

    /// Class labels outside `0..classes`.
    #[error("class labels must lie in 0..{classes}, found labels in {min}..={max}")]
    LabelOutOfRange {
        /// Smallest label found.
        min: i64,
        /// Largest label found.
        max: i64,
        /// Number of classes (size of the logits' class dimension).
        classes: i64,
    },

    /// The feed-forward loss is NaN or infinite (NaN in `x`, say).
    #[error("the feed-forward loss is not finite ({0})")]
    NonFiniteLoss(f64),

    /// Beliefs or prediction errors became NaN or infinite during relaxation.
    #[error(
        "the relaxation produced non-finite beliefs at iteration {iteration} (energy {energy})"
    )]
    NonFiniteBeliefs {
        /// 1-based relaxation iteration at which it was detected.
        iteration: usize,
        /// The energy at that iteration.
        energy: f64,
    },

    /// The relaxation diverged: the energy rose past its starting value.
    #[error(
        "the relaxation diverged at iteration {iteration}: energy {energy:.6e} rose past its \
         starting value {initial_energy:.6e} (eta {eta}); lower eta, use OnDiverge::Backtrack, or use FixedPred"
    )]
    Diverged {
        /// 1-based relaxation iteration at which divergence was detected.
        iteration: usize,
        /// The energy there.
        energy: f64,
        /// The energy at the start of the relaxation.
        initial_energy: f64,
        /// The step size in use.
        eta: f64,
    },

    /// The computed parameter updates are not finite.
    #[error("the parameter update for {0} is not finite")]
    NonFiniteGradient(String),

    /// The feed-forward pass made a buffer non-finite (BatchNorm's running variance after
    /// a batch with a single value per channel, whose unbiased variance is 0/0, or running
    /// statistics of an input that holds NaN or infinities); nothing is written, and the
    /// buffers keep their values from before the call.
    #[error(
        "the feed-forward pass made the buffer {0} non-finite (a BatchNorm in training mode \
         needs more than one value per channel and finite inputs: check x for NaN or \
         infinities, use a larger batch, or eval mode)"
    )]
    NonFiniteBuffer(String),

    /// The observer panicked while it was told of a sweep; the call stops there and
    /// writes nothing (see [`crate::Observer`]).
    #[error("the observer panicked at sweep {iteration}: {message}")]
    Observer {
        /// The sweep (1-based) the observer was told of.
        iteration: usize,
        /// The panic's message.
        message: String,
    },

    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file is not a valid IDX file, or does not match its companion file.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// Any other libtorch error (its message, without libtorch's C++ backtrace).
    #[error("libtorch error: {0}")]
    Torch(String),
}

impl From<TchError> for PcError {
    fn from(e: TchError) -> Self {
        let msg = match e {
            TchError::Torch(m) => m,
            other => other.to_string(),
        };
        PcError::Torch(crate::guard::clean_message(&msg))
    }
}

/// `Result` with [`PcError`].
pub type Result<T, E = PcError> = std::result::Result<T, E>;
