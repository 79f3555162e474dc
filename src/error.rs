//! One error type for the whole crate.
//!
//! Categories follow what the user must do about them: fix the configuration
//! ([`WindrowError::Config`]), fix the plan or schema ([`WindrowError::Plan`]), fix the data
//! ([`WindrowError::Data`]), or report a bug ([`WindrowError::Internal`]).

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Result alias used throughout windrow.
pub type Result<T, E = WindrowError> = std::result::Result<T, E>;

/// Everything that can go wrong in windrow.
#[derive(Debug, thiserror::Error)]
pub enum WindrowError {
    /// An invalid parameter (window length, wait, …), found at construction.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The operator does not fit the input: a missing or wrongly typed column.
    #[error("invalid plan: {0}")]
    Plan(String),
    /// A row that cannot be processed in strict mode, or malformed input data.
    #[error("bad data: {0}")]
    Data(String),
    /// Reading or writing files.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An Arrow kernel failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] ArrowError),
    /// A DataFusion expression or aggregate failed.
    #[error("datafusion error: {0}")]
    DataFusion(#[from] Box<DataFusionError>),
    /// Parquet decoding or encoding failed.
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A bug in windrow: an invariant did not hold.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl From<DataFusionError> for WindrowError {
    fn from(e: DataFusionError) -> Self {
        WindrowError::DataFusion(Box::new(e))
    }
}

pub(crate) fn config_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(WindrowError::Config(msg.into()))
}

pub(crate) fn plan_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(WindrowError::Plan(msg.into()))
}

pub(crate) fn data_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(WindrowError::Data(msg.into()))
}
